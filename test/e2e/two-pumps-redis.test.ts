import { hostname } from 'node:os';
import { createClient } from 'redis';
import { afterEach, expect, it } from 'vitest';
import { useGatewayFixture } from '../support/fixture.js';
import { eventually } from '../support/gateway-process.js';
import { useTestDatabases } from '../support/postgres.js';
import { PumpProcess } from '../support/pump-process.js';
import { RedisServer } from '../support/redis-server.js';
import { startSteadyTraffic } from '../support/steady-traffic.js';

const fixture = useGatewayFixture({ demo: true });
const databases = useTestDatabases();
let pumps: PumpProcess[] = [];
let redis: RedisServer | undefined;

afterEach(async () => {
  await Promise.all(pumps.map((pump) => pump.kill()));
  pumps = [];
  await redis?.kill();
});

it('two pumps share one Redis stream; one SIGKILLed with batches in hand: the other claims them and every answered transaction is in PostgreSQL once', { timeout: 120_000 }, async () => {
  const { workspace, demo } = fixture;
  const database = await databases.create();
  redis = await RedisServer.start();
  const config = {
    gateway: { host: '127.0.0.1', port: 0, group: 'e2e', instance: 'gw' },
    apis: [{ id: 'petstore', name: 'Petstore', listenPath: '/petstore/', target: demo.url, stripListenPath: true }],
    trafficLog: { output: 'none' },
    analytics: { buffer: { type: 'redis', url: redis.url, stream: 'e2e:records', directory: workspace.path('spool'), fsyncIntervalMs: 20, batchSize: 20 } },
    pump: {
      group: 'e2e-pumps',
      claimIdleMs: 2_000,
      deadLetterDirectory: workspace.path('dead-letter'),
      // Slow enough batches that the pump killed holds some it has not acknowledged.
      sinks: [{ type: 'postgres', url: database.url, table: 'records', batchSize: 50, maxDelayMs: 200 }],
    },
  };
  const configFile = await workspace.writeConfig(config);
  const gateway = await fixture.start(config);
  const startPump = (): PumpProcess => {
    const started = PumpProcess.start(configFile);
    pumps.push(started);
    return started;
  };
  const doomed = startPump();
  const survivor = startPump();
  const rows = async (): Promise<number> => Number((await database.client.query('SELECT count(*) AS n FROM records').catch(() => ({ rows: [{ n: 0 }] }))).rows[0].n);

  const traffic = startSteadyTraffic(() => gateway.url, '/petstore/pets/1');
  await eventually(async () => ((await rows()) >= 300 ? true : undefined), 30_000, 'both pumps to write rows');
  // SIGKILL while the pump holds entries it has not acknowledged.
  const redisClient = await createClient({ url: redis.url }).connect();
  const doomedConsumer = `${hostname()}-${doomed.child.pid}`;
  const pendingOfDoomed = async (): Promise<number> => (await redisClient.sendCommand<unknown[]>(['XPENDING', 'e2e:records', 'e2e-pumps', '-', '+', '1000', doomedConsumer])).length;
  await eventually(async () => ((await pendingOfDoomed()) > 0 ? true : undefined), 30_000, 'the doomed pump to hold unacknowledged entries');
  await doomed.kill();
  const killedAt = traffic.answered.length;
  await eventually(async () => (traffic.answered.length >= killedAt + 300 ? true : undefined), 30_000, 'more traffic after the kill');
  await traffic.stop();
  expect(await gateway.stop()).toBe(0);

  const answered = new Set(traffic.answered);
  await eventually(async () => ((await rows()) >= answered.size ? true : undefined), 30_000, `all ${answered.size} answered transactions in PostgreSQL`);
  const stored = await database.client.query<{ id: string }>('SELECT id FROM records');
  expect(stored.rows.length).toBe(answered.size);
  expect(stored.rows.filter((row) => !answered.has(row.id))).toEqual([]);
  expect(await pendingOfDoomed()).toBe(0);
  redisClient.destroy();
  expect(await survivor.stop()).toBe(0);
});
