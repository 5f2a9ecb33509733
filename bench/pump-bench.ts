/**
 * Records/s a pump delivers from the embedded spool into PostgreSQL and into a file: a spool is
 * filled with records as the gateway writes them (batches of 500), then drained the way the pump
 * drains it (read, decode, write one sink batch at a time, delete what was written), timed from
 * the first read to the empty spool. Rounds interleave the targets; medians are printed.
 *
 * The sinks are driven directly in this process (no `tollgate pump` child): the figures are the
 * sink's and the spool's, without the pump's own bookkeeping.
 *
 * Environment: PUMP_BENCH_RECORDS (200000), PUMP_BENCH_ROUNDS (3), PUMP_BENCH_SINK_BATCH (1000),
 * PUMP_BENCH_CONNECTIONS (3), PUMP_BENCH_TARGETS (postgres,file), PUMP_BENCH_PG (postgres://postgres@127.0.0.1:5432/test),
 * PUMP_BENCH_SHAPE: `answered` (default: the gateway answered, one leg, about 1 KB as MessagePack) or
 * `proxied` (a client leg and a back-end leg, about 1.5 KB); neither records header blocks.
 */
import { randomBytes } from 'node:crypto';
import { join } from 'node:path';
import pg from 'pg';
import type { AnalyticsRecord } from '../src/analytics/analytics-record.js';
import { decodeBatch, encodeBatch } from '../src/analytics/codec.js';
import { Spool } from '../src/buffer/spool.js';
import { newCorrelationId } from '../src/recording/correlation-id.js';
import type { Sink } from '../src/pump/sink.js';
import { fileSink } from '../src/pump/sinks/file.js';
import { postgresSink } from '../src/pump/sinks/postgres.js';
import { sinkConfigSchema } from '../src/pump/sinks/registry.js';
import { builtRecords } from '../test/support/built-records.js';
import { commandCpuSeconds } from './cpu.js';
import { positiveIntFromEnv } from './env.js';
import { scratchDirectory } from './processes.js';
import { median } from './summary.js';

const RECORDS = positiveIntFromEnv('PUMP_BENCH_RECORDS', 200_000);
const ROUNDS = positiveIntFromEnv('PUMP_BENCH_ROUNDS', 3);
const SINK_BATCH = positiveIntFromEnv('PUMP_BENCH_SINK_BATCH', 1000);
const CONNECTIONS = positiveIntFromEnv('PUMP_BENCH_CONNECTIONS', 3);
const TARGETS = (process.env.PUMP_BENCH_TARGETS ?? 'postgres,file').split(',').filter(Boolean);
const ADMIN_URL = process.env.PUMP_BENCH_PG ?? 'postgres://postgres@127.0.0.1:5432/test';
const SHAPE = process.env.PUMP_BENCH_SHAPE ?? 'answered';
if (SHAPE !== 'answered' && SHAPE !== 'proxied') throw new Error(`PUMP_BENCH_SHAPE: expected answered or proxied, found ${SHAPE}`);
/** Records per spooled batch, as the gateway writes them. */
const SPOOL_BATCH = 500;

const scratch = await scratchDirectory('tollgate-pump-bench-');
const template = builtRecords(SPOOL_BATCH, { headers: false, upstream: SHAPE === 'proxied' });
const recordBytes = encodeBatch(template).length / SPOOL_BATCH;
const jsonBytes = Buffer.byteLength(template.map((record) => JSON.stringify(record)).join('')) / SPOOL_BATCH;

const admin = new pg.Client({ connectionString: ADMIN_URL });
const database = `tollgate_bench_${randomBytes(4).toString('hex')}`;
if (TARGETS.includes('postgres')) {
  await admin.connect().catch((error: Error) => {
    throw new Error(`the postgres target needs PostgreSQL at ${ADMIN_URL}: ${error.message}`);
  });
  await admin.query(`CREATE DATABASE ${database}`);
}
/** PostgreSQL's processes on this host: their CPU per record, beside the pump's. */
const serverCpuSeconds = (): number | undefined => commandCpuSeconds('postgres');
const databaseUrl = (): string => {
  const url = new URL(ADMIN_URL);
  url.pathname = `/${database}`;
  return url.toString();
};

/** A spool holding RECORDS fresh records (new ids, the template's content), as a gateway leaves it. */
function filledSpool(path: string): Spool {
  const spool = new Spool(path);
  for (let filled = 0; filled < RECORDS; ) {
    const count = Math.min(SPOOL_BATCH, RECORDS - filled);
    const records = template.slice(0, count).map((record) => ({ ...record, id: newCorrelationId() }));
    spool.append([{ data: encodeBatch(records), records: count }]);
    filled += count;
  }
  spool.checkpoint();
  return spool;
}

function sinkFor(target: string, round: number): Sink {
  const notify = (message: string): void => void process.stderr.write(`${message}\n`);
  if (target === 'postgres') {
    const options = sinkConfigSchema.parse({ type: 'postgres', url: databaseUrl(), table: `bench_${round}`, connections: CONNECTIONS });
    return postgresSink.create(options as unknown as Parameters<typeof postgresSink.create>[0], { name: 'postgres', notify });
  }
  if (target === 'file') {
    const options = sinkConfigSchema.parse({ type: 'file', directory: join(scratch, `records-${round}`) });
    return fileSink.create(options as unknown as Parameters<typeof fileSink.create>[0], { name: 'file', notify });
  }
  throw new Error(`PUMP_BENCH_TARGETS: expected postgres or file, found ${target}`);
}

/** Drains the spool into the sink as the pump does: the next sink batch is read and decoded while the current one is written. */
async function drain(spool: Spool, sink: Sink): Promise<number> {
  let afterId = 0;
  const next = (): { records: AnalyticsRecord[]; ids: number[] } => {
    const records: AnalyticsRecord[] = [];
    const ids: number[] = [];
    while (records.length < SINK_BATCH) {
      const [batch] = spool.read(afterId, 1);
      if (batch === undefined) break;
      afterId = batch.id;
      ids.push(batch.id);
      records.push(...decodeBatch(batch.data));
    }
    return { records, ids };
  };
  const started = performance.now();
  let current = next();
  let written: number[] = [];
  while (current.records.length > 0) {
    const writing = sink.write(current.records);
    // The batches written last leave the spool while these are written.
    spool.delete(written);
    const following = next();
    const rejected = await writing;
    if (rejected.length > 0) throw new Error(`${rejected.length} records rejected: ${rejected[0]?.reason}`);
    written = current.ids;
    current = following;
  }
  spool.delete(written);
  return (performance.now() - started) / 1000;
}

async function rowsIn(table: string): Promise<number> {
  const client = new pg.Client({ connectionString: databaseUrl() });
  await client.connect();
  try {
    return (await client.query<{ n: number }>(`SELECT count(*)::int AS n FROM ${table}`)).rows[0]?.n ?? 0;
  } finally {
    await client.end();
  }
}

console.log(
  `pump bench: ${RECORDS} ${SHAPE} records of ${Math.round(recordBytes)} B MessagePack (${Math.round(jsonBytes)} B as JSON), spooled in batches of ${SPOOL_BATCH}; ` +
    `sink batches of ${SINK_BATCH}; postgres on ${CONNECTIONS} connections; ${ROUNDS} interleaved rounds; sinks driven in-process`,
);
const rates = new Map<string, number[]>(TARGETS.map((target) => [target, []]));
const micros = new Map<string, [number, number][]>(TARGETS.map((target) => [target, []]));
try {
  for (let round = 1; round <= ROUNDS; round++) {
    for (const target of TARGETS) {
      const spool = filledSpool(join(scratch, `${target}-${round}.spool`));
      const sink = sinkFor(target, round);
      await sink.open();
      const cpuBefore = process.cpuUsage();
      const serverBefore = serverCpuSeconds();
      const seconds = await drain(spool, sink);
      const cpu = process.cpuUsage(cpuBefore);
      const serverAfter = serverCpuSeconds();
      await sink.close();
      if (spool.totals().records !== 0) throw new Error(`${target}: the spool was not drained`);
      spool.close();
      if (target === 'postgres' && (await rowsIn(`bench_${round}`)) !== RECORDS) throw new Error('postgres: not every record is in the table');
      const rate = RECORDS / seconds;
      rates.get(target)?.push(rate);
      const pumpMicros = (cpu.user + cpu.system) / RECORDS;
      const serverMicros = target === 'postgres' && serverBefore !== undefined && serverAfter !== undefined ? ((serverAfter - serverBefore) * 1e6) / RECORDS : undefined;
      micros.get(target)?.push([pumpMicros, serverMicros ?? 0]);
      console.log(
        `round ${round} ${target}: ${Math.round(rate)} records/s (${seconds.toFixed(2)} s); CPU per record: ${pumpMicros.toFixed(1)} us in this process` +
          (serverMicros === undefined ? '' : `, ${serverMicros.toFixed(1)} us in PostgreSQL`),
      );
    }
  }
  for (const [target, values] of rates) {
    const cpu = micros.get(target) ?? [];
    const pump = median(cpu.map(([pumpMicros]) => pumpMicros));
    const server = median(cpu.map(([, serverMicros]) => serverMicros));
    console.log(
      `median ${target}: ${Math.round(median(values))} records/s over ${values.length} rounds; CPU per record ${pump.toFixed(1)} us in this process` +
        (target === 'postgres' ? `, ${server.toFixed(1)} us in PostgreSQL (every session's: other users of the server count too)` : ''),
    );
  }
} finally {
  if (TARGETS.includes('postgres')) {
    await admin.query(`DROP DATABASE IF EXISTS ${database} WITH (FORCE)`);
    await admin.end();
  }
}
