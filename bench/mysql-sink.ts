/**
 * Records/s the `mysql` sink writes into MariaDB, measured at the sink (no pump process, no
 * spool): batches of records as the gateway builds them (header blocks recorded: about 1 KB of
 * row each) go through `MysqlSink.write`, one batch after the other, into a fresh table. Beside it,
 * the two idempotent statements the sink could use, on one connection with the sink's rows:
 * `INSERT ... ON DUPLICATE KEY UPDATE id = id` (what it uses) and `INSERT IGNORE`. Rounds
 * interleave the variants; medians are printed.
 *
 * Run: node --import tsx bench/mysql-sink.ts
 * Environment: MYSQL_BENCH_RECORDS (50000), MYSQL_BENCH_ROUNDS (3), MYSQL_BENCH_BATCH (1000),
 * MYSQL_BENCH_URL (mysql://root@127.0.0.1:3306): the server; a database of its own is made and dropped.
 */
import { randomBytes } from 'node:crypto';
import mysql from 'mysql2/promise';
import type { AnalyticsRecord } from '../src/analytics/analytics-record.js';
import { MysqlSink } from '../src/pump/sinks/mysql.js';
import { SESSION_SETUP, valuesRow } from '../src/pump/sinks/mysql-rows.js';
import { COLUMN_LIST } from '../src/pump/sinks/record-columns.js';
import { newCorrelationId } from '../src/recording/correlation-id.js';
import { builtRecords } from '../test/support/built-records.js';
import { positiveIntFromEnv } from './env.js';
import { median } from './summary.js';

const RECORDS = positiveIntFromEnv('MYSQL_BENCH_RECORDS', 50_000);
const ROUNDS = positiveIntFromEnv('MYSQL_BENCH_ROUNDS', 3);
const BATCH = positiveIntFromEnv('MYSQL_BENCH_BATCH', 1000);
const SERVER = process.env.MYSQL_BENCH_URL ?? 'mysql://root@127.0.0.1:3306';
/** Rows per statement in the statement comparison. */
const STATEMENT_ROWS = 500;

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

let tables = 0;
const notify = (): void => undefined;

async function throughSink(connections: number): Promise<number> {
  const sink = new MysqlSink(
    { url, table: `records_${++tables}`, connections, timeoutMs: 60_000, expireIntervalSec: 3600, expireChunkRows: 10_000 },
    { name: 'bench', notify },
  );
  await sink.open();
  const batches = freshBatches();
  const started = performance.now();
  for (const batch of batches) {
    const rejected = await sink.write(batch);
    if (rejected.length > 0) throw new Error(`the sink refused ${rejected.length} records: ${rejected[0]?.reason}`);
  }
  const seconds = (performance.now() - started) / 1000;
  await sink.close();
  return (batches.length * BATCH) / seconds;
}

/** The same rows on one connection, STATEMENT_ROWS per statement, with the other statement's idempotence. */
async function statement(kind: 'odku' | 'ignore'): Promise<number> {
  const table = `records_${++tables}`;
  // The sink makes the table; a write of nothing leaves it empty.
  const sink = new MysqlSink({ url, table, connections: 1, timeoutMs: 60_000, expireIntervalSec: 3600, expireChunkRows: 10_000 }, { name: 'bench', notify });
  await sink.open();
  await sink.close();
  const connection = await mysql.createConnection(url);
  await connection.query(SESSION_SETUP);
  const records = freshBatches().flat();
  const started = performance.now();
  for (let start = 0; start < records.length; start += STATEMENT_ROWS) {
    const values = records
      .slice(start, start + STATEMENT_ROWS)
      .map(valuesRow)
      .join(',');
    await connection.query(
      kind === 'odku'
        ? `INSERT INTO ${table} (${COLUMN_LIST}) VALUES ${values} ON DUPLICATE KEY UPDATE id = id`
        : `INSERT IGNORE INTO ${table} (${COLUMN_LIST}) VALUES ${values}`,
    );
  }
  const seconds = (performance.now() - started) / 1000;
  await connection.end();
  return records.length / seconds;
}

const variants: [string, () => Promise<number>][] = [
  ['sink, 3 connections', () => throughSink(3)],
  ['sink, 1 connection', () => throughSink(1)],
  [`INSERT ... ON DUPLICATE KEY UPDATE, 1 connection, ${STATEMENT_ROWS} rows a statement`, () => statement('odku')],
  [`INSERT IGNORE, 1 connection, ${STATEMENT_ROWS} rows a statement`, () => statement('ignore')],
];
const results = new Map<string, number[]>(variants.map(([name]) => [name, []]));

const [[server]] = await admin.query<mysql.RowDataPacket[]>('SELECT VERSION() AS version, @@innodb_flush_log_at_trx_commit AS flush');
console.log(`Records/s into MariaDB ${server?.version} (innodb_flush_log_at_trx_commit ${server?.flush})`);
console.log(`  ${RECORDS} records a round in batches of ${BATCH}, ${rowBytes.toFixed(0)} B of SQL per row; ${ROUNDS} rounds, variants interleaved`);
try {
  for (let round = 1; round <= ROUNDS; round++) {
    for (const [name, run] of variants) {
      const rate = await run();
      results.get(name)?.push(rate);
      console.log(`  round ${round}: ${name}: ${rate.toFixed(0)} records/s`);
    }
  }
  console.log('Medians:');
  for (const [name, rates] of results) console.log(`  ${name}: ${median(rates).toFixed(0)} records/s`);
} finally {
  await admin.query(`DROP DATABASE IF EXISTS ${database}`);
  await admin.end();
}
