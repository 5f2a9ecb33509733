/**
 * Records/s one `tollgate pump` process delivers from the embedded spool into PostgreSQL and into
 * a file: a spool is filled with records as the gateway writes them (batches of 500), then the
 * pump is started on it and timed from the first batch that leaves the spool to the empty spool
 * (its start-up is not counted). Rounds interleave the targets; medians are printed, with the CPU
 * each record cost the pump and PostgreSQL. `postgres-aggregates` is `postgres` with
 * `aggregatesTable`, timed until the last record is aggregated too: the cost of aggregation.
 *
 * Environment: PUMP_BENCH_RECORDS (200000), PUMP_BENCH_ROUNDS (3), PUMP_BENCH_SINK_BATCH (1000),
 * PUMP_BENCH_CONNECTIONS (3), PUMP_BENCH_TARGETS (postgres,postgres-aggregates,file; mysql too), PUMP_BENCH_PG (postgres://postgres@127.0.0.1:5432/test),
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

/** The pump's configuration for one round: the spool directory as its buffer, one sink. */
function configFor(target: string, round: number, directory: string): string {
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
    analytics: { buffer: { type: 'embedded', directory: join(directory, 'spool') } },
    pump: { deadLetterDirectory: join(directory, 'dead-letter'), sinks: [sink] },
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

/** Starts `tollgate pump` on the filled spool and times it from the first batch it takes away to the empty spool. */
async function drain(configFile: string, spool: Spool, serverCommand: string | undefined, settled?: () => Promise<boolean>): Promise<Drain> {
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
        const { records } = spool.totals();
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
    await waitFor((records) => records === 0, 'before emptying the spool');
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
async function aggregated(client: pg.Client, round: number): Promise<boolean> {
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
const rates = new Map<string, number[]>(TARGETS.map((target) => [target, []]));
const micros = new Map<string, [number, number][]>(TARGETS.map((target) => [target, []]));
try {
  for (let round = 1; round <= ROUNDS; round++) {
    for (const target of TARGETS) {
      const directory = join(scratch, `${target}-${round}`);
      mkdirSync(join(directory, 'spool'), { recursive: true });
      const spool = filledSpool(spoolPath(join(directory, 'spool'), 'bench', 'instance-1'));
      const checker = target === 'postgres-aggregates' ? new pg.Client({ connectionString: databaseUrl() }) : null;
      await checker?.connect();
      const settled = checker ? () => aggregated(checker, round) : undefined;
      const result = await drain(configFor(target, round, directory), spool, SERVER_COMMANDS[target], settled).finally(() => checker?.end());
      spool.close();
      const table = target === 'postgres-aggregates' ? `bench_aggregated_${round}` : `bench_${round}`;
      if (target in SERVER_COMMANDS && (await rowsIn(target, table)) !== RECORDS) throw new Error(`${target}: not every record is in the table`);
      const rate = result.records / result.seconds;
      const pumpMicros = (result.pumpCpuSeconds * 1e6) / result.records;
      const serverMicros = result.serverCpuSeconds !== undefined ? (result.serverCpuSeconds * 1e6) / result.records : undefined;
      rates.get(target)?.push(rate);
      micros.get(target)?.push([pumpMicros, serverMicros ?? 0]);
      console.log(
        `round ${round} ${target}: ${Math.round(rate)} records/s (${result.records} in ${result.seconds.toFixed(2)} s); CPU per record: ${pumpMicros.toFixed(1)} us in the pump` +
          (serverMicros === undefined ? '' : `, ${serverMicros.toFixed(1)} us in ${SERVER_COMMANDS[target]}`),
      );
    }
  }
  for (const [target, values] of rates) {
    const cpu = micros.get(target) ?? [];
    const pump = median(cpu.map(([pumpMicros]) => pumpMicros));
    const server = median(cpu.map(([, serverMicros]) => serverMicros));
    console.log(
      `median ${target}: ${Math.round(median(values))} records/s over ${values.length} rounds; CPU per record ${pump.toFixed(1)} us in the pump` +
        (target in SERVER_COMMANDS ? `, ${server.toFixed(1)} us in ${SERVER_COMMANDS[target]} (every session's: other users of the server count too)` : ''),
    );
  }
  const [plain, aggregating] = [rates.get('postgres'), rates.get('postgres-aggregates')];
  if (plain?.length && aggregating?.length) {
    const cost = (1 - median(aggregating) / median(plain)) * 100;
    console.log(`aggregation costs ${cost.toFixed(1)}% of the pump's PostgreSQL throughput (goal: <= 15%)`);
  }
} finally {
  if (USES_POSTGRES) {
    await admin.query(`DROP DATABASE IF EXISTS ${database} WITH (FORCE)`);
    await admin.end();
  }
  await mysqlAdmin?.query(`DROP DATABASE IF EXISTS ${database}`);
  await mysqlAdmin?.end();
}
