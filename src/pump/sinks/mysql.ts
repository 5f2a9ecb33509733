import mysql, { type Pool, type PoolConnection, type ResultSetHeader, type RowDataPacket } from 'mysql2/promise';
import { z } from 'zod';
import type { AnalyticsRecord } from '../../analytics/analytics-record.js';
import { positiveInt, seconds } from '../../config/primitives.js';
import { defineSink, RetryableError, type RejectedRecord, type Sink, type SinkContext } from '../sink.js';
import { datetimeLiteral, SESSION_SETUP, valuesRow } from './mysql-rows.js';
import { lockName, migrate } from './mysql-schema.js';
import { COLUMN_LIST, tableName } from './record-columns.js';
import { expirySchedule, type Schedule } from './schedule.js';

export interface MysqlSinkOptions {
  url: string;
  table: string;
  /** Connections, and so chunks of one batch written at once. */
  connections: number;
  timeoutMs: number;
  expireIntervalSec: number;
  expireChunkRows: number;
}

/** A batch is cut into chunks of at least this many records, one per connection, written at once. */
const MIN_CHUNK = 100;
/** One statement carries at most this many rows and bytes, well under MariaDB's default `max_allowed_packet` (16 MiB). */
const MAX_CHUNK_ROWS = 1000;
const MAX_CHUNK_BYTES = 4 * 1024 * 1024;
/** Room in a packet for the statement around the rows. */
const STATEMENT_OVERHEAD = 4096;
/** Times a chunk is tried again at once when InnoDB picked it as a deadlock's victim (two pumps writing the same ids). */
const DEADLOCK_TRIES = 3;

interface Row {
  record: AnalyticsRecord;
  sql: string;
  bytes: number;
}

/**
 * One row per transaction in a MariaDB/MySQL table, the same columns as the `postgres` sink,
 * written idempotently by multi-row `INSERT ... ON DUPLICATE KEY UPDATE id = id`: a batch written
 * again adds nothing. Unlike `INSERT IGNORE`, which turns bad values into warnings and stores them
 * changed, this fails on bad data, and the refused records are found and returned; it costs the
 * server the same CPU per row (bench/mysql-sink.ts). The table is made and migrated at open; rows
 * past their `expireAt` are deleted on a schedule.
 */
export class MysqlSink implements Sink {
  #pool: Pool | null = null;
  /** Connections whose session is set (the core connection: the promise wrapper is new each time). */
  readonly #sessionSet = new WeakSet<object>();
  #schemaReady = false;
  #maxRowBytes = MAX_CHUNK_BYTES;
  readonly #expiry: Schedule;
  #closed = false;
  readonly #insert: string;

  constructor(
    readonly options: MysqlSinkOptions,
    readonly context: SinkContext,
  ) {
    this.#insert = `INSERT INTO ${options.table} (${COLUMN_LIST}) VALUES `;
    this.#expiry = expirySchedule(context, options.table, options.expireIntervalSec, async () => {
      await this.#ensureSchema();
      return this.expire();
    });
  }

  async open(): Promise<void> {
    this.#closed = false;
    this.#pool ??= this.#newPool();
    await this.#ensureSchema();
    this.#expiry.start();
  }

  async write(records: readonly AnalyticsRecord[]): Promise<RejectedRecord[]> {
    if (records.length === 0) return [];
    await this.#ensureSchema();
    const rejected: RejectedRecord[] = [];
    const rows: Row[] = [];
    for (const record of records) {
      const sql = valuesRow(record);
      const bytes = Buffer.byteLength(sql);
      if (bytes > this.#maxRowBytes) rejected.push({ record, reason: `its row is ${bytes} bytes, more than the server's max_allowed_packet allows` });
      else rows.push({ record, sql, bytes });
    }
    // Rows in key order: two writers of the same ids lock them in the same order, which keeps deadlocks rare.
    rows.sort((a, b) => (a.record.id < b.record.id ? -1 : a.record.id > b.record.id ? 1 : 0));
    const chunks = this.#chunks(rows);
    // Every chunk settles before the write does, so a retry never runs beside a chunk still in flight.
    const outcomes = await Promise.allSettled(chunks.map((chunk) => this.#onConnection((connection) => this.#writeChunk(connection, chunk))));
    const failed = outcomes.find((outcome) => outcome.status === 'rejected');
    if (failed) throw this.#classified(failed.reason);
    return [...rejected, ...outcomes.flatMap((outcome) => (outcome.status === 'fulfilled' ? outcome.value : []))];
  }

  /** Deletes the rows whose `expireAt` is before `now`, in chunks (one statement each); returns how many went. */
  async expire(now = Date.now()): Promise<number> {
    let deleted = 0;
    for (;;) {
      const chunk = await this.#onConnection((connection) => this.#expireChunk(connection, now));
      deleted += chunk;
      if (chunk < this.options.expireChunkRows || this.#closed) return deleted;
    }
  }

  async close(): Promise<void> {
    this.#closed = true;
    await this.#expiry.stop();
    const pool = this.#pool;
    this.#pool = null;
    this.#schemaReady = false;
    await pool?.end();
  }

  #newPool(): Pool {
    const { url, connections, timeoutMs } = this.options;
    return mysql.createPool({
      uri: url,
      connectionLimit: connections,
      maxIdle: connections,
      connectTimeout: timeoutMs,
      enableKeepAlive: true,
      charset: 'utf8mb4',
    });
  }

  /**
   * Chunks of `MIN_CHUNK`..`MAX_CHUNK_ROWS` rows, as many as there are connections when the batch
   * allows, each within `MAX_CHUNK_BYTES` and the server's packet (a server may take less than 4 MiB).
   */
  #chunks(rows: readonly Row[]): Row[][] {
    const target = Math.min(MAX_CHUNK_ROWS, Math.max(MIN_CHUNK, Math.ceil(rows.length / this.options.connections)));
    const maxBytes = Math.min(MAX_CHUNK_BYTES, this.#maxRowBytes);
    const chunks: Row[][] = [];
    let chunk: Row[] = [];
    let bytes = 0;
    for (const row of rows) {
      if (chunk.length > 0 && (chunk.length >= target || bytes + row.bytes > maxBytes)) {
        chunks.push(chunk);
        chunk = [];
        bytes = 0;
      }
      chunk.push(row);
      bytes += row.bytes;
    }
    if (chunk.length > 0) chunks.push(chunk);
    return chunks;
  }

  async #ensureSchema(): Promise<void> {
    if (this.#schemaReady) return;
    try {
      const { from, to } = await this.#onConnection(async (connection) => {
        const [packet] = await connection.query<RowDataPacket[]>('SELECT @@max_allowed_packet AS bytes');
        this.#maxRowBytes = Number(packet[0]?.bytes) - STATEMENT_OVERHEAD;
        return migrate(connection, this.options.table, Math.ceil(this.options.timeoutMs / 1000));
      });
      if (from !== to) this.context.notify(`${this.context.name}: table ${this.options.table} migrated from schema version ${from} to ${to}`);
      this.#schemaReady = true;
    } catch (error) {
      throw this.#classified(error);
    }
  }

  /** Runs `work` on a pooled connection; a connection that does not answer within `timeoutMs` is cut, and any failure discards it. */
  async #onConnection<T>(work: (connection: PoolConnection) => Promise<T>): Promise<T> {
    const pool = this.#pool;
    if (pool === null) throw new RetryableError(`${this.context.name}: not open`);
    const connection = await pool.getConnection();
    let failure: unknown;
    const deadline = setTimeout(() => {
      failure = new RetryableError(`MariaDB did not answer within ${this.options.timeoutMs} ms`);
      connection.destroy();
    }, this.options.timeoutMs);
    try {
      if (!this.#sessionSet.has(connection.connection)) {
        await connection.query(SESSION_SETUP);
        this.#sessionSet.add(connection.connection);
      }
      return await work(connection);
    } catch (error) {
      failure ??= error;
      throw failure;
    } finally {
      clearTimeout(deadline);
      if (failure === undefined) connection.release();
      else connection.destroy();
    }
  }

  /** Writes a chunk; records the server refuses (bad data) are found by halving and returned, the rest written. */
  async #writeChunk(connection: PoolConnection, rows: readonly Row[]): Promise<RejectedRecord[]> {
    try {
      await this.#insertRows(connection, rows);
      return [];
    } catch (error) {
      if (!isDataError(error)) throw error;
      if (rows.length === 1) return [{ record: (rows[0] as Row).record, reason: `MariaDB refused the record: ${(error as Error).message}` }];
      const half = Math.ceil(rows.length / 2);
      return [...(await this.#writeChunk(connection, rows.slice(0, half))), ...(await this.#writeChunk(connection, rows.slice(half)))];
    }
  }

  /** One statement, so all of the chunk or none of it is written. */
  async #insertRows(connection: PoolConnection, rows: readonly Row[]): Promise<void> {
    let sql = this.#insert;
    for (let i = 0; i < rows.length; i++) sql += i === 0 ? (rows[i] as Row).sql : `,${(rows[i] as Row).sql}`;
    sql += ' ON DUPLICATE KEY UPDATE id = id';
    for (let attempt = 1; ; attempt++) {
      try {
        await connection.query(sql);
        return;
      } catch (error) {
        if (sqlState(error) !== DEADLOCK || attempt >= DEADLOCK_TRIES) throw error;
      }
    }
  }

  async #expireChunk(connection: PoolConnection, now: number): Promise<number> {
    const { table, expireChunkRows } = this.options;
    const name = lockName(`expiry ${table}`);
    // Pumps sharing the table take turns: one deletes, the others skip this round.
    const [locked] = await connection.query<RowDataPacket[]>(`SELECT GET_LOCK(${name}, 0) AS held`);
    if (locked[0]?.held !== 1) return 0;
    try {
      const [result] = await connection.query<ResultSetHeader>(
        `DELETE FROM ${table} WHERE expire_at < ${datetimeLiteral(now)} ORDER BY expire_at LIMIT ${expireChunkRows}`,
      );
      return result.affectedRows;
    } finally {
      await connection.query(`DO RELEASE_LOCK(${name})`);
    }
  }

  /** Bad data is refused row by row in `#writeChunk`; anything that reaches here (network, restart, locks, timeouts, a missing table) may pass. */
  #classified(error: unknown): Error {
    if (error instanceof RetryableError) return error;
    const state = sqlState(error);
    // The table was dropped or altered behind the pump's back: make it again before the next write.
    if (state?.startsWith('42')) this.#schemaReady = false;
    const code = (error as { code?: unknown } | null)?.code;
    return new RetryableError(
      `MariaDB: ${error instanceof Error ? error.message : String(error)}${state ? ` (SQLSTATE ${state})` : typeof code === 'string' ? ` (${code})` : ''}`,
    );
  }
}

const DEADLOCK = '40001';

function sqlState(error: unknown): string | undefined {
  const state = (error as { sqlState?: unknown } | null)?.sqlState;
  return typeof state === 'string' && /^[0-9A-Z]{5}$/.test(state) ? state : undefined;
}

/** Data exceptions (class 22) and integrity violations (class 23: NOT NULL, a JSON check): the data itself is refused. */
function isDataError(error: unknown): boolean {
  const state = sqlState(error);
  return state !== undefined && (state.startsWith('22') || state.startsWith('23'));
}

export const mysqlSink = defineSink({
  type: 'mysql',
  options: {
    url: z
      .url({ protocol: /^(mysql|mariadb)$/, error: 'expected a mysql:// or mariadb:// URL', abort: true })
      .refine((url) => new URL(url).pathname.length > 1, 'expected the database in the URL path: mysql://user@host:3306/database'),
    table: tableName.default('tollgate_records'),
    connections: positiveInt.max(32).default(3),
    expireIntervalSec: seconds.default(60),
    expireChunkRows: positiveInt.default(10_000),
  },
  create: (options, context) => new MysqlSink(options, context),
});
