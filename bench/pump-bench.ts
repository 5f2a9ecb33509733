/**
 * Records/s one `tollgate pump` process delivers from the embedded spool into PostgreSQL and into
 * a file: a spool is filled with records as the gateway writes them (batches of 500), then the
 * pump is started on it and timed from the first batch that leaves the spool to the empty spool
 * (its start-up is not counted). Rounds interleave the targets; medians are printed, with the CPU
 * each record cost the pump and PostgreSQL. `postgres-aggregates` is `postgres` with
 * `aggregatesTable`, timed until the last record is aggregated too: the cost of aggregation.
 *
 * Environment: PUMP_BENCH_RECORDS (200000), PUMP_BENCH_ROUNDS (3), PUMP_BENCH_SINK_BATCH (1000),
 * PUMP_BENCH_CONNECTIONS (3), PUMP_BENCH_TARGETS (postgres,postgres-aggregates,file; mysql too), PUMP_BENCH_SOURCES (embedded,redis: the spool, or a Redis stream at PUMP_BENCH_REDIS, redis://127.0.0.1:6379), PUMP_BENCH_PG (postgres://postgres@127.0.0.1:5432/test),
 * PUMP_BENCH_MYSQL (mysql://root@127.0.0.1:3306: the mysql target's server, where a database of its own is made and dropped),
 * PUMP_BENCH_SHAPE: `answered` (default: the gateway answered, one leg, about 1 KB as MessagePack) or
 * `proxied` (a client leg and a back-end leg, about 1.5 KB); neither records header blocks.
 */
import { randomBytes } from 'node:crypto';
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import mysql from 'mysql2/promise';
import pg from 'pg';
import { createClient } from 'redis';
import { encodeBatch } from '../src/analytics/codec.js';
import { Spool, spoolPath } from '../src/buffer/spool.js';
import { newCorrelationId } from '../src/recording/correlation-id.js';
import { builtRecords } from '../test/support/built-records.js';
import { BIN } from '../test/support/gateway-process.js';
import { commandCpuSeconds, groupCpuSeconds } from './cpu.js';
import { positiveIntFromEnv } from './env.js';
import { scratchDirectory } from './processes.js';
import { median } from './summary.js';

const RECORDS = positiveIntFromEnv('PUMP_BENCH_RECORDS', 200_000);
const ROUNDS = positiveIntFromEnv('PUMP_BENCH_ROUNDS', 3);
const SINK_BATCH = positiveIntFromEnv('PUMP_BENCH_SINK_BATCH', 1000);
const CONNECTIONS = positiveIntFromEnv('PUMP_BENCH_CONNECTIONS', 3);
const TARGETS = (process.env.PUMP_BENCH_TARGETS ?? 'postgres,postgres-aggregates,file').split(',').filter(Boolean);
const SOURCES = (process.env.PUMP_BENCH_SOURCES ?? 'embedded,redis').split(',').filter(Boolean);
for (const source of SOURCES) if (source !== 'embedded' && source !== 'redis') throw new Error(`PUMP_BENCH_SOURCES: expected embedded or redis, found ${source}`);
const REDIS_URL = process.env.PUMP_BENCH_REDIS ?? 'redis://127.0.0.1:6379';
const USES_POSTGRES = TARGETS.some((target) => target.startsWith('postgres'));
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
if (USES_POSTGRES) {
  await admin.connect().catch((error: Error) => {
    throw new Error(`the postgres target needs PostgreSQL at ${ADMIN_URL}: ${error.message}`);
  });
  await admin.query(`CREATE DATABASE ${database}`);
}
const MYSQL_URL = process.env.PUMP_BENCH_MYSQL ?? 'mysql://root@127.0.0.1:3306';
const mysqlAdmin = TARGETS.includes('mysql')
  ? await mysql.createConnection(MYSQL_URL).catch((error: Error) => {
      throw new Error(`the mysql target needs MariaDB or MySQL at ${MYSQL_URL}: ${error.message}`);
    })
  : null;
await mysqlAdmin?.query(`CREATE DATABASE ${database}`);
/** The processes whose CPU counts as the server's, per target. */
const SERVER_COMMANDS: Record<string, string> = { postgres: 'postgres', 'postgres-aggregates': 'postgres', mysql: commandCpuSeconds('mariadbd') ? 'mariadbd' : 'mysqld' };
const databaseUrl = (): string => {
  const url = new URL(ADMIN_URL);
  url.pathname = `/${database}`;
  return url.toString();
};

/** RECORDS fresh records (new ids, the template's content) in batches as a gateway writes them. */
function* freshBatches(): Generator<{ data: Buffer; records: number }> {
  for (let filled = 0; filled < RECORDS; ) {
    const count = Math.min(SPOOL_BATCH, RECORDS - filled);
    yield { data: encodeBatch(template.slice(0, count).map((record) => ({ ...record, id: newCorrelationId() }))), records: count };
    filled += count;
  }
}

/** The buffer a round drains: how many records it still holds, and what the pump's config says of it. */
interface FilledBuffer {
  remaining(): Promise<number>;
  config: Record<string, unknown>;
  close(): Promise<void>;
}

function filledSpool(directory: string): FilledBuffer {
  const spool = new Spool(spoolPath(join(directory, 'spool'), 'bench', 'instance-1'));
  for (const batch of freshBatches()) spool.append([batch]);
  spool.checkpoint();
  return {
    remaining: async () => spool.totals().records,
    config: { type: 'embedded', directory: join(directory, 'spool') },
    close: async () => spool.close(),
  };
}

/** A stream of its own holding the batches as the redis buffer adds them (one entry per batch); the pump deletes what it acknowledged. */
async function filledStream(name: string): Promise<FilledBuffer> {
  const client = await createClient({ url: REDIS_URL }).connect().catch((error: Error) => {
    throw new Error(`the redis source needs Redis at ${REDIS_URL}: ${error.message}`);
  });
  await client.del(name);
  const adds = [...freshBatches()].map((batch) => client.sendCommand(['XADD', name, '*', 'data', batch.data, 'records', String(batch.records), 'instance', 'bench']));
  await Promise.all(adds);
  return {
    remaining: async () => (await client.xLen(name)) * SPOOL_BATCH,
    config: { type: 'redis', url: REDIS_URL, stream: name },
    close: async () => {
      await client.del(name);
      client.destroy();
    },
  };
}

/** The pump's configuration for one round: the filled buffer, one sink. */
function configFor(target: string, round: string, directory: string, buffer: Record<string, unknown>): string {
  const postgres = { type: 'postgres', url: databaseUrl(), table: `bench_${round}`, connections: CONNECTIONS, batchSize: SINK_BATCH };
  const sink =
    target === 'postgres'
      ? postgres
      : target === 'postgres-aggregates'
        ? { ...postgres, table: `bench_aggregated_${round}`, aggregatesTable: `bench_aggregates_${round}` }
      : target === 'mysql'
        ? { type: 'mysql', url: `${MYSQL_URL.replace(/\/$/, '')}/${database}`, table: `bench_${round}`, connections: CONNECTIONS, batchSize: SINK_BATCH }
        : target === 'file'
          ? { type: 'file', directory: join(directory, 'records'), batchSize: SINK_BATCH }
          : null;
  if (sink === null) throw new Error(`PUMP_BENCH_TARGETS: expected postgres, postgres-aggregates, mysql or file, found ${target}`);
  const config = {
    analytics: { buffer },
    pump: { group: `bench-${round}`, deadLetterDirectory: join(directory, 'dead-letter'), sinks: [sink] },
  };
  const file = join(directory, 'tollgate.yaml');
  writeFileSync(file, JSON.stringify(config));
  return file;
}

interface Drain {
  seconds: number;
  records: number;
  pumpCpuSeconds: number;
  serverCpuSeconds: number | undefined;
}

/** Starts `tollgate pump` on the filled buffer and times it from the first batch it takes away to the empty buffer. */
async function drain(configFile: string, buffer: FilledBuffer, serverCommand: string | undefined, settled?: () => Promise<boolean>): Promise<Drain> {
  // Its own process group, so that its CPU is read apart from everything else.
  const pump = spawn(process.execPath, [BIN, 'pump', '--config', configFile], { stdio: ['ignore', 'ignore', 'pipe'], detached: true });
  let output = '';
  pump.stderr.on('data', (chunk: Buffer) => (output += chunk.toString()));
  const exited = once(pump, 'exit');
  const pid = pump.pid as number;
  const pumpCpu = (): number => groupCpuSeconds([pid])?.[0] ?? Number.NaN;
  try {
    const deadline = Date.now() + 600_000;
    const waitFor = async (done: (records: number) => boolean, what: string): Promise<number> => {
      for (;;) {
        const records = await buffer.remaining();
        if (done(records)) return records;
        if (pump.exitCode !== null) throw new Error(`the pump exited (${pump.exitCode}) ${what}:\n${output}`);
        if (Date.now() > deadline) throw new Error(`the pump took more than 10 minutes ${what}:\n${output}`);
        await sleep(5);
      }
    };
    const left = await waitFor((records) => records < RECORDS, 'before taking any batch');
    const started = performance.now();
    // The server's processes on this host: their CPU per record, beside the pump's.
    const serverCpu = (): number | undefined => (serverCommand === undefined ? undefined : commandCpuSeconds(serverCommand));
    const [pumpBefore, serverBefore] = [pumpCpu(), serverCpu()];
    await waitFor((records) => records === 0, 'before emptying the buffer');
    while (settled && !(await settled())) {
      if (pump.exitCode !== null) throw new Error(`the pump exited (${pump.exitCode}) before settling:\n${output}`);
      if (Date.now() > deadline) throw new Error(`the pump took more than 10 minutes to settle:\n${output}`);
      await sleep(5);
    }
    const seconds = (performance.now() - started) / 1000;
    const [pumpAfter, serverAfter] = [pumpCpu(), serverCpu()];
    return {
      seconds,
      records: left,
      pumpCpuSeconds: pumpAfter - pumpBefore,
      serverCpuSeconds: serverBefore === undefined || serverAfter === undefined ? undefined : serverAfter - serverBefore,
    };
  } finally {
    pump.kill('SIGTERM');
    await exited;
  }
}

async function rowsIn(target: string, table: string): Promise<number> {
  if (target === 'mysql') {
    const [rows] = await (mysqlAdmin as mysql.Connection).query<mysql.RowDataPacket[]>(`SELECT count(*) AS n FROM ${database}.${table}`);
    return Number(rows[0]?.n);
  }
  const client = new pg.Client({ connectionString: databaseUrl() });
  await client.connect();
  try {
    return (await client.query<{ n: number }>(`SELECT count(*)::int AS n FROM ${table}`)).rows[0]?.n ?? 0;
  } finally {
    await client.end();
  }
}

/** Whether every record written with aggregates was aggregated: its pending table is empty and the minutes count them all. */
async function aggregated(client: pg.Client, round: string): Promise<boolean> {
  const table = `bench_aggregates_${round}`;
  try {
    const found = await client.query<{ pending: number | null; hits: number | null }>(
      `SELECT (SELECT count(*)::int FROM ${table}_pending) AS pending, (SELECT sum(hits)::int FROM ${table} WHERE dimension = 'total' AND bucket_size = 'minute') AS hits`,
    );
    return found.rows[0]?.pending === 0 && found.rows[0]?.hits === RECORDS;
  } catch {
    return false; // The pump has not made the table yet.
  }
}

console.log(
  `pump bench: ${RECORDS} ${SHAPE} records of ${Math.round(recordBytes)} B MessagePack (${Math.round(jsonBytes)} B as JSON), spooled in batches of ${SPOOL_BATCH}; ` +
    `sink batches of ${SINK_BATCH}; postgres on ${CONNECTIONS} connections; ${ROUNDS} interleaved rounds; one tollgate pump process`,
);
const runs = SOURCES.flatMap((source) => TARGETS.map((target) => ({ source, target, name: SOURCES.length > 1 ? `${target} from ${source}` : target })));
const rates = new Map<string, number[]>(runs.map(({ name }) => [name, []]));
const micros = new Map<string, [number, number][]>(runs.map(({ name }) => [name, []]));
try {
  for (let round = 1; round <= ROUNDS; round++) {
    for (const { source, target, name } of runs) {
      const directory = join(scratch, `${target}-${source}-${round}`);
      mkdirSync(join(directory, 'spool'), { recursive: true });
      const buffer = source === 'redis' ? await filledStream(`tollgate:bench:${database}:${target}:${round}`) : filledSpool(directory);
      const checker = target === 'postgres-aggregates' ? new pg.Client({ connectionString: databaseUrl() }) : null;
      await checker?.connect();
      // Tables of their own per round and source: `bench_<source>_<round>`.
      const tables = `${source}_${round}`;
      const settled = checker ? () => aggregated(checker, tables) : undefined;
      const result = await drain(configFor(target, tables, directory, buffer.config), buffer, SERVER_COMMANDS[target], settled)
        .finally(() => checker?.end())
        .finally(() => buffer.close());
      const table = target === 'postgres-aggregates' ? `bench_aggregated_${tables}` : `bench_${tables}`;
      if (target in SERVER_COMMANDS && (await rowsIn(target, table)) !== RECORDS) throw new Error(`${name}: not every record is in the table`);
      const rate = result.records / result.seconds;
      const pumpMicros = (result.pumpCpuSeconds * 1e6) / result.records;
      const serverMicros = result.serverCpuSeconds !== undefined ? (result.serverCpuSeconds * 1e6) / result.records : undefined;
      rates.get(name)?.push(rate);
      micros.get(name)?.push([pumpMicros, serverMicros ?? 0]);
      console.log(
        `round ${round} ${name}: ${Math.round(rate)} records/s (${result.records} in ${result.seconds.toFixed(2)} s); CPU per record: ${pumpMicros.toFixed(1)} us in the pump` +
          (serverMicros === undefined ? '' : `, ${serverMicros.toFixed(1)} us in ${SERVER_COMMANDS[target]}`),
      );
    }
  }
  for (const { target, name } of runs) {
    const values = rates.get(name) ?? [];
    const cpu = micros.get(name) ?? [];
    const pump = median(cpu.map(([pumpMicros]) => pumpMicros));
    const server = median(cpu.map(([, serverMicros]) => serverMicros));
    console.log(
      `median ${name}: ${Math.round(median(values))} records/s over ${values.length} rounds; CPU per record ${pump.toFixed(1)} us in the pump` +
        (target in SERVER_COMMANDS ? `, ${server.toFixed(1)} us in ${SERVER_COMMANDS[target]} (every session's: other users of the server count too)` : ''),
    );
  }
  for (const source of SOURCES) {
    const of = (target: string): number[] | undefined => rates.get(runs.find((run) => run.source === source && run.target === target)?.name ?? '');
    const [plain, aggregating] = [of('postgres'), of('postgres-aggregates')];
    if (plain?.length && aggregating?.length) {
      const cost = (1 - median(aggregating) / median(plain)) * 100;
      console.log(`aggregation costs ${cost.toFixed(1)}% of the pump's PostgreSQL throughput from the ${source} buffer (goal: <= 15%)`);
    }
  }
} finally {
  if (USES_POSTGRES) {
    await admin.query(`DROP DATABASE IF EXISTS ${database} WITH (FORCE)`);
    await admin.end();
  }
  await mysqlAdmin?.query(`DROP DATABASE IF EXISTS ${database}`);
  await mysqlAdmin?.end();
}
