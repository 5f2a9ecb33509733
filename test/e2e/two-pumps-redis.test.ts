import { hostname } from 'node:os';
import { expect, it } from 'vitest';
import { useGatewayFixture } from '../support/fixture.js';
import { eventually } from '../support/gateway-process.js';
import { pipelineConfig, recordIds, recordRows, usePumps } from '../support/pipeline.js';
import { useTestDatabases } from '../support/postgres.js';
import { useRedisServers } from '../support/redis-server.js';
import { startSteadyTraffic } from '../support/steady-traffic.js';

const fixture = useGatewayFixture({ demo: true });
const databases = useTestDatabases();
const pumps = usePumps();
const redisServers = useRedisServers();

it('two pumps share one Redis stream; one SIGKILLed with batches in hand: the other claims them and every answered transaction is in PostgreSQL once', { timeout: 120_000 }, async () => {
  const { workspace, demo } = fixture;
  const database = await databases.create();
  const redis = await redisServers.start();
  const config = pipelineConfig(workspace, demo.url, {
    buffer: { type: 'redis', url: redis.url, stream: 'e2e:records', batchSize: 20 },
    databaseUrl: database.url,
    pump: { group: 'e2e-pumps', claimIdleMs: 2_000 },
    // Slow enough batches that the pump killed holds some it has not acknowledged.
    sink: { maxDelayMs: 200 },
  });
  const configFile = await workspace.writeConfig(config);
  const gateway = await fixture.start(config);
  const doomed = pumps.start(configFile);
  const survivor = pumps.start(configFile);
  const rows = (): Promise<number> => recordRows(database.client);

  const traffic = startSteadyTraffic(() => gateway.url, '/petstore/pets/1');
  await eventually(async () => ((await rows()) >= 300 ? true : undefined), 30_000, 'both pumps to write rows');
  // SIGKILL while the pump holds entries it has not acknowledged.
  const redisClient = await redis.client();
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
  const stored = await recordIds(database.client);
  expect(stored.length).toBe(answered.size);
  expect(stored.filter((id) => !answered.has(id))).toEqual([]);
  // The killed pump may have written what it held before it died: the rows can be complete before the survivor claims those entries.
  await eventually(async () => ((await pendingOfDoomed()) === 0 ? true : undefined), 10_000, 'the survivor to claim and acknowledge what the killed pump held');
  expect(await survivor.stop()).toBe(0);
});
