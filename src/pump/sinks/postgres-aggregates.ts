import type pg from 'pg';
import type { AggregatedRecord } from '../aggregates/aggregate.js';
import { aggregateFromRow, AGGREGATE_COLUMNS, rowValues } from '../aggregates/aggregate-row.js';
import { type AggregateKey, bucketEnd, bucketStart, type BucketSize, type Dimension, keyText, ROLL_UPS } from '../aggregates/aggregate-keys.js';
import { AggregateSet } from '../aggregates/aggregate-set.js';
import { columnDefinitions, copyValues } from './postgres-rows.js';
import { RECORD_COLUMNS } from './record-columns.js';
import type { Migration } from './postgres-schema.js';

/**
 * What a records insert hands to the aggregation: the record columns aggregates count, as the
 * records table has them.
 */
const PENDING_NAMES = [
  'time',
  'api_id',
  'normalised_path',
  'tracked_endpoint',
  'status',
  'api_key_hash',
  'api_key_alias',
  'latency_total',
  'latency_upstream',
  'bytes_in',
  'bytes_out',
  'tags',
];
const PENDING_ROW_COLUMNS = RECORD_COLUMNS.filter((column) => PENDING_NAMES.includes(column.name));
/** The pending columns' values in COPY text, for a records write that copies them in itself. */
export const PENDING_COPY_VALUES = copyValues(PENDING_ROW_COLUMNS);
export const PENDING_COLUMNS = PENDING_ROW_COLUMNS.map((column) => column.name).join(', ');

/** The table of records inserted but not yet aggregated, beside the aggregates table. */
export const pendingTable = (table: string): string => `${table}_pending`;

/**
 * The aggregates table: one row per bucket, bucket size and dimension value. `version` counts the
 * row's writes and `pending` says it changed since it was last rolled up into the bucket above.
 * Beside it, the pending table: what each records insert added, until it is aggregated.
 */
export const AGGREGATE_MIGRATIONS: readonly Migration[] = [
  (table) => `
    CREATE TABLE ${pendingTable(table)} (${columnDefinitions(PENDING_ROW_COLUMNS)});
    CREATE TABLE ${table} (
      bucket timestamptz NOT NULL, bucket_size text NOT NULL, dimension text NOT NULL, value text NOT NULL,
      alias text,
      hits bigint NOT NULL DEFAULT 0, success bigint NOT NULL DEFAULT 0, errors bigint NOT NULL DEFAULT 0,
      status_counts jsonb NOT NULL DEFAULT '{}',
      ${latencyColumns('latency')},
      ${latencyColumns('upstream')},
      bytes_in bigint NOT NULL DEFAULT 0, bytes_out bigint NOT NULL DEFAULT 0,
      first_seen timestamptz, last_seen timestamptz,
      version bigint NOT NULL DEFAULT 0, pending boolean NOT NULL DEFAULT false, updated_at timestamptz NOT NULL DEFAULT now(),
      PRIMARY KEY (bucket, bucket_size, dimension, value)
    );
    CREATE INDEX ${table}_to_roll_up ON ${table} (bucket_size, bucket) WHERE pending;
  `,
];

function latencyColumns(prefix: string): string {
  const number = 'double precision';
  return `${prefix}_sum ${number} NOT NULL DEFAULT 0, ${prefix}_min ${number}, ${prefix}_max ${number}, ${prefix}_p50 ${number}, ${prefix}_p95 ${number}, ${prefix}_p99 ${number}, ${prefix}_sketch bytea`;
}

/** The array type each aggregate column travels in (as a parameter of `unnest`). */
const COLUMN_ARRAYS: Record<(typeof AGGREGATE_COLUMNS)[number], string> = Object.fromEntries(
  AGGREGATE_COLUMNS.map((column) => [column, arrayTypeOf(column)]),
) as Record<(typeof AGGREGATE_COLUMNS)[number], string>;

function arrayTypeOf(column: string): string {
  if (column === 'alias') return 'text[]';
  if (column === 'status_counts') return 'jsonb[]';
  if (column.endsWith('_sketch')) return 'bytea[]';
  if (column.endsWith('_seen')) return 'timestamptz[]';
  if (/_(sum|min|max|p50|p95|p99)$/.test(column)) return 'float8[]';
  return 'int8[]';
}

const KEY_COLUMNS = 'bucket, bucket_size, dimension, value';
const KEY_ARRAYS = '$1::timestamptz[], $2::text[], $3::text[], $4::text[]';
const KEY_MATCH = (a: string, b: string): string => ['bucket', 'bucket_size', 'dimension', 'value'].map((column) => `${a}.${column} = ${b}.${column}`).join(' AND ');
/** unnest() of the key arrays and the aggregate columns' arrays, as `u`. */
const VALUES_FROM = `unnest(${KEY_ARRAYS}, ${AGGREGATE_COLUMNS.map((column, i) => `$${i + 5}::${COLUMN_ARRAYS[column]}`).join(', ')}) AS u(${KEY_COLUMNS}, ${AGGREGATE_COLUMNS.join(', ')})`;

/** Which bucket sizes are rolled up into a larger one: their rows are marked pending when they change. */
const ROLLED_UP = new Set<BucketSize>(ROLL_UPS.map((rollUp) => rollUp.from));

/** The pending columns as read back: times and byte counts as numbers (cheaper to read than Date and bigint text). */
const PENDING_READ = PENDING_ROW_COLUMNS.map(({ name }) => {
  if (name === 'time') return '(extract(epoch FROM time) * 1000)::float8 AS time';
  if (name === 'bytes_in' || name === 'bytes_out') return `${name}::float8 AS ${name}`;
  return name;
}).join(', ');

interface PendingRow {
  time: number;
  api_id: string | null;
  normalised_path: string | null;
  tracked_endpoint: string | null;
  status: number | null;
  api_key_hash: string | null;
  api_key_alias: string | null;
  latency_total: number | null;
  latency_upstream: number | null;
  bytes_in: number | null;
  bytes_out: number | null;
  tags: string[] | null;
}

function aggregatedRecord(row: PendingRow): AggregatedRecord {
  return {
    timestamp: row.time,
    apiId: row.api_id,
    normalisedPath: row.normalised_path ?? '',
    trackedEndpoint: row.tracked_endpoint,
    status: row.status ?? 0,
    apiKeyHash: row.api_key_hash,
    apiKeyAlias: row.api_key_alias,
    latencyTotal: row.latency_total ?? 0,
    latencyUpstream: row.latency_upstream ?? 0,
    bytesIn: row.bytes_in ?? 0,
    bytesOut: row.bytes_out ?? 0,
    tags: row.tags ?? [],
  };
}

interface KeyRow {
  bucket: Date;
  bucket_size: BucketSize;
  dimension: Dimension;
  value: string;
}

function keyOf(row: KeyRow): AggregateKey {
  return { bucket: row.bucket.getTime(), size: row.bucket_size, dimension: row.dimension, value: row.value };
}

/** The statement parameters holding a set of aggregates: keys, then each column as an array. */
function parameters(set: Iterable<{ key: AggregateKey; aggregate: Parameters<typeof rowValues>[0] }>): unknown[] {
  const keys: unknown[][] = [[], [], [], []];
  const columns: unknown[][] = AGGREGATE_COLUMNS.map(() => []);
  for (const { key, aggregate } of set) {
    pushKey(keys, key);
    rowValues(aggregate).forEach((value, i) => (columns[i] as unknown[]).push(value));
  }
  return [...keys, ...columns];
}

function pushKey(keys: unknown[][], key: AggregateKey): void {
  (keys[0] as unknown[]).push(new Date(key.bucket).toISOString());
  (keys[1] as unknown[]).push(key.size);
  (keys[2] as unknown[]).push(key.dimension);
  (keys[3] as unknown[]).push(key.value);
}

/**
 * Aggregates in a PostgreSQL table, counted exactly once. The statement that inserts records also
 * copies the fields aggregates need of the rows it actually inserted into the pending table
 * (`INSERT ... ON CONFLICT DO NOTHING RETURNING`): a record written again adds nothing, and a
 * transaction that fails takes its pending rows with it. `aggregatePending` then takes pending rows,
 * merges them into the aggregate rows and deletes them, in one transaction. Sketches merge in the pump, so that is read-modify-write: pumps take turns on an
 * advisory lock (record inserts never wait on it). Roll-ups read the minutes without it and check
 * each row's `version` before calling it rolled up.
 */
export class PostgresAggregates {
  readonly #select: string;
  readonly #replace: string;

  constructor(
    readonly table: string,
    readonly trackAllPaths: boolean,
  ) {
    this.#select = `SELECT a.${KEY_COLUMNS.split(', ').join(', a.')}, ${AGGREGATE_COLUMNS.map((column) => `a.${column}`).join(', ')}
      FROM unnest(${KEY_ARRAYS}) AS k(${KEY_COLUMNS}) JOIN ${table} a ON ${KEY_MATCH('a', 'k')}`;
    this.#replace = `INSERT INTO ${table} AS a (${KEY_COLUMNS}, ${AGGREGATE_COLUMNS.join(', ')}, pending)
      SELECT u.*, u.bucket_size = ANY($${AGGREGATE_COLUMNS.length + 5}::text[]) FROM ${VALUES_FROM} ORDER BY 1, 2, 3, 4
      ON CONFLICT (${KEY_COLUMNS}) DO UPDATE SET ${AGGREGATE_COLUMNS.map((column) => `${column} = EXCLUDED.${column}`).join(', ')},
      version = a.version + 1, pending = EXCLUDED.pending, updated_at = now()`;
  }

  get schema(): { name: string; migrations: readonly Migration[] } {
    return { name: this.table, migrations: AGGREGATE_MIGRATIONS };
  }

  /** `insert` (an `INSERT ... ON CONFLICT DO NOTHING` of records) made to leave what it inserted in the pending table. */
  insertKeepingPending(insert: string): string {
    return `WITH added AS (${insert} RETURNING ${PENDING_COLUMNS}) INSERT INTO ${pendingTable(this.table)} (${PENDING_COLUMNS}) SELECT ${PENDING_COLUMNS} FROM added`;
  }

  /**
   * Takes up to `maxRows` pending rows (any pump's), counts them in their minutes and deletes them,
   * in one transaction; returns how many it took.
   */
  async aggregatePending(client: pg.ClientBase, maxRows: number): Promise<number> {
    const pending = pendingTable(this.table);
    await client.query('BEGIN');
    try {
      // One pump at a time merges into the minutes, so what it read stays true until it writes.
      await client.query('SELECT pg_advisory_xact_lock(hashtext($1))', [`tollgate aggregation ${this.table}`]);
      const taken = await client.query<PendingRow>(
        `DELETE FROM ${pending} WHERE ctid = ANY(ARRAY(SELECT ctid FROM ${pending} LIMIT $1)) RETURNING ${PENDING_READ}`,
        [maxRows],
      );
      if (taken.rows.length > 0) {
        const deltas = new AggregateSet();
        for (const row of taken.rows) deltas.addRecord(aggregatedRecord(row), this.trackAllPaths);
        await this.#merge(client, deltas);
      }
      await client.query('COMMIT');
      return taken.rows.length;
    } catch (error) {
      await client.query('ROLLBACK').catch(() => undefined);
      throw error;
    }
  }

  /** Merges `deltas` into their rows: locks them in key order (making those missing), merges, writes back. */
  async #merge(client: pg.ClientBase, deltas: AggregateSet): Promise<void> {
    const keys: unknown[][] = [[], [], [], []];
    for (const { key } of deltas.entries()) pushKey(keys, key);
    const stored = await client.query<KeyRow & Record<string, unknown>>(this.#select, keys);
    const merged = new AggregateSet();
    for (const row of stored.rows) merged.merge(keyOf(row), aggregateFromRow(row));
    for (const { key, aggregate } of deltas.entries()) merged.merge(key, aggregate);
    await client.query(this.#replace, [...parameters(merged.entries()), [...ROLLED_UP]]);
  }

  /**
   * One page of one roll-up: takes up to `pageRows` changed rows of `from` buckets, recomputes the
   * `to` buckets holding them from all their `from` rows, replacing what those held, and marks the
   * rows it read as rolled up unless they changed meanwhile. Returns how many changed rows it took
   * and how many of those it marked (a row a writer holds stays pending), or null when another
   * pump holds the roll-up.
   */
  async rollUpPage(client: pg.ClientBase, from: BucketSize, to: BucketSize, pageRows: number): Promise<{ taken: number; marked: number } | null> {
    await client.query('BEGIN');
    try {
      const lock = await client.query<{ held: boolean }>('SELECT pg_try_advisory_xact_lock(hashtext($1)) AS held', [`tollgate roll-up ${this.table}`]);
      if (!lock.rows[0]?.held) {
        await client.query('COMMIT');
        return null;
      }
      const changed = await client.query<KeyRow>(`SELECT ${KEY_COLUMNS} FROM ${this.table} WHERE bucket_size = $1 AND pending ORDER BY bucket LIMIT $2`, [from, pageRows]);
      const targets = new Map<string, AggregateKey>();
      for (const row of changed.rows) {
        const key = keyOf(row);
        const target: AggregateKey = { ...key, bucket: bucketStart(key.bucket, to), size: to };
        targets.set(keyText(target), target);
      }
      const targetKeys: unknown[][] = [[], [], [], []];
      for (const target of targets.values()) pushKey(targetKeys, target);
      const sources = await client.query<KeyRow & Record<string, unknown>>(
        `SELECT s.${KEY_COLUMNS.split(', ').join(', s.')}, ${AGGREGATE_COLUMNS.map((column) => `s.${column}`).join(', ')}, s.version
         FROM unnest(${KEY_ARRAYS}) AS k(${KEY_COLUMNS})
         JOIN ${this.table} s ON s.bucket_size = $5 AND s.dimension = k.dimension AND s.value = k.value AND s.bucket >= k.bucket AND s.bucket < k.bucket + $6::interval`,
        [...targetKeys, from, `${(bucketEnd(0, to) / 1000).toFixed(0)} seconds`],
      );
      const rolled = new AggregateSet();
      for (const row of sources.rows) rolled.rollUp(keyOf(row), aggregateFromRow(row), to);
      if (rolled.size > 0) await client.query(this.#replace, [...parameters(rolled.entries()), [...ROLLED_UP]]);
      // A row a writer holds is changing: it stays pending and is taken again next time.
      const read: unknown[][] = [[], [], [], [], []];
      for (const row of sources.rows) {
        pushKey(read, keyOf(row));
        (read[4] as unknown[]).push(String(row.version));
      }
      const marked = await client.query(
        `UPDATE ${this.table} AS a SET pending = false FROM (
           SELECT s.ctid FROM ${this.table} s JOIN unnest(${KEY_ARRAYS}, $5::int8[]) AS r(${KEY_COLUMNS}, version)
           ON ${KEY_MATCH('s', 'r')} AND s.version = r.version WHERE s.pending FOR UPDATE OF s SKIP LOCKED
         ) AS done WHERE a.ctid = done.ctid`,
        read,
      );
      await client.query('COMMIT');
      return { taken: changed.rows.length, marked: marked.rowCount ?? 0 };
    } catch (error) {
      await client.query('ROLLBACK').catch(() => undefined);
      throw error;
    }
  }

  /** Deletes up to `chunkRows` rows of buckets that began before `cutoff` (epoch ms); returns how many went. */
  async expireChunk(client: pg.ClientBase, cutoff: number, chunkRows: number): Promise<number> {
    const result = await client.query(
      `DELETE FROM ${this.table} WHERE ctid = ANY(ARRAY(SELECT ctid FROM ${this.table} WHERE bucket < to_timestamp($1 / 1000.0) LIMIT $2))`,
      [cutoff, chunkRows],
    );
    return result.rowCount ?? 0;
  }
}
