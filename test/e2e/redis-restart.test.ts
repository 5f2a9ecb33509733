import { afterEach, expect, it } from 'vitest';
import { useGatewayFixture } from '../support/fixture.js';
import { eventually } from '../support/gateway-process.js';
import { useTestDatabases } from '../support/postgres.js';
import { PumpProcess } from '../support/pump-process.js';
import { RedisServer } from '../support/redis-server.js';
import { startSteadyTraffic } from '../support/steady-traffic.js';

const fixture = useGatewayFixture({ demo: true });
const databases = useTestDatabases();
let pump: PumpProcess | undefined;
let redis: RedisServer | undefined;

afterEach(async () => {
  await pump?.kill();
  pump = undefined;
  await redis?.kill();
  redis = undefined;
});

it('Redis (no persistence) SIGKILLed and restarted empty under load: every answered transaction is in PostgreSQL once', { timeout: 120_000 }, async () => {
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
      deadLetterDirectory: workspace.path('dead-letter'),
      sinks: [{ type: 'postgres', url: database.url, table: 'records', batchSize: 50, maxDelayMs: 100 }],
    },
  };
  const configFile = await workspace.writeConfig(config);
  const gateway = await fixture.start(config);
  pump = PumpProcess.start(configFile);
  const rows = async (): Promise<number> => Number((await database.client.query('SELECT count(*) AS n FROM records').catch(() => ({ rows: [{ n: 0 }] }))).rows[0].n);

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
  const stored = await database.client.query<{ id: string }>('SELECT id FROM records');
  expect(stored.rows.length).toBe(answered.size);
  expect(stored.rows.filter((row) => !answered.has(row.id))).toEqual([]);
  expect(await gateway.stop()).toBe(0);
  expect(await pump.stop()).toBe(0);
  expect(pump.output).toMatch(/Redis 127\.0\.0\.1:\d+: .*(ECONNREFUSED|closed|Socket)/i);
});
