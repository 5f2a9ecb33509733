import type { AnalyticsRecord } from '../../analytics/analytics-record.js';
import { acceptLatency, emptyLatency, type LatencyPoint, latencyPoint, type LatencyStats, mergeLatency } from './latency-sketch.js';

/** The fields of a record that aggregates count: what a store keeps of it until it is aggregated. */
export type AggregatedRecord = Pick<
  AnalyticsRecord,
  | 'timestamp'
  | 'apiId'
  | 'normalisedPath'
  | 'trackedEndpoint'
  | 'status'
  | 'apiKeyHash'
  | 'apiKeyAlias'
  | 'latencyTotal'
  | 'latencyUpstream'
  | 'bytesIn'
  | 'bytesOut'
  | 'tags'
>;

/** What one bucket knows of one dimension value: counts, latencies (ms) and bytes of its records. */
export interface Aggregate {
  hits: number;
  /** Status < 400. */
  success: number;
  /** Status >= 400. */
  errors: number;
  /** Hits per status code. */
  statusCounts: Record<string, number>;
  /** Total latency as the client saw it. */
  latency: LatencyStats;
  upstream: LatencyStats;
  bytesIn: number;
  bytesOut: number;
  /** Epoch ms of the first and last record; null while empty. */
  firstSeen: number | null;
  lastSeen: number | null;
  /** The API key's alias (dimension `apiKey` only), from the latest record that had one. */
  alias: string | null;
}

export function emptyAggregate(): Aggregate {
  return {
    hits: 0,
    success: 0,
    errors: 0,
    statusCounts: {},
    latency: emptyLatency(),
    upstream: emptyLatency(),
    bytesIn: 0,
    bytesOut: 0,
    firstSeen: null,
    lastSeen: null,
    alias: null,
  };
}

/** What a record adds to each of its aggregates, worked out once. */
export interface RecordPoint {
  code: string;
  latency: LatencyPoint;
  upstream: LatencyPoint;
}

export function recordPoint(record: AggregatedRecord): RecordPoint {
  return { code: String(record.status), latency: latencyPoint(record.latencyTotal), upstream: latencyPoint(record.latencyUpstream) };
}

/** Counts one record in the aggregate; `alias` only for the `apiKey` dimension. */
export function addRecord(aggregate: Aggregate, record: AggregatedRecord, alias: string | null, point: RecordPoint = recordPoint(record)): void {
  aggregate.hits++;
  if (record.status >= 400) aggregate.errors++;
  else aggregate.success++;
  aggregate.statusCounts[point.code] = (aggregate.statusCounts[point.code] ?? 0) + 1;
  acceptLatency(aggregate.latency, point.latency);
  acceptLatency(aggregate.upstream, point.upstream);
  aggregate.bytesIn += record.bytesIn ?? 0;
  aggregate.bytesOut += record.bytesOut ?? 0;
  mergeSeen(aggregate, record.timestamp, record.timestamp, alias);
}

/** Adds `from` to `into`: the result is what one aggregate of both sets of records would hold. */
export function mergeAggregate(into: Aggregate, from: Aggregate): void {
  into.hits += from.hits;
  into.success += from.success;
  into.errors += from.errors;
  for (const [code, count] of Object.entries(from.statusCounts)) into.statusCounts[code] = (into.statusCounts[code] ?? 0) + count;
  mergeLatency(into.latency, from.latency);
  mergeLatency(into.upstream, from.upstream);
  into.bytesIn += from.bytesIn;
  into.bytesOut += from.bytesOut;
  if (from.firstSeen !== null && from.lastSeen !== null) mergeSeen(into, from.firstSeen, from.lastSeen, from.alias);
}

function mergeSeen(aggregate: Aggregate, first: number, last: number, alias: string | null): void {
  aggregate.firstSeen = aggregate.firstSeen === null ? first : Math.min(aggregate.firstSeen, first);
  // The alias of the latest record wins: a key renamed keeps its new name.
  if (alias !== null && (aggregate.lastSeen === null || last >= aggregate.lastSeen || aggregate.alias === null)) aggregate.alias = alias;
  aggregate.lastSeen = aggregate.lastSeen === null ? last : Math.max(aggregate.lastSeen, last);
}
