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

it('Redis (no persistence) SIGKILLed and restarted empty under load: every answered transaction is in PostgreSQL once', { timeout: 120_000 }, async () => {
  const { workspace, demo } = fixture;
  const database = await databases.create();
  const redis = await redisServers.start();
  const config = pipelineConfig(workspace, demo.url, {
    buffer: { type: 'redis', url: redis.url, stream: 'e2e:records', batchSize: 20 },
    databaseUrl: database.url,
    pump: { group: 'e2e-pumps' },
  });
  const configFile = await workspace.writeConfig(config);
  const gateway = await fixture.start(config);
  const pump = pumps.start(configFile);
  const rows = (): Promise<number> => recordRows(database.client);

  const traffic = startSteadyTraffic(() => gateway.url, '/petstore/pets/1');
  await eventually(async () => ((await rows()) >= 200 ? true : undefined), 30_000, 'the pump to write rows');
  await redis.kill();
  const killedAt = traffic.answered.length;
  await eventually(async () => (traffic.answered.length >= killedAt + 200 ? true : undefined), 30_000, 'the gateway to keep serving while Redis is down');
  await redis.start();
  const restartedAt = traffic.answered.length;
  await eventually(async () => (traffic.answered.length >= restartedAt + 200 ? true : undefined), 30_000, 'more traffic after the restart');
  await traffic.stop();
  expect(traffic.failed).toBe(0);

  const answered = new Set(traffic.answered);
  await eventually(async () => ((await rows()) >= answered.size ? true : undefined), 60_000, `all ${answered.size} answered transactions in PostgreSQL`);
  const stored = await recordIds(database.client);
  expect(stored.length).toBe(answered.size);
  expect(stored.filter((id) => !answered.has(id))).toEqual([]);
  expect(await gateway.stop()).toBe(0);
  expect(await pump.stop()).toBe(0);
  expect(pump.output).toMatch(/Redis 127\.0\.0\.1:\d+: .*(ECONNREFUSED|closed|Socket)/i);
});
