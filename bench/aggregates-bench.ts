/**
 * The cost of aggregation in the postgres sink: records/s one sink writes into PostgreSQL with and
 * without `aggregatesTable`, in interleaved rounds of the same run (each round on fresh tables),
 * batches as the pump gives them, timed until the last record is aggregated. Records are spread
 * over a few minutes, APIs, keys, statuses and tags, as traffic makes them. Beside records/s, the
 * CPU each record cost this process and the sink's PostgreSQL backends: on a busy machine the
 * steadier figure. Prints each round and the medians.
 *
 * Environment: AGGREGATES_BENCH_RECORDS (100000 per round), AGGREGATES_BENCH_ROUNDS (3),
 * AGGREGATES_BENCH_BATCH (1000), AGGREGATES_BENCH_CONNECTIONS (3),
 * AGGREGATES_BENCH_PG (postgres://postgres@127.0.0.1:5432/test).
 */
import { randomBytes } from 'node:crypto';
import pg from 'pg';
import type { AnalyticsRecord } from '../src/analytics/analytics-record.js';
import { newCorrelationId } from '../src/recording/correlation-id.js';
import { PostgresSink } from '../src/pump/sinks/postgres.js';
import { builtRecords } from '../test/support/built-records.js';
import { pidCpuSeconds } from './cpu.js';
import { positiveIntFromEnv } from './env.js';
import { median } from './summary.js';

const RECORDS = positiveIntFromEnv('AGGREGATES_BENCH_RECORDS', 100_000);
const ROUNDS = positiveIntFromEnv('AGGREGATES_BENCH_ROUNDS', 3);
const BATCH = positiveIntFromEnv('AGGREGATES_BENCH_BATCH', 1000);
const CONNECTIONS = positiveIntFromEnv('AGGREGATES_BENCH_CONNECTIONS', 3);
const ADMIN_URL = process.env.AGGREGATES_BENCH_PG ?? 'postgres://postgres@127.0.0.1:5432/test';

const admin = new pg.Client({ connectionString: ADMIN_URL });
await admin.connect().catch((error: Error) => {
  throw new Error(`this bench needs PostgreSQL at ${ADMIN_URL}: ${error.message}`);
});
const database = `tollgate_bench_${randomBytes(4).toString('hex')}`;
await admin.query(`CREATE DATABASE ${database}`);
const url = new URL(ADMIN_URL);
url.pathname = `/${database}`;

/** Template records, given fresh ids per round: 5 minutes of traffic, 4 APIs, 50 keys, 3 tags. */
const template: AnalyticsRecord[] = builtRecords(5000, { headers: false }).map((record, i) => ({
  ...record,
  timestamp: Date.UTC(2026, 10, 20, 12, 0, 0) + Math.floor((i / 5000) * 5 * 60_000),
  apiId: `api-${i % 4}`,
  status: [200, 200, 200, 201, 404, 500][i % 6] as number,
  latencyTotal: 1 + ((i * 7919) % 2000) / 10,
  latencyUpstream: ((i * 7919) % 2000) / 11,
  apiKeyHash: `key-${i % 50}`,
  tags: [`tag-${i % 3}`],
}));

function recordsForRound(): AnalyticsRecord[] {
  return Array.from({ length: RECORDS }, (_, i) => ({ ...(template[i % template.length] as AnalyticsRecord), id: newCorrelationId() }));
}

let tables = 0;
interface Round {
  perSecond: number;
  /** CPU µs per record: this process, and the sink's PostgreSQL backends. */
  pumpMicros: number;
  serverMicros: number;
}

/** The backends of this bench's connections (all closed after each round). */
async function backendPids(): Promise<number[]> {
  const found = await admin.query<{ pid: number }>("SELECT pid FROM pg_stat_activity WHERE application_name = 'tollgate pump bench' AND datname = $1", [database]);
  return found.rows.map((row) => row.pid);
}

async function round(aggregates: boolean): Promise<Round> {
  const n = ++tables;
  const sink = new PostgresSink(
    {
      url: url.toString(),
      table: `records_${n}`,
      aggregatesTable: aggregates ? `aggregates_${n}` : undefined,
      connections: CONNECTIONS,
      timeoutMs: 30_000,
      expireIntervalSec: 3600,
      expireChunkRows: 10_000,
      trackAllPaths: false,
      aggregatesRetentionDays: 3650,
      aggregatesIntervalSec: 3600,
    },
    { name: 'bench', notify: () => undefined },
  );
  await sink.open();
  const records = recordsForRound();
  const pidsBefore = await backendPids();
  const serverBefore = pidCpuSeconds(pidsBefore);
  const cpuBefore = process.cpuUsage();
  const started = performance.now();
  for (let start = 0; start < records.length; start += BATCH) {
    const rejected = await sink.write(records.slice(start, start + BATCH));
    if (rejected.length > 0) throw new Error(`PostgreSQL refused ${rejected.length} records: ${rejected[0]?.reason}`);
  }
  // Counted until the last record is aggregated, not only inserted.
  await sink.flushAggregates();
  const perSecond = records.length / ((performance.now() - started) / 1000);
  const cpu = process.cpuUsage(cpuBefore);
  // Backends opened during the round count from zero.
  const server = pidCpuSeconds(await backendPids()) - serverBefore;
  await sink.close();
  return { perSecond, pumpMicros: (cpu.user + cpu.system) / records.length, serverMicros: (server * 1e6) / records.length };
}

const results: Record<'plain' | 'aggregates', Round[]> = { plain: [], aggregates: [] };
try {
  for (let i = 0; i < ROUNDS; i++) {
    // Alternate which goes first, so neither always meets a warmer server.
    const order = i % 2 === 0 ? (['plain', 'aggregates'] as const) : (['aggregates', 'plain'] as const);
    for (const kind of order) {
      const result = await round(kind === 'aggregates');
      results[kind].push(result);
      console.log(
        `round ${i + 1} ${kind}: ${Math.round(result.perSecond)} records/s, CPU per record ${result.pumpMicros.toFixed(1)} µs pump + ${result.serverMicros.toFixed(1)} µs PostgreSQL`,
      );
    }
  }
} finally {
  await admin.query(`DROP DATABASE IF EXISTS ${database} WITH (FORCE)`);
  await admin.end();
}
const medianOf = (kind: 'plain' | 'aggregates', figure: (round: Round) => number): number => median(results[kind].map(figure));
const plain = medianOf('plain', (r) => r.perSecond);
const withAggregates = medianOf('aggregates', (r) => r.perSecond);
const cpuOf = (kind: 'plain' | 'aggregates'): number => medianOf(kind, (r) => r.pumpMicros + r.serverMicros);
console.log(
  `records into PostgreSQL (${RECORDS} per round, batches of ${BATCH}, ${CONNECTIONS} connections, median of ${ROUNDS}): ` +
    `${Math.round(plain)}/s plain, ${Math.round(withAggregates)}/s with aggregatesTable: aggregation costs ${((1 - withAggregates / plain) * 100).toFixed(1)}% of throughput (goal: <= 15%); ` +
    `CPU per record ${cpuOf('plain').toFixed(1)} µs plain, ${cpuOf('aggregates').toFixed(1)} µs with aggregates (+${((cpuOf('aggregates') / cpuOf('plain') - 1) * 100).toFixed(1)}%)`,
);
