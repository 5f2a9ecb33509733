import type { Socket } from 'node:net';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import pg from 'pg';
import { from as copyFrom } from 'pg-copy-streams';
import { z } from 'zod';
import type { AnalyticsRecord } from '../../analytics/analytics-record.js';
import { positiveInt, seconds } from '../../config/primitives.js';
import { defineSink, RetryableError, type RejectedRecord, type Sink, type SinkContext } from '../sink.js';
import { ROLL_UPS } from '../aggregates/aggregate-keys.js';
import { PENDING_COLUMNS, PENDING_COPY_VALUES, pendingTable, PostgresAggregates } from './postgres-aggregates.js';
import { copyLine, type CopyValues } from './postgres-rows.js';
import { migrate, RECORD_MIGRATIONS } from './postgres-schema.js';
import { COLUMN_LIST, tableName } from './record-columns.js';
import { expirySchedule, Schedule } from './schedule.js';

export interface PostgresSinkOptions {
  url: string;
  table: string;
  /** Connections, and so chunks of one batch written at once. */
  connections: number;
  timeoutMs: number;
  expireIntervalSec: number;
  expireChunkRows: number;
  /** When set, aggregates of the records written go to this table too. */
  aggregatesTable?: string | undefined;
  /** Aggregate every normalised path, not only tracked endpoints. */
  trackAllPaths?: boolean;
  aggregatesRetentionDays?: number;
  /** How often hours and days are rolled up and aggregates past their retention deleted. */
  aggregatesIntervalSec?: number;
}

/** The aggregate options' defaults, for the configuration and for a sink made without them. */
export const AGGREGATE_DEFAULTS = { trackAllPaths: false, aggregatesRetentionDays: 90, aggregatesIntervalSec: 60 } as const;

/** A batch is cut into chunks of at least this many records, one per connection, written at once. */
const MIN_CHUNK = 100;

/** How often written records are aggregated, at most: what aggregates may lag behind the records. */
const PENDING_EVERY_MS = 1000;

/** Pending rows one aggregation transaction takes. */
const PENDING_PAGE_ROWS = 10_000;

/** Changed aggregate rows one roll-up transaction takes. */
const ROLL_UP_PAGE_ROWS = 500;

/** The per-connection table COPY fills when some rows may be there already; emptied at each commit. */
const STAGED_TABLE = 'tollgate_staged';

/**
 * One row per transaction in a PostgreSQL table, written idempotently. A chunk is first COPied
 * straight into the table, in one transaction: the cheapest form, and it either adds every row or
 * none. If a row with one of its ids is there already (a retry after an outage, a pump restarted
 * before its acknowledgement), the chunk is written again through a temporary table, `INSERT ...
 * SELECT ... ON CONFLICT DO NOTHING`, which adds only what is missing. The table is made and
 * migrated at open; rows past their `expireAt` are deleted on a schedule. With `aggregatesTable`,
 * the transaction that adds rows also leaves what aggregates need of them in a pending table,
 * which a background pass merges into per-minute aggregates (`postgres-aggregates.ts`); hours and
 * days are rolled up on a schedule.
 */
export class PostgresSink implements Sink {
  #pool: pg.Pool | null = null;
  /** Connections whose temporary table exists. */
  readonly #staged = new WeakSet<pg.PoolClient>();
  #schemaReady = false;
  readonly #expiry: Schedule;
  /** Roll-ups and retention of the aggregates, when there are any. */
  readonly #rollUps: Schedule | null;
  #closed = false;
  readonly #insert: string;
  readonly #aggregates: PostgresAggregates | null;
  /** The background aggregation of pending rows: at most one pass at a time, at most one waiting. */
  #pendingTimer: NodeJS.Timeout | null = null;
  #aggregatingPending: Promise<void> = Promise.resolve();
  #lastPendingPass = 0;

  readonly options: PostgresSinkOptions & Required<Omit<PostgresSinkOptions, 'aggregatesTable'>>;

  constructor(
    options: PostgresSinkOptions,
    readonly context: SinkContext,
  ) {
    this.options = { ...AGGREGATE_DEFAULTS, ...options };
    this.#aggregates = options.aggregatesTable ? new PostgresAggregates(options.aggregatesTable, this.options.trackAllPaths) : null;
    const insert = `INSERT INTO ${options.table} SELECT * FROM ${STAGED_TABLE} ON CONFLICT DO NOTHING`;
    this.#insert = this.#aggregates ? this.#aggregates.insertKeepingPending(insert) : insert;
    this.#expiry = expirySchedule(context, options.table, this.options.expireIntervalSec, async () => {
      await this.#ensureSchema();
      return this.expire();
    });
    this.#rollUps = this.#aggregates
      ? new Schedule(
          this.options.aggregatesIntervalSec * 1000,
          async () => {
            await this.#ensureSchema();
            await this.aggregatePending();
            await this.rollUp();
            const deleted = await this.expireAggregates();
            if (deleted > 0) context.notify(`${context.name}: deleted ${deleted} aggregates past their retention from ${this.options.aggregatesTable}`);
          },
          (error) => context.notify(`${context.name}: rolling up aggregates failed, trying again in ${this.options.aggregatesIntervalSec} s: ${error.message}`),
        )
      : null;
  }

  async open(): Promise<void> {
    this.#closed = false;
    this.#pool ??= this.#newPool();
    await this.#ensureSchema();
    this.#expiry.start();
    this.#rollUps?.start();
  }

  async write(records: readonly AnalyticsRecord[]): Promise<RejectedRecord[]> {
    if (records.length === 0) return [];
    await this.#ensureSchema();
    const size = Math.max(MIN_CHUNK, Math.ceil(records.length / this.options.connections));
    const chunks: AnalyticsRecord[][] = [];
    for (let start = 0; start < records.length; start += size) chunks.push(records.slice(start, start + size));
    // Every chunk settles before the write does, so a retry never runs beside a chunk still in flight.
    const outcomes = await Promise.allSettled(chunks.map((chunk) => this.#onConnection((client) => this.#writeChunk(client, chunk))));
    // Chunks that went in left pending rows, even when another failed.
    if (this.#aggregates) this.#aggregateSoon();
    const failed = outcomes.find((outcome) => outcome.status === 'rejected');
    if (failed) throw this.#classified(failed.reason);
    return outcomes.flatMap((outcome) => (outcome.status === 'fulfilled' ? outcome.value : []));
  }

  /** Deletes the rows whose `expireAt` is before `now`, in chunks (one transaction each); returns how many went. */
  async expire(now = Date.now()): Promise<number> {
    let deleted = 0;
    for (;;) {
      const chunk = await this.#onConnection((client) => this.#expireChunk(client, now));
      deleted += chunk;
      if (chunk < this.options.expireChunkRows || this.#closed) return deleted;
    }
  }

  /**
   * Aggregates every pending row there is (its own and other pumps'), a page per transaction;
   * returns how many rows it aggregated. Writes start this in the background; the schedule too.
   */
  async aggregatePending(): Promise<number> {
    const aggregates = this.#aggregates;
    if (aggregates === null) return 0;
    let taken = 0;
    for (;;) {
      const page = await this.#onConnection((client) => aggregates.aggregatePending(client, PENDING_PAGE_ROWS));
      taken += page;
      if (page < PENDING_PAGE_ROWS || this.#closed) return taken;
    }
  }

  /** Aggregates what was written so far now, instead of within `PENDING_EVERY_MS`; returns how many rows it aggregated. */
  async flushAggregates(): Promise<number> {
    if (this.#pendingTimer) clearTimeout(this.#pendingTimer);
    this.#pendingTimer = null;
    await this.#aggregatingPending;
    return this.aggregatePending();
  }

  /**
   * Rolls changed minutes up into their hours, then changed hours into their days, until none is
   * left or another pump is rolling up; returns how many changed rows it took.
   */
  async rollUp(): Promise<number> {
    const aggregates = this.#aggregates;
    if (aggregates === null) return 0;
    let taken = 0;
    for (const { from, to } of ROLL_UPS) {
      for (;;) {
        const page = await this.#onConnection((client) => aggregates.rollUpPage(client, from, to, ROLL_UP_PAGE_ROWS));
        if (page === null) return taken;
        taken += page.taken;
        // A page whose rows all changed again meanwhile is taken next time, not in a loop now.
        if (page.taken < ROLL_UP_PAGE_ROWS || page.marked === 0 || this.#closed) break;
      }
    }
    return taken;
  }

  /** Deletes the aggregates of buckets that began more than `aggregatesRetentionDays` before `now`; returns how many went. */
  async expireAggregates(now = Date.now()): Promise<number> {
    const aggregates = this.#aggregates;
    if (aggregates === null) return 0;
    const cutoff = now - this.options.aggregatesRetentionDays * 86_400_000;
    let deleted = 0;
    for (;;) {
      const chunk = await this.#onConnection((client) => aggregates.expireChunk(client, cutoff, this.options.expireChunkRows));
      deleted += chunk;
      if (chunk < this.options.expireChunkRows || this.#closed) return deleted;
    }
  }

  async close(): Promise<void> {
    this.#closed = true;
    if (this.#pendingTimer) clearTimeout(this.#pendingTimer);
    this.#pendingTimer = null;
    await this.#expiry.stop();
    await this.#rollUps?.stop();
    await this.#aggregatingPending;
    const pool = this.#pool;
    this.#pool = null;
    this.#schemaReady = false;
    await pool?.end();
  }

  #newPool(): pg.Pool {
    const { url, connections, timeoutMs } = this.options;
    const pool = new pg.Pool({
      connectionString: url,
      max: connections,
      connectionTimeoutMillis: timeoutMs,
      keepAlive: true,
      application_name: `tollgate pump ${this.context.name}`,
    });
    // An idle connection that breaks is dropped by the pool; the next write opens another.
    pool.on('error', (error) => this.context.notify(`${this.context.name}: an idle connection to PostgreSQL broke: ${error.message}`));
    // A connection that breaks between two queries of a write says so to the next query; unheard, the error would end the process.
    pool.on('connect', (client) => client.on('error', () => undefined));
    return pool;
  }

  async #ensureSchema(): Promise<void> {
    if (this.#schemaReady) return;
    try {
      const tables = [{ name: this.options.table, migrations: RECORD_MIGRATIONS }, ...(this.#aggregates ? [this.#aggregates.schema] : [])];
      for (const { table, from, to } of await this.#onConnection((client) => migrate(client, tables))) {
        if (from !== to) this.context.notify(`${this.context.name}: table ${table} migrated from schema version ${from} to ${to}`);
      }
      this.#schemaReady = true;
    } catch (error) {
      throw this.#classified(error);
    }
  }

  /** Runs `work` on a pooled connection; a connection that does not answer within `timeoutMs` is cut, and any failure discards it. */
  async #onConnection<T>(work: (client: pg.PoolClient) => Promise<T>): Promise<T> {
    const pool = this.#pool;
    if (pool === null) throw new RetryableError(`${this.context.name}: not open`);
    const client = await pool.connect();
    let failure: unknown;
    const deadline = setTimeout(() => {
      failure = new RetryableError(`PostgreSQL did not answer within ${this.options.timeoutMs} ms`);
      socketOf(client).destroy();
    }, this.options.timeoutMs);
    try {
      return await work(client);
    } catch (error) {
      failure ??= error;
      throw failure;
    } finally {
      clearTimeout(deadline);
      client.release(failure !== undefined);
    }
  }

  /**
   * Writes a chunk: straight, else (some ids are there) through the temporary table. Records
   * PostgreSQL refuses (bad data) are found by halving and returned; the others are written.
   */
  async #writeChunk(client: pg.PoolClient, records: readonly AnalyticsRecord[], staged = false): Promise<RejectedRecord[]> {
    try {
      if (staged) await this.#copyAndInsert(client, records);
      else if (this.#aggregates) await this.#copyKeepingPending(client, records);
      else await this.#copy(client, `COPY ${this.options.table} (${COLUMN_LIST}) FROM STDIN`, records);
      return [];
    } catch (error) {
      if (!staged && sqlState(error) === UNIQUE_VIOLATION) return this.#writeChunk(client, records, true);
      if (!isDataError(error)) throw error;
      if (records.length === 1) return [{ record: records[0] as AnalyticsRecord, reason: `PostgreSQL refused the record: ${(error as Error).message}` }];
      const half = Math.ceil(records.length / 2);
      return [...(await this.#writeChunk(client, records.slice(0, half), staged)), ...(await this.#writeChunk(client, records.slice(half), staged))];
    }
  }

  /** COPY in a statement of its own: its own transaction unless one is open. */
  async #copy(client: pg.PoolClient, statement: string, records: readonly AnalyticsRecord[], values?: CopyValues): Promise<void> {
    await pipeline(Readable.from(copyText(records, values)), client.query(copyFrom(statement)));
  }

  /** COPY straight into the table and, in the same transaction, what aggregates need into the pending table: every row went in, or none. */
  async #copyKeepingPending(client: pg.PoolClient, records: readonly AnalyticsRecord[]): Promise<void> {
    const pending = pendingTable((this.#aggregates as PostgresAggregates).table);
    await client.query('BEGIN');
    try {
      await this.#copy(client, `COPY ${this.options.table} (${COLUMN_LIST}) FROM STDIN`, records);
      await this.#copy(client, `COPY ${pending} (${PENDING_COLUMNS}) FROM STDIN`, records, PENDING_COPY_VALUES);
      await client.query('COMMIT');
    } catch (error) {
      await client.query('ROLLBACK').catch(() => undefined);
      throw error;
    }
  }

  async #copyAndInsert(client: pg.PoolClient, records: readonly AnalyticsRecord[]): Promise<void> {
    if (!this.#staged.has(client)) {
      await client.query(`CREATE TEMPORARY TABLE IF NOT EXISTS ${STAGED_TABLE} (LIKE ${this.options.table}) ON COMMIT DELETE ROWS`);
      this.#staged.add(client);
    }
    await client.query('BEGIN');
    try {
      await this.#copy(client, `COPY ${STAGED_TABLE} (${COLUMN_LIST}) FROM STDIN`, records);
      // One round trip: the insert and the commit go as one simple query.
      await client.query(`${this.#insert}; COMMIT`);
    } catch (error) {
      await client.query('ROLLBACK').catch(() => undefined);
      throw error;
    }
  }

  async #expireChunk(client: pg.PoolClient, now: number): Promise<number> {
    const { table, expireChunkRows } = this.options;
    await client.query('BEGIN');
    try {
      // Pumps sharing the table take turns: one deletes, the others skip this round.
      const lock = await client.query<{ held: boolean }>('SELECT pg_try_advisory_xact_lock(hashtext($1)) AS held', [`tollgate expiry ${table}`]);
      const result = lock.rows[0]?.held
        ? await client.query(`DELETE FROM ${table} WHERE ctid = ANY(ARRAY(SELECT ctid FROM ${table} WHERE expire_at < to_timestamp($1 / 1000.0) LIMIT $2))`, [
            now,
            expireChunkRows,
          ])
        : null;
      await client.query('COMMIT');
      return result?.rowCount ?? 0;
    } catch (error) {
      await client.query('ROLLBACK').catch(() => undefined);
      throw error;
    }
  }

  /**
   * Aggregates the pending rows in the background, a pass at most every `PENDING_EVERY_MS`: a pass
   * costs about the same for one batch as for many (it rewrites each bucket row it touches once).
   */
  #aggregateSoon(): void {
    if (this.#pendingTimer !== null || this.#closed) return;
    const delay = Math.max(0, this.#lastPendingPass + PENDING_EVERY_MS - Date.now());
    this.#pendingTimer = setTimeout(() => {
      this.#aggregatingPending = this.#aggregatingPending.then(async () => {
        this.#pendingTimer = null;
        this.#lastPendingPass = Date.now();
        try {
          await this.aggregatePending();
        } catch (error) {
          // The rows stay pending: the next write or the schedule takes them.
          this.context.notify(`${this.context.name}: aggregating the records written failed, trying again later: ${(error as Error).message}`);
        }
      });
    }, delay).unref();
  }

  /** Bad data fails for good (the records go to the dead letter); anything else (network, restart, locks, timeouts) may pass. */
  #classified(error: unknown): Error {
    if (error instanceof RetryableError) return error;
    const code = sqlState(error);
    // The table was dropped or altered behind the pump's back: make it again before the next write.
    if (code?.startsWith('42')) this.#schemaReady = false;
    return new RetryableError(`PostgreSQL: ${error instanceof Error ? error.message : String(error)}${code ? ` (SQLSTATE ${code})` : ''}`);
  }
}

/** COPY text is sent in pieces of about this many characters, so a chunk of large records never sits whole in memory. */
const COPY_PIECE = 1 << 20;

/** The records as COPY text (of `values`' columns, else all), a piece at a time (made as the connection takes them). */
function* copyText(records: readonly AnalyticsRecord[], values?: CopyValues): Generator<Buffer> {
  let text = '';
  for (const record of records) {
    text += copyLine(record, values);
    if (text.length >= COPY_PIECE) {
      yield Buffer.from(text);
      text = '';
    }
  }
  if (text !== '') yield Buffer.from(text);
}

const UNIQUE_VIOLATION = '23505';

function sqlState(error: unknown): string | undefined {
  const code = (error as { code?: unknown } | null)?.code;
  return typeof code === 'string' && /^[0-9A-Z]{5}$/.test(code) ? code : undefined;
}

/** Data exceptions (class 22) and integrity violations (class 23): the data itself is refused. */
function isDataError(error: unknown): boolean {
  const code = sqlState(error);
  return code !== undefined && (code.startsWith('22') || code.startsWith('23'));
}

/** node-postgres keeps its socket private; cutting it is the only way to end a query that gets no answer. */
function socketOf(client: pg.PoolClient): Socket {
  return (client as unknown as { connection: { stream: Socket } }).connection.stream;
}

export const postgresSink = defineSink({
  type: 'postgres',
  options: {
    url: z.url({ protocol: /^postgres(ql)?$/, error: 'expected a postgres:// or postgresql:// URL' }),
    table: tableName.default('tollgate_records'),
    connections: positiveInt.max(32).default(3),
    expireIntervalSec: seconds.default(60),
    expireChunkRows: positiveInt.default(10_000),
    aggregatesTable: tableName.optional(),
    trackAllPaths: z.boolean().default(AGGREGATE_DEFAULTS.trackAllPaths),
    aggregatesRetentionDays: positiveInt.default(AGGREGATE_DEFAULTS.aggregatesRetentionDays),
    aggregatesIntervalSec: seconds.default(AGGREGATE_DEFAULTS.aggregatesIntervalSec),
  },
  create: (options, context) => new PostgresSink(options, context),
});
