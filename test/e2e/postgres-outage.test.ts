import { setTimeout as sleep } from 'node:timers/promises';
import { afterEach, expect, it } from 'vitest';
import { useGatewayFixture } from '../support/fixture.js';
import { eventually, type GatewayProcess } from '../support/gateway-process.js';
import { pipelineConfig, recordIds, recordRows, usePumps } from '../support/pipeline.js';
import { useTestDatabases } from '../support/postgres.js';
import { startSteadyTraffic } from '../support/steady-traffic.js';
import type { PumpProcess } from '../support/pump-process.js';
import { TcpProxy } from '../support/tcp-proxy.js';

const fixture = useGatewayFixture({ demo: true });
const databases = useTestDatabases();
const OUTAGE_MS = 15_000;
const pumps = usePumps();
let proxy: TcpProxy | undefined;

afterEach(async () => {
  await proxy?.close();
});

it('PostgreSQL down 15 s under steady traffic, the pump SIGKILLed and restarted, the gateway restarted: every answered transaction is in PostgreSQL exactly once', { timeout: 120_000 }, async () => {
  const { workspace, demo } = fixture;
  const database = await databases.create();
  proxy = await TcpProxy.start('127.0.0.1', 5432);
  const config = pipelineConfig(workspace, demo.url, {
    buffer: { type: 'embedded' },
    databaseUrl: `postgres://postgres@127.0.0.1:${proxy.port}/${database.name}`,
    sink: { batchSize: 200, maxDelayMs: 50 },
  });
  const configFile = await workspace.writeConfig(config);
  const startGateway = (): Promise<GatewayProcess> => fixture.start(config);
  const startPump = (): PumpProcess => pumps.start(configFile);
  const rows = (): Promise<number> => recordRows(database.client);

  let gateway = await startGateway();
  let pump = startPump();
  const traffic = startSteadyTraffic(() => gateway.url, '/petstore/pets/1');
  await eventually(async () => ((await rows()) >= 100 ? true : undefined), 20_000, 'the pump to write rows');

  // The outage is a span of time by definition: the sleeps below place the crashes and restarts within it.
  await proxy.cutOff();
  const outageStart = Date.now();
  await sleep(OUTAGE_MS / 3);
  await pump.kill();
  pump = startPump();
  await sleep(OUTAGE_MS / 6);
  expect(await gateway.stop()).toBe(0);
  gateway = await startGateway();
  await sleep(Math.max(0, OUTAGE_MS - (Date.now() - outageStart)));
  await proxy.restore();
  await sleep(1_000);
  await traffic.stop();
  expect(await gateway.stop()).toBe(0);

  const answered = traffic.answered;
  expect(answered.length).toBeGreaterThan(500);
  console.log(`${answered.length} transactions answered, ${traffic.failed} requests refused while the gateway restarted`);
  await eventually(async () => ((await rows()) >= answered.length ? true : undefined), 60_000, `all ${answered.length} answered transactions in PostgreSQL`);
  const stored = await recordIds(database.client);
  const storedIds = new Set(stored);
  expect(answered.filter((id) => !storedIds.has(id))).toEqual([]);
  expect(stored.length).toBe(new Set(answered).size);
  expect(await pump.stop()).toBe(0);
});
