/**
 * The postgres sink's table design, measured: a plain table (expiry deletes rows in chunks) against
 * one partitioned by day (expiry drops a day's partition). Both are written by the sink itself,
 * rounds interleaved; then the rows of one day are expired each way.
 *
 * Environment: LAYOUT_BENCH_RECORDS (100000 per round), LAYOUT_BENCH_ROUNDS (3), LAYOUT_BENCH_PG
 * (postgres://postgres@127.0.0.1:5432/test).
 */
import { randomBytes } from 'node:crypto';
import pg from 'pg';
import type { AnalyticsRecord } from '../src/analytics/analytics-record.js';
import { newCorrelationId } from '../src/recording/correlation-id.js';
import { PostgresSink } from '../src/pump/sinks/postgres.js';
import { TABLE_COLUMNS } from '../src/pump/sinks/postgres-rows.js';
import { SCHEMA_VERSION, VERSIONS_TABLE } from '../src/pump/sinks/postgres-schema.js';
import { builtRecords } from '../test/support/built-records.js';
import { commandCpuSeconds } from './cpu.js';
import { positiveIntFromEnv } from './env.js';
import { median } from './summary.js';

const RECORDS = positiveIntFromEnv('LAYOUT_BENCH_RECORDS', 100_000);
const ROUNDS = positiveIntFromEnv('LAYOUT_BENCH_ROUNDS', 3);
const ADMIN_URL = process.env.LAYOUT_BENCH_PG ?? 'postgres://postgres@127.0.0.1:5432/test';
const DAY_MS = 86_400_000;
/** The records of a round are spread over these days (each a partition). */
const DAYS = 2;
const LAYOUTS = ['plain', 'daily'] as const;
type Layout = (typeof LAYOUTS)[number];

const admin = new pg.Client({ connectionString: ADMIN_URL });
await admin.connect();
const database = `tollgate_layout_${randomBytes(4).toString('hex')}`;
await admin.query(`CREATE DATABASE ${database}`);
const url = new URL(ADMIN_URL);
url.pathname = `/${database}`;
const db = new pg.Client({ connectionString: url.toString() });
await db.connect();

const template = builtRecords(1000, { headers: false });
const firstDay = Math.floor(Date.now() / DAY_MS) * DAY_MS - DAYS * DAY_MS;
function records(): AnalyticsRecord[] {
  return Array.from({ length: RECORDS }, (_, i) => {
    const timestamp = firstDay + Math.floor((i * DAYS * DAY_MS) / RECORDS);
    return { ...(template[i % template.length] as AnalyticsRecord), id: newCorrelationId(), timestamp, expireAt: timestamp + DAY_MS };
  });
}

/** The partitioned table, made beforehand and recorded as current, so that the sink's migration leaves it. */
async function partitioned(table: string): Promise<void> {
  await db.query(`CREATE TABLE ${table} (${TABLE_COLUMNS}, PRIMARY KEY (id, time)) PARTITION BY RANGE (time)`);
  await db.query(`CREATE INDEX ${table}_time ON ${table} USING brin (time)`);
  for (let day = 0; day < DAYS; day++) {
    const from = new Date(firstDay + day * DAY_MS).toISOString();
    const to = new Date(firstDay + (day + 1) * DAY_MS).toISOString();
    await db.query(`CREATE TABLE ${table}_d${day} PARTITION OF ${table} FOR VALUES FROM ('${from}') TO ('${to}')`);
  }
  await db.query(`CREATE TABLE IF NOT EXISTS ${VERSIONS_TABLE} (table_name text PRIMARY KEY, version integer NOT NULL, migrated_at timestamptz NOT NULL)`);
  await db.query(`INSERT INTO ${VERSIONS_TABLE} VALUES ($1, $2, now())`, [table, SCHEMA_VERSION]);
}

async function walBytes<T>(work: () => Promise<T>): Promise<{ result: T; seconds: number; wal: number; serverCpu: number }> {
  const lsn = async (): Promise<string> => (await db.query<{ lsn: string }>('SELECT pg_current_wal_lsn() AS lsn')).rows[0]?.lsn as string;
  const before = await lsn();
  const cpu = commandCpuSeconds('postgres') ?? Number.NaN;
  const started = performance.now();
  const result = await work();
  const seconds = (performance.now() - started) / 1000;
  const serverCpu = (commandCpuSeconds('postgres') ?? Number.NaN) - cpu;
  const wal = Number((await db.query<{ bytes: string }>('SELECT pg_wal_lsn_diff(pg_current_wal_lsn(), $1) AS bytes', [before])).rows[0]?.bytes);
  return { result, seconds, wal, serverCpu };
}

const inserts = new Map<Layout, { rate: number; cpu: number; wal: number }[]>(LAYOUTS.map((layout) => [layout, []]));
const expiries = new Map<Layout, { seconds: number; wal: number }[]>(LAYOUTS.map((layout) => [layout, []]));
const notify = (): void => undefined;
try {
  for (let round = 1; round <= ROUNDS; round++) {
    for (const layout of LAYOUTS) {
      const table = `${layout}_${round}`;
      if (layout === 'daily') await partitioned(table);
      const sink = new PostgresSink(
        { url: url.toString(), table, connections: 3, timeoutMs: 60_000, expireIntervalSec: 3600, expireChunkRows: 10_000 },
        { name: 'postgres', notify },
      );
      await sink.open();
      const batch = records();
      await db.query('CHECKPOINT');
      const written = await walBytes(async () => {
        for (let start = 0; start < batch.length; start += 1000) await sink.write(batch.slice(start, start + 1000));
      });
      inserts.get(layout)?.push({ rate: RECORDS / written.seconds, cpu: (written.serverCpu * 1e6) / RECORDS, wal: written.wal / RECORDS });
      // Expire the first day: half the rows.
      const expired = await walBytes(() =>
        layout === 'plain' ? sink.expire(firstDay + 2 * DAY_MS) : db.query(`DROP TABLE ${table}_d0`).then(() => RECORDS / DAYS),
      );
      expiries.get(layout)?.push({ seconds: expired.seconds, wal: expired.wal });
      await sink.close();
      console.log(
        `round ${round} ${layout}: insert ${Math.round(RECORDS / written.seconds)} records/s, ${((written.serverCpu * 1e6) / RECORDS).toFixed(1)} us PostgreSQL CPU and ` +
          `${Math.round(written.wal / RECORDS)} B of WAL per record; expiring ${expired.result} rows: ${expired.seconds.toFixed(3)} s, ${(expired.wal / 1e6).toFixed(1)} MB of WAL`,
      );
      await db.query(`DROP TABLE ${table}`);
    }
  }
  for (const layout of LAYOUTS) {
    const insert = inserts.get(layout) ?? [];
    const expiry = expiries.get(layout) ?? [];
    console.log(
      `median ${layout}: insert ${Math.round(median(insert.map((x) => x.rate)))} records/s, ${median(insert.map((x) => x.cpu)).toFixed(1)} us PostgreSQL CPU, ` +
        `${Math.round(median(insert.map((x) => x.wal)))} B WAL per record; expiring ${RECORDS / DAYS} rows: ${median(expiry.map((x) => x.seconds)).toFixed(3)} s, ` +
        `${(median(expiry.map((x) => x.wal)) / 1e6).toFixed(1)} MB WAL`,
    );
  }
} finally {
  await db.end();
  await admin.query(`DROP DATABASE IF EXISTS ${database} WITH (FORCE)`);
  await admin.end();
}
