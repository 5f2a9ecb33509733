/**
 * Records/s the `mysql` sink writes into MariaDB, measured at the sink (no pump process, no
 * spool): batches of records as the gateway builds them (header blocks recorded: about 1 KB of
 * row each) go through `MysqlSink.write`, one batch after the other, into a fresh table. Beside it,
 * the two idempotent statements the sink could use, on one connection with the sink's rows:
 * `INSERT ... ON DUPLICATE KEY UPDATE id = id` (what it uses) and `INSERT IGNORE`, and the first
 * with the JSON columns as plain LONGTEXT (no JSON_VALID check). Each variant has a fresh table,
 * dropped after it. Rounds interleave the variants; medians are printed, with the CPU each record
 * cost MariaDB (all its threads, when it runs on this machine) and this process: on a busy
 * machine the CPU per record moves less than the rate.
 *
 * Run: node --import tsx bench/mysql-sink.ts
 * Environment: MYSQL_BENCH_RECORDS (50000), MYSQL_BENCH_ROUNDS (3), MYSQL_BENCH_BATCH (1000),
 * MYSQL_BENCH_URL (mysql://root@127.0.0.1:3306): the server; a database of its own is made and dropped.
 */
import { randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import mysql from 'mysql2/promise';
import type { AnalyticsRecord } from '../src/analytics/analytics-record.js';
import { MysqlSink } from '../src/pump/sinks/mysql.js';
import { SESSION_SETUP, valuesRow } from '../src/pump/sinks/mysql-rows.js';
import { COLUMN_LIST } from '../src/pump/sinks/record-columns.js';
import { newCorrelationId } from '../src/recording/correlation-id.js';
import { builtRecords } from '../test/support/built-records.js';
import { commandCpuSeconds } from './cpu.js';
import { positiveIntFromEnv } from './env.js';
import { median } from './summary.js';

const RECORDS = positiveIntFromEnv('MYSQL_BENCH_RECORDS', 50_000);
const ROUNDS = positiveIntFromEnv('MYSQL_BENCH_ROUNDS', 3);
const BATCH = positiveIntFromEnv('MYSQL_BENCH_BATCH', 1000);
const SERVER = process.env.MYSQL_BENCH_URL ?? 'mysql://root@127.0.0.1:3306';

const database = `tollgate_bench_${randomBytes(4).toString('hex')}`;
const admin = await mysql.createConnection(SERVER).catch((error: Error) => {
  throw new Error(`this bench needs MariaDB or MySQL at ${SERVER} (MYSQL_BENCH_URL): ${error.message}`);
});
await admin.query(`CREATE DATABASE ${database}`);
const url = `${SERVER.replace(/\/$/, '')}/${database}`;

const template = builtRecords(BATCH);
const rowBytes = template.reduce((sum, record) => sum + Buffer.byteLength(valuesRow(record)), 0) / template.length;
/** RECORDS fresh records in batches: new ids, the template's content. */
const freshBatches = (): AnalyticsRecord[][] =>
  Array.from({ length: Math.ceil(RECORDS / BATCH) }, () => template.map((record) => ({ ...record, id: newCorrelationId() })));

/** CPU seconds of the server's processes on this machine (MariaDB's, else MySQL's). */
const serverCommand = commandCpuSeconds('mariadbd') ? 'mariadbd' : 'mysqld';
const serverCpuSeconds = (): number => commandCpuSeconds(serverCommand) ?? Number.NaN;

interface Measurement {
  rate: number;
  /** CPU µs per record. */
  serverMicros: number;
  clientMicros: number;
}

async function measured(records: number, work: () => Promise<void>): Promise<Measurement> {
  const server = serverCpuSeconds();
  const client = process.cpuUsage();
  const started = performance.now();
  await work();
  const seconds = (performance.now() - started) / 1000;
  const used = process.cpuUsage(client);
  return {
    rate: records / seconds,
    serverMicros: ((serverCpuSeconds() - server) * 1e6) / records,
    clientMicros: (used.user + used.system) / records,
  };
}

let tables = 0;
/** Each variant's table goes once measured: the next one starts with the same server. */
const dropTable = async (table: string): Promise<void> => void (await admin.query(`DROP TABLE ${database}.${table}`));
const notify = (): void => undefined;

async function throughSink(connections: number): Promise<Measurement> {
  const sink = new MysqlSink(
    { url, table: `records_${++tables}`, connections, timeoutMs: 60_000, expireIntervalSec: 3600, expireChunkRows: 10_000 },
    { name: 'bench', notify },
  );
  await sink.open();
  const batches = freshBatches();
  const measurement = await measured(batches.length * BATCH, async () => {
    for (const batch of batches) {
      const rejected = await sink.write(batch);
      if (rejected.length > 0) throw new Error(`the sink refused ${rejected.length} records: ${rejected[0]?.reason}`);
    }
  });
  await sink.close();
  await dropTable(sink.options.table);
  return measurement;
}

/** The same rows on one connection, BATCH per statement, with the other statement's idempotence. */
async function statement(kind: 'odku' | 'ignore', jsonAsText = false): Promise<Measurement> {
  const table = `records_${++tables}`;
  // The sink makes the table; a write of nothing leaves it empty.
  const sink = new MysqlSink({ url, table, connections: 1, timeoutMs: 60_000, expireIntervalSec: 3600, expireChunkRows: 10_000 }, { name: 'bench', notify });
  await sink.open();
  await sink.close();
  const connection = await mysql.createConnection(url);
  await connection.query(SESSION_SETUP);
  if (jsonAsText) await connection.query(`ALTER TABLE ${table} MODIFY tags LONGTEXT, MODIFY legs LONGTEXT, MODIFY extra LONGTEXT`);
  const records = freshBatches().flat();
  const measurement = await measured(records.length, async () => {
    for (let start = 0; start < records.length; start += BATCH) {
      const values = records
        .slice(start, start + BATCH)
        .map(valuesRow)
        .join(',');
      await connection.query(
        kind === 'odku'
          ? `INSERT INTO ${table} (${COLUMN_LIST}) VALUES ${values} ON DUPLICATE KEY UPDATE id = id`
          : `INSERT IGNORE INTO ${table} (${COLUMN_LIST}) VALUES ${values}`,
      );
    }
  });
  await connection.end();
  await dropTable(table);
  return measurement;
}

const variants: [string, () => Promise<Measurement>][] = [
  ['sink, 3 connections', () => throughSink(3)],
  ['sink, 1 connection', () => throughSink(1)],
  [`INSERT ... ON DUPLICATE KEY UPDATE, 1 connection, ${BATCH} rows a statement`, () => statement('odku')],
  [`INSERT IGNORE, 1 connection, ${BATCH} rows a statement`, () => statement('ignore')],
  ['INSERT ... ON DUPLICATE KEY UPDATE, JSON columns as LONGTEXT', () => statement('odku', true)],
];
const results = new Map<string, Measurement[]>(variants.map(([name]) => [name, []]));
const described = (m: Measurement): string =>
  `${m.rate.toFixed(0)} records/s, CPU per record: MariaDB ${m.serverMicros.toFixed(0)} µs, this process ${m.clientMicros.toFixed(0)} µs`;

const [[server]] = await admin.query<mysql.RowDataPacket[]>('SELECT VERSION() AS version, @@innodb_flush_log_at_trx_commit AS flush');
console.log(`Records/s into MariaDB ${server?.version} (innodb_flush_log_at_trx_commit ${server?.flush}); load average ${readFileSync('/proc/loadavg', 'utf8').split(' ').slice(0, 3).join(' ')}`);
console.log(`  ${RECORDS} records a round in batches of ${BATCH}, ${rowBytes.toFixed(0)} B of SQL per row; ${ROUNDS} rounds, variants interleaved`);
try {
  for (let round = 1; round <= ROUNDS; round++) {
    for (const [name, run] of variants) {
      const measurement = await run();
      results.get(name)?.push(measurement);
      console.log(`  round ${round}: ${name}: ${described(measurement)}`);
    }
  }
  console.log('Medians:');
  for (const [name, runs] of results) {
    const of = (pick: (m: Measurement) => number): number => median(runs.map(pick));
    console.log(`  ${name}: ${described({ rate: of((m) => m.rate), serverMicros: of((m) => m.serverMicros), clientMicros: of((m) => m.clientMicros) })}`);
  }
} finally {
  await admin.query(`DROP DATABASE IF EXISTS ${database}`);
  await admin.end();
}
