import { type Aggregate, emptyAggregate } from './aggregate.js';
import { latencyQuantile, type LatencyStats, sketchBytes, sketchFromBytes } from './latency-sketch.js';

/**
 * The columns an aggregate is stored in, beside its key (bucket, bucket_size, dimension, value),
 * the same in every SQL store. Latencies are in ms; the quantiles are for readers, the sketches
 * for merging (a reader merging buckets merges the sketches, never the quantiles).
 */
export const AGGREGATE_COLUMNS = [
  'alias',
  'hits',
  'success',
  'errors',
  'status_counts',
  ...latencyColumns('latency'),
  ...latencyColumns('upstream'),
  'bytes_in',
  'bytes_out',
  'first_seen',
  'last_seen',
] as const;

export type AggregateColumn = (typeof AGGREGATE_COLUMNS)[number];

function latencyColumns<P extends string>(prefix: P) {
  return [`${prefix}_sum`, `${prefix}_min`, `${prefix}_max`, `${prefix}_p50`, `${prefix}_p95`, `${prefix}_p99`, `${prefix}_sketch`] as const;
}

export type ColumnValue = string | number | Buffer | Date | null;

/** The aggregate's column values, in `AGGREGATE_COLUMNS` order (`status_counts` as JSON text). */
export function rowValues(aggregate: Aggregate): ColumnValue[] {
  return [
    aggregate.alias,
    aggregate.hits,
    aggregate.success,
    aggregate.errors,
    JSON.stringify(aggregate.statusCounts),
    ...latencyValues(aggregate.latency, aggregate.hits),
    ...latencyValues(aggregate.upstream, aggregate.hits),
    aggregate.bytesIn,
    aggregate.bytesOut,
    aggregate.firstSeen === null ? null : new Date(aggregate.firstSeen),
    aggregate.lastSeen === null ? null : new Date(aggregate.lastSeen),
  ];
}

function latencyValues(stats: LatencyStats, hits: number): ColumnValue[] {
  const empty = hits === 0;
  return [
    stats.sumMicros / 1000,
    stats.min,
    stats.max,
    latencyQuantile(stats, 0.5),
    latencyQuantile(stats, 0.95),
    latencyQuantile(stats, 0.99),
    empty ? null : sketchBytes(stats.sketch),
  ];
}

/** Reads an aggregate back from a row keyed by column name (numbers may come as text: bigint). */
export function aggregateFromRow(row: Readonly<Record<string, unknown>>): Aggregate {
  const aggregate = emptyAggregate();
  aggregate.hits = Number(row.hits ?? 0);
  if (aggregate.hits === 0) return aggregate;
  aggregate.success = Number(row.success);
  aggregate.errors = Number(row.errors);
  aggregate.statusCounts = parsedJson(row.status_counts) as Record<string, number>;
  readLatency(aggregate.latency, row, 'latency');
  readLatency(aggregate.upstream, row, 'upstream');
  aggregate.bytesIn = Number(row.bytes_in);
  aggregate.bytesOut = Number(row.bytes_out);
  aggregate.firstSeen = epochMs(row.first_seen);
  aggregate.lastSeen = epochMs(row.last_seen);
  aggregate.alias = typeof row.alias === 'string' ? row.alias : null;
  return aggregate;
}

function readLatency(stats: LatencyStats, row: Readonly<Record<string, unknown>>, prefix: 'latency' | 'upstream'): void {
  stats.sumMicros = Math.round(Number(row[`${prefix}_sum`]) * 1000);
  stats.min = row[`${prefix}_min`] == null ? null : Number(row[`${prefix}_min`]);
  stats.max = row[`${prefix}_max`] == null ? null : Number(row[`${prefix}_max`]);
  const sketch = row[`${prefix}_sketch`];
  if (sketch instanceof Uint8Array) stats.sketch = sketchFromBytes(sketch);
}

function parsedJson(value: unknown): unknown {
  return typeof value === 'string' ? JSON.parse(value) : (value ?? {});
}

function epochMs(value: unknown): number | null {
  if (value == null) return null;
  return value instanceof Date ? value.getTime() : new Date(value as string).getTime();
}
