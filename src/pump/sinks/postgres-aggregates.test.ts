import pg from 'pg';
import { afterEach, describe, expect, it } from 'vitest';
import type { AnalyticsRecord } from '../../analytics/analytics-record.js';
import { builtRecords } from '../../../test/support/built-records.js';
import { eventually } from '../../../test/support/gateway-process.js';
import { useTestDatabases } from '../../../test/support/postgres.js';
import { writeUntilIn } from '../../../test/support/sink-writes.js';
import { bucketStart, type BucketSize, dimensionsOf } from '../aggregates/aggregate-keys.js';
import { sketchFromBytes } from '../aggregates/latency-sketch.js';
import { RetryableError } from '../sink.js';
import { PostgresSink, type PostgresSinkOptions } from './postgres.js';
import { sinkConfigSchema } from './registry.js';

const databases = useTestDatabases();
let sinks: PostgresSink[] = [];
let tables = 0;

afterEach(async () => {
  for (const sink of sinks) await sink.close();
  sinks = [];
});

async function newDatabase(): Promise<{ url: string; db: pg.Client }> {
  const { url, client } = await databases.create();
  return { url, db: client };
}

function newSink(url: string, options: Partial<PostgresSinkOptions> = {}): PostgresSink {
  const n = ++tables;
  const sink = new PostgresSink(
    {
      url,
      table: `records_${n}`,
      aggregatesTable: `aggregates_${n}`,
      connections: 3,
      timeoutMs: 10_000,
      expireIntervalSec: 3600,
      expireChunkRows: 10_000,
      trackAllPaths: false,
      aggregatesRetentionDays: 90,
      aggregatesIntervalSec: 3600,
      ...options,
    },
    { name: 'postgres', notify: () => undefined },
  );
  sinks.push(sink);
  return sink;
}

/** A small deterministic generator, so a failure can be replayed. */
function random(seed: number): () => number {
  let state = seed >>> 0;
  return () => {
    state = (state * 1664525 + 1013904223) >>> 0;
    return state / 2 ** 32;
  };
}

/** 23:00 UTC: the records span two hours and two days. */
const START = Date.UTC(2026, 10, 20, 23, 0, 0);
const STATUSES = [200, 200, 200, 201, 204, 301, 404, 429, 500, 502];

/**
 * Records as the gateway makes them, with latencies spread from under 1 ms to seconds (log-uniform,
 * three decimals as the records carry them), statuses, keys, tags and paths varied, and times over
 * a few minutes on both sides of midnight UTC.
 */
function knownRecords(count: number, seed: number): AnalyticsRecord[] {
  const next = random(seed);
  return builtRecords(count).map((record, i) => {
    const total = Math.round(Math.exp(next() * Math.log(5000)) * 1000) / 1000;
    const minute = Math.floor(next() * 6);
    return {
      ...record,
      timestamp: START + (minute < 3 ? minute : 57 + minute) * 60_000 + Math.floor(next() * 60_000),
      status: STATUSES[Math.floor(next() * STATUSES.length)] as number,
      latencyTotal: total,
      latencyUpstream: Math.round(total * next() * 1000) / 1000,
      bytesIn: Math.floor(next() * 2000),
      bytesOut: Math.floor(next() * 50_000),
      apiId: i % 4 === 0 ? 'billing' : 'orders',
      normalisedPath: i % 3 === 0 ? '/orders/{id}' : '/orders/{id}/items',
      trackedEndpoint: i % 6 === 0 ? null : record.trackedEndpoint,
      apiKeyHash: i % 9 === 0 ? null : `hash-${i % 4}`,
      apiKeyAlias: i % 9 === 0 ? null : `alias-${i % 4}`,
      tags: i % 2 === 0 ? ['orders', 'tier-gold'] : ['orders'],
    };
  });
}

interface Expected {
  hits: number;
  success: number;
  errors: number;
  statusCounts: Record<string, number>;
  latencies: number[];
  upstream: number[];
  bytesIn: number;
  bytesOut: number;
  first: number;
  last: number;
}

/** What each aggregate of `size` must hold, computed from the records themselves. */
function expectedAggregates(records: readonly AnalyticsRecord[], size: BucketSize, trackAllPaths = false): Map<string, Expected> {
  const expected = new Map<string, Expected>();
  for (const record of records) {
    for (const { dimension, value } of dimensionsOf(record, trackAllPaths)) {
      const key = `${new Date(bucketStart(record.timestamp, size)).toISOString()} ${size} ${dimension} ${value}`;
      let entry = expected.get(key);
      if (!entry) {
        entry = { hits: 0, success: 0, errors: 0, statusCounts: {}, latencies: [], upstream: [], bytesIn: 0, bytesOut: 0, first: Infinity, last: -Infinity };
        expected.set(key, entry);
      }
      entry.hits++;
      if (record.status >= 400) entry.errors++;
      else entry.success++;
      entry.statusCounts[record.status] = (entry.statusCounts[record.status] ?? 0) + 1;
      entry.latencies.push(record.latencyTotal);
      entry.upstream.push(record.latencyUpstream);
      entry.bytesIn += record.bytesIn;
      entry.bytesOut += record.bytesOut;
      entry.first = Math.min(entry.first, record.timestamp);
      entry.last = Math.max(entry.last, record.timestamp);
    }
  }
  return expected;
}

/** The exact quantile as DDSketch defines its rank: the value at index floor(q * (n - 1)) of the sorted values. */
function exactQuantile(values: readonly number[], q: number): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.floor(q * (sorted.length - 1))] as number;
}

const sum = (values: readonly number[]): number => values.reduce((total, value) => total + value, 0);

async function rowsOf(db: pg.Client, table: string, size: BucketSize): Promise<Map<string, Record<string, unknown>>> {
  const rows = await db.query(`SELECT * FROM ${table} WHERE bucket_size = $1`, [size]);
  return new Map(rows.rows.map((row) => [`${(row.bucket as Date).toISOString()} ${row.bucket_size} ${row.dimension} ${row.value}`, row]));
}

/** Each aggregate row of `size` against the records: counts and sums exact, quantiles within 1%. */
async function expectAggregatesOf(db: pg.Client, table: string, records: readonly AnalyticsRecord[], size: BucketSize): Promise<void> {
  const expected = expectedAggregates(records, size);
  const rows = await rowsOf(db, table, size);
  expect([...rows.keys()].sort()).toEqual([...expected.keys()].sort());
  for (const [key, want] of expected) {
    const row = rows.get(key) as Record<string, unknown>;
    expect({ key, hits: Number(row.hits), success: Number(row.success), errors: Number(row.errors), statusCounts: row.status_counts }).toEqual({
      key,
      hits: want.hits,
      success: want.success,
      errors: want.errors,
      statusCounts: want.statusCounts,
    });
    expect(Number(row.bytes_in)).toBe(want.bytesIn);
    expect(Number(row.bytes_out)).toBe(want.bytesOut);
    expect((row.first_seen as Date).getTime()).toBe(want.first);
    expect((row.last_seen as Date).getTime()).toBe(want.last);
    for (const [prefix, values] of [
      ['latency', want.latencies],
      ['upstream', want.upstream],
    ] as const) {
      expect(row[`${prefix}_sum`]).toBeCloseTo(sum(values), 6);
      expect(row[`${prefix}_min`]).toBe(Math.min(...values));
      expect(row[`${prefix}_max`]).toBe(Math.max(...values));
      for (const q of [50, 95, 99]) {
        const exact = exactQuantile(values, q / 100);
        const stored = row[`${prefix}_p${q}`] as number;
        expect(Math.abs(stored - exact), `${key} ${prefix}_p${q}: ${stored} against exactly ${exact}`).toBeLessThanOrEqual(exact * 0.01 + 1e-9);
      }
    }
  }
}

/** The aggregates as numbers a reader sees: every column but the bookkeeping, and the sketches as their quantiles. */
async function snapshot(db: pg.Client, table: string): Promise<Record<string, unknown>[]> {
  const rows = await db.query(`SELECT * FROM ${table} ORDER BY bucket, bucket_size, dimension, value`);
  return rows.rows.map(({ version: _version, pending: _pending, updated_at: _updated, latency_sketch, upstream_sketch, ...row }) => ({
    ...row,
    latency_quantiles: quantilesOf(latency_sketch as Buffer | null),
    upstream_quantiles: quantilesOf(upstream_sketch as Buffer | null),
  }));
}

function quantilesOf(bytes: Buffer | null): number[] | null {
  if (bytes === null) return null;
  const sketch = sketchFromBytes(bytes);
  return Array.from({ length: 21 }, (_, i) => sketch.getValueAtQuantile(i / 20));
}

function batchesOf<T>(items: readonly T[], size: number): T[][] {
  const batches: T[][] = [];
  for (let start = 0; start < items.length; start += size) batches.push(items.slice(start, start + size));
  return batches;
}

describe('aggregates in the postgres sink', () => {
  it('holds per minute what the records hold: hits, successes, errors, codes, sums, bytes and times exactly, p50/p95/p99 within 1%', async () => {
    const { url, db } = await newDatabase();
    const sink = newSink(url);
    await sink.open();
    const records = knownRecords(6000, 1);
    for (const batch of batchesOf(records, 1000)) expect(await sink.write(batch)).toEqual([]);
    await sink.flushAggregates();
    await expectAggregatesOf(db, `aggregates_${tables}`, records, 'minute');
    const types = await db.query(`SELECT column_name, data_type FROM information_schema.columns WHERE table_name = 'aggregates_${tables}'`);
    expect(Object.fromEntries(types.rows.map((row) => [row.column_name, row.data_type]))).toMatchObject({
      bucket: 'timestamp with time zone',
      status_counts: 'jsonb',
      latency_p99: 'double precision',
      latency_sketch: 'bytea',
      upstream_sketch: 'bytea',
    });
    // Keys are counted by hash with their alias; untracked paths are not counted per path.
    const keys = await db.query(`SELECT DISTINCT value, alias FROM aggregates_${tables} WHERE dimension = 'apiKey' ORDER BY value`);
    expect(keys.rows).toEqual([0, 1, 2, 3].map((n) => ({ value: `hash-${n}`, alias: `alias-${n}` })));
    const paths = await db.query(`SELECT sum(hits)::int AS hits FROM aggregates_${tables} WHERE dimension = 'api+normalisedPath'`);
    expect(paths.rows[0].hits).toBe(records.filter((record) => record.trackedEndpoint !== null).length);
  });

  it('rolls minutes up into hours and hours into days, each as if counted from the records, and again after late records', async () => {
    const { url, db } = await newDatabase();
    const sink = newSink(url);
    await sink.open();
    const records = knownRecords(5000, 2);
    const [early, late] = [records.slice(0, 4000), records.slice(4000)];
    for (const batch of batchesOf(early, 1000)) expect(await sink.write(batch)).toEqual([]);
    await sink.flushAggregates();
    expect(await sink.rollUp()).toBeGreaterThan(0);
    const table = `aggregates_${tables}`;
    await expectAggregatesOf(db, table, early, 'hour');
    await expectAggregatesOf(db, table, early, 'day');
    // Records arriving after the roll-up land in rolled-up hours: those are recomputed, not added to twice.
    expect(await sink.write(late)).toEqual([]);
    await sink.flushAggregates();
    await sink.rollUp();
    await sink.rollUp();
    for (const size of ['minute', 'hour', 'day'] as const) await expectAggregatesOf(db, table, records, size);
    expect((await db.query(`SELECT count(*)::int AS n FROM ${table} WHERE pending`)).rows[0].n).toBe(0);
  });

  it('counts nothing twice when batches are written again, in part or whole, one after the other and at once', async () => {
    const { url, db } = await newDatabase();
    const sink = newSink(url);
    await sink.open();
    const records = knownRecords(3000, 3);
    expect(await sink.write(records)).toEqual([]);
    await sink.flushAggregates();
    const table = `aggregates_${tables}`;
    const once = await snapshot(db, table);
    expect(await sink.write(records)).toEqual([]);
    await Promise.all([sink.write(records.slice(0, 1800)), sink.write(records.slice(900)), sink.write(records.slice(2500))]);
    expect(await sink.flushAggregates()).toBe(0);
    expect(await snapshot(db, table)).toEqual(once);
    await expectAggregatesOf(db, table, records, 'minute');
  });

  it('ends with the same aggregates when two pumps write overlapping batches at once as when one pump writes each record once', async () => {
    const { url, db } = await newDatabase();
    const records = knownRecords(8000, 4);
    const clean = newSink(url);
    await clean.open();
    for (const batch of batchesOf(records, 1000)) expect(await clean.write(batch)).toEqual([]);
    await clean.flushAggregates();
    await clean.rollUp();
    const cleanTable = `aggregates_${tables}`;

    // Two pumps on one table: each gets every batch, in its own order, as two pumps do after a redelivery.
    const first = newSink(url);
    const tableNumber = tables;
    const second = newSink(url, { table: `records_${tableNumber}`, aggregatesTable: `aggregates_${tableNumber}` });
    await Promise.all([first.open(), second.open()]);
    const batches = batchesOf(records, 700);
    const retried: Error[] = [];
    await Promise.all([
      (async () => {
        for (const batch of batches) await writeUntilIn(first, batch, retried);
      })(),
      (async () => {
        for (const batch of [...batches].reverse()) await writeUntilIn(second, batch.slice(100), retried);
      })(),
      (async () => {
        for (let i = 0; i < 5; i++) {
          await second.aggregatePending();
          await first.rollUp();
        }
      })(),
    ]);
    await Promise.all([first.flushAggregates(), second.flushAggregates()]);
    await Promise.all([first.rollUp(), second.rollUp()]);
    await first.rollUp();
    expect(await snapshot(db, `aggregates_${tableNumber}`)).toEqual(await snapshot(db, cleanTable));
    for (const size of ['minute', 'hour', 'day'] as const) await expectAggregatesOf(db, `aggregates_${tableNumber}`, records, size);
  });

  it('loses nothing and counts nothing twice when transactions are killed between their insert and their commit', async () => {
    const { url, db } = await newDatabase();
    const records = knownRecords(3000, 5);
    const clean = newSink(url);
    await clean.open();
    for (const batch of batchesOf(records, 1000)) expect(await clean.write(batch)).toEqual([]);
    await clean.flushAggregates();
    const cleanTable = `aggregates_${tables}`;

    const sink = newSink(url);
    await sink.open();
    const table = `aggregates_${tables}`;
    expect(await sink.write(records.slice(0, 1000))).toEqual([]);
    const holder = new pg.Client({ connectionString: url });
    await holder.connect();
    /** Holds `locked` so that the sink's transactions stop right before they touch it, kills them there, and lets go. */
    const killWaitingOn = async (locked: string): Promise<void> => {
      await holder.query('BEGIN');
      await holder.query(`LOCK TABLE ${locked} IN SHARE MODE`);
      const waiting = await eventually(async () => {
        const found = await db.query<{ pid: number }>(
          "SELECT pid FROM pg_stat_activity WHERE datname = current_database() AND application_name = 'tollgate pump postgres' AND wait_event_type = 'Lock'",
        );
        return found.rows.length > 0 ? found.rows.map((row) => row.pid) : undefined;
      }, 15_000, `the sink waiting on ${locked}`);
      for (const pid of waiting) await db.query('SELECT pg_terminate_backend($1)', [pid]);
      await holder.query('ROLLBACK');
    };

    // Records copied in, their pending rows not yet: the transaction dies, both go.
    const retried: Error[] = [];
    const writing = writeUntilIn(sink, records.slice(1000), retried);
    await killWaitingOn(`${table}_pending`);
    await writing;
    expect(retried.length).toBeGreaterThan(0);
    expect(retried.every((error) => error instanceof RetryableError)).toBe(true);
    expect((await db.query(`SELECT count(*)::int AS n FROM records_${tables}`)).rows[0].n).toBe(records.length);

    // Pending rows taken, the aggregates not yet written: the pass dies, the rows stay pending.
    const aggregating = sink.flushAggregates();
    await killWaitingOn(table);
    await expect(aggregating).rejects.toBeInstanceOf(Error);
    expect((await db.query(`SELECT count(*)::int AS n FROM ${table}_pending`)).rows[0].n).toBeGreaterThan(0);
    await sink.flushAggregates();
    await holder.end();
    expect((await db.query(`SELECT count(*)::int AS n FROM ${table}_pending`)).rows[0].n).toBe(0);
    expect(await snapshot(db, table)).toEqual(await snapshot(db, cleanTable));
  });

  it('rolls up and deletes aggregates past their retention on its schedule', async () => {
    const { url, db } = await newDatabase();
    const sink = newSink(url, { aggregatesIntervalSec: 0.2, aggregatesRetentionDays: 30 });
    const table = `aggregates_${tables}`;
    await sink.open();
    const now = Date.now();
    const recent = knownRecords(200, 6).map((record) => ({ ...record, timestamp: now - 60_000 }));
    const old = knownRecords(200, 7).map((record) => ({ ...record, timestamp: now - 40 * 86_400_000 }));
    expect(await sink.write([...recent, ...old])).toEqual([]);
    await eventually(async () => {
      const left = await db.query(
        `SELECT bucket_size, min(bucket) AS oldest, bool_or(pending) AS pending, (SELECT count(*) FROM ${table}_pending)::int AS unaggregated FROM ${table} GROUP BY bucket_size ORDER BY bucket_size`,
      );
      const sizes = left.rows.map((row) => row.bucket_size);
      const oldest = Math.min(...left.rows.map((row) => (row.oldest as Date).getTime()));
      const settled = left.rows.every((row) => row.bucket_size === 'day' || !row.pending) && left.rows[0]?.unaggregated === 0;
      return sizes.join() === 'day,hour,minute' && oldest >= bucketStart(now - 31 * 86_400_000, 'day') && settled ? true : undefined;
    }, 15_000, 'the scheduled aggregation, roll-up and retention');
    await expectAggregatesOf(db, table, recent, 'hour');
    expect(await sink.expireAggregates(now + 40 * 86_400_000)).toBeGreaterThan(0);
    expect((await db.query(`SELECT count(*)::int AS n FROM ${table}`)).rows[0].n).toBe(0);
  });

  it('is configured with aggregatesTable, trackAllPaths and aggregatesRetentionDays, bad values named', () => {
    const parsed = sinkConfigSchema.parse({ type: 'postgres', url: 'postgres://postgres@127.0.0.1:5432/test', aggregatesTable: 'tollgate_aggregates' });
    expect(parsed).toMatchObject({ aggregatesTable: 'tollgate_aggregates', trackAllPaths: false, aggregatesRetentionDays: 90, aggregatesIntervalSec: 60 });
    expect(sinkConfigSchema.parse({ type: 'postgres', url: 'postgres://x@h/db' })).not.toHaveProperty('aggregatesTable', expect.anything());
    const bad = sinkConfigSchema.safeParse({ type: 'postgres', url: 'postgres://x@h/db', aggregatesTable: 'Aggs!', aggregatesRetentionDays: 0 });
    expect(bad.error?.issues.map((issue) => issue.path.join('.'))).toEqual(['aggregatesTable', 'aggregatesRetentionDays']);
  });

  it('counts every path with trackAllPaths, and only tracked endpoints without it', async () => {
    const { url, db } = await newDatabase();
    const records = knownRecords(300, 8);
    const tracked = newSink(url);
    const all = newSink(url, { trackAllPaths: true });
    await Promise.all([tracked.open(), all.open()]);
    expect(await tracked.write(records)).toEqual([]);
    expect(await all.write(records)).toEqual([]);
    await Promise.all([tracked.flushAggregates(), all.flushAggregates()]);
    const hits = async (table: string): Promise<number> =>
      (await db.query(`SELECT coalesce(sum(hits), 0)::int AS n FROM ${table} WHERE dimension = 'api+normalisedPath'`)).rows[0].n;
    expect(await hits(`aggregates_${tables - 1}`)).toBe(records.filter((record) => record.trackedEndpoint !== null).length);
    expect(await hits(`aggregates_${tables}`)).toBe(records.length);
  });
});
