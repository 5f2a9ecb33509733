import { hostname } from 'node:os';
import type pg from 'pg';
import { afterEach, expect, it } from 'vitest';
import { decodeBatch } from '../../src/analytics/codec.js';
import { BINARY, fieldsOf } from '../../src/buffer/redis-stream.js';
import type { Backend } from '../support/backends.js';
import { useGatewayFixture } from '../support/fixture.js';
import { eventually, type GatewayProcess, type Workspace } from '../support/gateway-process.js';
import { pipelineConfig, recordIds, recordRows, usePumps } from '../support/pipeline.js';
import { useTestDatabases } from '../support/postgres.js';
import { useRedisServers } from '../support/redis-server.js';
import { startSteadyTraffic, type SteadyTraffic } from '../support/steady-traffic.js';
import { TcpProxy } from '../support/tcp-proxy.js';

const fixture = useGatewayFixture();
const databases = useTestDatabases();
const pumps = usePumps();
const redisServers = useRedisServers();
let redisProxy: TcpProxy | undefined;

afterEach(async () => {
  await redisProxy?.close();
  redisProxy = undefined;
});

const AGGREGATES = 'aggregates';
/** Hours are rolled up from the minutes this often (s): a test waits for one roll-up. */
const ROLL_UP_EVERY_SEC = 1;

/** What the back end does for each kind of request: sleeps `ms`, then answers `status`. */
const ROUTES = [
  { ms: 5, status: 200 },
  { ms: 20, status: 201 },
  { ms: 40, status: 404 },
  { ms: 80, status: 200 },
  { ms: 120, status: 500 },
  { ms: 200, status: 503 },
] as const;
const routePath = (route: (typeof ROUTES)[number]): string => `/sleep/${route.ms}/${route.status}`;
/** The path a client asks the gateway for, and its records carry. */
const requestPath = (route: (typeof ROUTES)[number]): string => `/petstore${routePath(route)}`;

/** A back end that sleeps and answers as the path `/sleep/<ms>/<status>` says. */
function sleepingBackend(): Promise<Backend> {
  return fixture.backend((request, response) => {
    const [, ms, status] = /^\/sleep\/(\d+)\/(\d+)$/.exec(request.url ?? '') ?? [];
    if (ms === undefined || status === undefined) {
      response.writeHead(400).end('expected /sleep/<ms>/<status>');
      return;
    }
    sleepAtLeast(Number(ms), () => response.writeHead(Number(status), { 'content-type': 'text/plain' }).end(`slept ${ms} ms`));
  });
}

/** Calls `then` no sooner than `ms` after now: Node's timers count from the event loop's cached time, so one alone can end early. */
function sleepAtLeast(ms: number, then: () => void): void {
  const end = performance.now() + ms;
  const check = (): void => {
    const left = end - performance.now();
    if (left > 0) setTimeout(check, Math.ceil(left));
    else then();
  };
  check();
}

/** One client per route, each sending its requests one after another. */
function startRouteTraffic(gateway: () => GatewayProcess): { answered(): string[]; stop(): Promise<void> } {
  const traffic: SteadyTraffic[] = ROUTES.map((route) => startSteadyTraffic(() => gateway().url, requestPath(route), 1));
  return {
    answered: () => traffic.flatMap((one) => one.answered),
    stop: async () => {
      await Promise.all(traffic.map((one) => one.stop()));
    },
  };
}

/** `pipelineConfig` with the postgres sink also keeping aggregates, rolled up every `ROLL_UP_EVERY_SEC`. */
function aggregatingConfig(workspace: Workspace, backendUrl: string, options: Parameters<typeof pipelineConfig>[2]): Record<string, any> {
  return pipelineConfig(workspace, backendUrl, { ...options, sink: { aggregatesTable: AGGREGATES, aggregatesIntervalSec: ROLL_UP_EVERY_SEC, ...options.sink } });
}

interface StoredRecord {
  time: number;
  apiId: string;
  status: number;
  path: string;
  latencyTotal: number;
  latencyUpstream: number;
  bytesIn: number;
  bytesOut: number;
}

async function storedRecords(client: pg.Client): Promise<StoredRecord[]> {
  const result = await client.query(
    'SELECT time, api_id, status, path, latency_total, latency_upstream, bytes_in::float8 AS bytes_in, bytes_out::float8 AS bytes_out FROM records',
  );
  return result.rows.map((row) => ({
    time: (row.time as Date).getTime(),
    apiId: row.api_id as string,
    status: row.status as number,
    path: row.path as string,
    latencyTotal: row.latency_total as number,
    latencyUpstream: row.latency_upstream as number,
    bytesIn: row.bytes_in as number,
    bytesOut: row.bytes_out as number,
  }));
}

type Size = 'minute' | 'hour';
const BUCKET_MS: Record<Size, number> = { minute: 60_000, hour: 3_600_000 };

/** The aggregates the records make, per bucket of `size`, for the dimensions `total`, `api` and `status`: computed here, from the records table. */
function aggregatesOfRecords(records: readonly StoredRecord[], size: Size): Map<string, StoredRecord[]> {
  const groups = new Map<string, StoredRecord[]>();
  for (const record of records) {
    const bucket = new Date(Math.floor(record.time / BUCKET_MS[size]) * BUCKET_MS[size]).toISOString();
    for (const key of [`${bucket} total `, `${bucket} api ${record.apiId}`, `${bucket} status ${record.status}`]) {
      const group = groups.get(key) ?? [];
      group.push(record);
      groups.set(key, group);
    }
  }
  return groups;
}

/** The exact quantile as DDSketch ranks it: the value at index floor(q * (n - 1)) of the sorted values. */
function exactQuantile(values: readonly number[], q: number): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.floor(q * (sorted.length - 1))] as number;
}

const sum = (values: readonly number[]): number => values.reduce((total, value) => total + value, 0);

/** Each `total`, `api` and `status` aggregate of `size` against the records table: counts, codes, bytes and times exact, sums to the µs, p50/p95/p99 within 1%. */
async function expectAggregatesOfRecords(client: pg.Client, records: readonly StoredRecord[], size: Size): Promise<void> {
  const expected = aggregatesOfRecords(records, size);
  const rows = await client.query(`SELECT * FROM ${AGGREGATES} WHERE bucket_size = $1 AND dimension IN ('total', 'api', 'status')`, [size]);
  const stored = new Map(rows.rows.map((row) => [`${(row.bucket as Date).toISOString()} ${row.dimension} ${row.value}`, row as Record<string, unknown>]));
  expect([...stored.keys()].sort()).toEqual([...expected.keys()].sort());
  for (const [key, group] of expected) {
    const row = stored.get(key) as Record<string, unknown>;
    const statusCounts: Record<string, number> = {};
    for (const record of group) statusCounts[record.status] = (statusCounts[record.status] ?? 0) + 1;
    const errors = group.filter((record) => record.status >= 400).length;
    expect({ key, hits: Number(row.hits), success: Number(row.success), errors: Number(row.errors), statusCounts: row.status_counts }).toEqual({
      key,
      hits: group.length,
      success: group.length - errors,
      errors,
      statusCounts,
    });
    expect({ key, bytesIn: Number(row.bytes_in), bytesOut: Number(row.bytes_out) }).toEqual({ key, bytesIn: sum(group.map((r) => r.bytesIn)), bytesOut: sum(group.map((r) => r.bytesOut)) });
    expect((row.first_seen as Date).getTime()).toBe(Math.min(...group.map((r) => r.time)));
    expect((row.last_seen as Date).getTime()).toBe(Math.max(...group.map((r) => r.time)));
    for (const [prefix, values] of [
      ['latency', group.map((r) => r.latencyTotal)],
      ['upstream', group.map((r) => r.latencyUpstream)],
    ] as const) {
      expect(row[`${prefix}_sum`] as number, `${key} ${prefix}_sum`).toBeCloseTo(sum(values), 3);
      expect(row[`${prefix}_min`]).toBe(Math.min(...values));
      expect(row[`${prefix}_max`]).toBe(Math.max(...values));
      for (const q of [50, 95, 99]) {
        const exact = exactQuantile(values, q / 100);
        const value = row[`${prefix}_p${q}`] as number;
        expect(Math.abs(value - exact), `${key} ${prefix}_p${q}: ${value} against exactly ${exact}`).toBeLessThanOrEqual(exact * 0.01 + 1e-9);
      }
    }
  }
}

/** Resolves once the records written are all in the minutes and, with `hours`, rolled up into the hours; how they were counted is for the caller to compare. */
async function aggregatesSettled(client: pg.Client, hours: boolean): Promise<void> {
  await eventually(
    async () => {
      const state = await client.query<{ pending: number; minutes: number; hours: number; unrolled: number }>(
        `SELECT (SELECT count(*) FROM ${AGGREGATES}_pending)::int AS pending,
           (SELECT coalesce(sum(hits), 0) FROM ${AGGREGATES} WHERE bucket_size = 'minute' AND dimension = 'total')::int AS minutes,
           (SELECT coalesce(sum(hits), 0) FROM ${AGGREGATES} WHERE bucket_size = 'hour' AND dimension = 'total')::int AS hours,
           (SELECT count(*) FROM ${AGGREGATES} WHERE bucket_size = 'minute' AND pending)::int AS unrolled`,
      );
      // A record and its pending row go in one transaction, and a pass moves pending rows into the minutes in one: with every record written, nothing pending means every record counted.
      const now = state.rows[0];
      if (now === undefined || now.pending > 0 || now.minutes === 0) return undefined;
      return !hours || (now.hours > 0 && now.unrolled === 0) ? true : undefined;
    },
    15_000,
    `the records aggregated${hours ? ' and rolled up into hours' : ''}`,
  );
}

/** Every record answered as its route says, after at least the time its back end slept. */
function expectKnownLatencies(records: readonly StoredRecord[]): void {
  for (const route of ROUTES) {
    const ofRoute = records.filter((record) => record.path === requestPath(route));
    expect(ofRoute.length, `records of ${requestPath(route)}`).toBeGreaterThan(0);
    expect(ofRoute.filter((record) => record.status !== route.status || record.latencyTotal < route.ms || record.latencyUpstream < route.ms)).toEqual([]);
  }
}

it('aggregates of traffic with known latencies and statuses hold what the records hold: per minute and per hour, counts, codes and sums exact, p50/p95/p99 within 1%', { timeout: 60_000 }, async () => {
  const { workspace } = fixture;
  const database = await databases.create();
  const backend = await sleepingBackend();
  const config = aggregatingConfig(workspace, backend.url, { buffer: { type: 'embedded' }, databaseUrl: database.url });
  const configFile = await workspace.writeConfig(config);
  const gateway = await fixture.start(config);
  const pump = pumps.start(configFile);

  const traffic = startRouteTraffic(() => gateway);
  await eventually(async () => ((await recordRows(database.client)) >= 800 ? true : undefined), 30_000, 'the pump to write 800 records');
  await traffic.stop();
  expect(await gateway.stop()).toBe(0);
  const answered = new Set(traffic.answered());
  await eventually(async () => ((await recordRows(database.client)) >= answered.size ? true : undefined), 15_000, `all ${answered.size} answered transactions in PostgreSQL`);
  expect((await recordIds(database.client)).length).toBe(answered.size);

  await aggregatesSettled(database.client, true);
  const records = await storedRecords(database.client);
  expectKnownLatencies(records);
  await expectAggregatesOfRecords(database.client, records, 'minute');
  await expectAggregatesOfRecords(database.client, records, 'hour');
  expect(await pump.stop()).toBe(0);
});

it('two pumps on one Redis stream, one SIGKILLed after writing batches it could not acknowledge: the other writes them again, and the aggregates count each record exactly once', { timeout: 60_000 }, async () => {
  const { workspace } = fixture;
  const database = await databases.create();
  const backend = await sleepingBackend();
  const redis = await redisServers.start();
  redisProxy = await TcpProxy.start('127.0.0.1', redis.port);
  const stream = 'e2e:records';
  const group = 'e2e-pumps';
  const configFor = (redisUrl: string): Record<string, any> =>
    aggregatingConfig(workspace, backend.url, {
      buffer: { type: 'redis', url: redisUrl, stream, batchSize: 20 },
      databaseUrl: database.url,
      pump: { group, claimIdleMs: 2_000 },
      // Slow enough batches that the pump killed holds some it has not acknowledged.
      sink: { maxDelayMs: 200 },
    });
  const config = configFor(redis.url);
  const gateway = await fixture.start(config);
  // The doomed pump reaches Redis through a proxy, the better to lose its acknowledgements.
  const doomed = pumps.start(await workspace.writeConfig(configFor(`redis://127.0.0.1:${redisProxy.port}`), 'doomed.yaml'));
  const survivor = pumps.start(await workspace.writeConfig(config));

  const traffic = startRouteTraffic(() => gateway);
  await eventually(async () => ((await recordRows(database.client)) >= 300 ? true : undefined), 30_000, 'both pumps to write rows');
  const redisClient = await redis.client();
  const doomedConsumer = `${hostname()}-${doomed.child.pid}`;
  const heldByDoomed = async (): Promise<string[]> =>
    (await redisClient.sendCommand<[string, ...unknown[]][]>(['XPENDING', stream, group, '-', '+', '1000', doomedConsumer])).map(([id]) => id);
  /** The entries the doomed pump holds whose records are all in PostgreSQL: written, not acknowledged. */
  const writtenByDoomed = async (): Promise<string[]> => {
    const written: string[] = [];
    for (const id of await heldByDoomed()) {
      const [entry] = await redisClient.sendCommand<[Buffer, Buffer[]][]>(['XRANGE', stream, id, id], BINARY);
      const data = entry && fieldsOf(entry[1]).get('data');
      if (data === undefined) continue;
      const ids = decodeBatch(data).map((record) => record.id);
      const stored = await database.client.query<{ n: number }>('SELECT count(*)::int AS n FROM records WHERE id = ANY($1)', [ids]);
      if (stored.rows[0]?.n === ids.length) written.push(id);
    }
    return written;
  };
  await eventually(async () => ((await heldByDoomed()).length > 0 ? true : undefined), 20_000, 'the doomed pump to hold unacknowledged entries');
  // Its acknowledgements no longer reach Redis, while it goes on writing what it holds into PostgreSQL.
  redisProxy.blackHole();
  const redelivered = await eventually(async () => {
    const written = await writtenByDoomed();
    return written.length > 0 ? written : undefined;
  }, 10_000, 'the doomed pump to write entries it cannot acknowledge');
  await doomed.kill();
  const killedAt = traffic.answered().length;
  await eventually(async () => (traffic.answered().length >= killedAt + 300 ? true : undefined), 20_000, 'more traffic after the kill');
  await traffic.stop();
  expect(await gateway.stop()).toBe(0);

  const answered = new Set(traffic.answered());
  await eventually(async () => ((await recordRows(database.client)) >= answered.size ? true : undefined), 20_000, `all ${answered.size} answered transactions in PostgreSQL`);
  // A pump acknowledges (and deletes) an entry only once its sink wrote it: the survivor wrote those again.
  const stillThere = async (): Promise<string[]> =>
    (await redisClient.sendCommand<unknown[]>(['XRANGE', stream, '-', '+'])).map((entry) => String((entry as [string])[0])).filter((id) => redelivered.includes(id));
  await eventually(async () => ((await heldByDoomed()).length === 0 && (await stillThere()).length === 0 ? true : undefined), 15_000, 'the survivor to claim, write and acknowledge what the killed pump held');
  expect((await recordIds(database.client)).length).toBe(answered.size);
  console.log(`${answered.size} transactions, ${redelivered.length} entries written by the killed pump and again by the survivor`);

  await aggregatesSettled(database.client, false);
  const records = await storedRecords(database.client);
  expectKnownLatencies(records);
  await expectAggregatesOfRecords(database.client, records, 'minute');
  expect(await survivor.stop()).toBe(0);
});
