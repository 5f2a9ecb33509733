import { DDSketch } from '@datadog/sketches-js';
import { decodeSketch, type DecodedStore, encodeSketch } from './sketch-codec.js';

/** Every sketch Tollgate keeps has this relative accuracy: only sketches of the same accuracy merge. */
export const SKETCH_RELATIVE_ACCURACY = 0.01;

/**
 * Latencies of one aggregate: exact count, sum, min and max beside a DDSketch for the quantiles.
 * The sketch's serialised form (`fromProto`) loses its sum, min and max, so those are kept here,
 * in columns of their own.
 */
export interface LatencyStats {
  /** In whole microseconds (records carry ms to three decimals): sums then add up exactly in any order. */
  sumMicros: number;
  /** null while no latency was seen. */
  min: number | null;
  max: number | null;
  sketch: DDSketch;
}

export function emptyLatency(): LatencyStats {
  return { sumMicros: 0, min: null, max: null, sketch: new DDSketch({ relativeAccuracy: SKETCH_RELATIVE_ACCURACY }) };
}

/** One latency, worked out once for all the aggregates it lands in: its value, in µs, and its sketch key (null: zero). */
export interface LatencyPoint {
  value: number;
  micros: number;
  key: number | null;
}

const MAPPING = new DDSketch({ relativeAccuracy: SKETCH_RELATIVE_ACCURACY }).mapping;

export function latencyPoint(ms: number): LatencyPoint {
  // A negative or missing latency would poison sums and land in the sketch's negative store.
  const value = Number.isFinite(ms) && ms > 0 ? ms : 0;
  return { value, micros: Math.round(value * 1000), key: value > MAPPING.minPossible ? MAPPING.key(value) : null };
}

/** Counts a latency, as `sketch.accept` would, its key already known. */
export function acceptLatency(stats: LatencyStats, point: LatencyPoint): void {
  stats.sumMicros += point.micros;
  stats.min = stats.min === null ? point.value : Math.min(stats.min, point.value);
  stats.max = stats.max === null ? point.value : Math.max(stats.max, point.value);
  if (point.key === null) stats.sketch.zeroCount++;
  else stats.sketch.store.add(point.key);
  stats.sketch.count++;
}

export function mergeLatency(into: LatencyStats, from: LatencyStats): void {
  into.sumMicros += from.sumMicros;
  if (from.min !== null) into.min = into.min === null ? from.min : Math.min(into.min, from.min);
  if (from.max !== null) into.max = into.max === null ? from.max : Math.max(into.max, from.max);
  into.sketch.merge(from.sketch);
}

/** The value at quantile `q` (0..1), within 1% of the exact one; null for an empty sketch. */
export function latencyQuantile(stats: LatencyStats, q: number): number | null {
  const value = stats.sketch.getValueAtQuantile(q);
  return Number.isNaN(value) ? null : value;
}

export function sketchBytes(sketch: DDSketch): Buffer {
  return encodeSketch(sketch);
}

/** A sketch read back from `sketchBytes` (or any DDSketch's protobuf message); one of another accuracy is refused, as it could not merge. */
export function sketchFromBytes(bytes: Uint8Array): DDSketch {
  const decoded = decodeSketch(bytes);
  const sketch = new DDSketch({ relativeAccuracy: SKETCH_RELATIVE_ACCURACY });
  // Sketches of the same accuracy written elsewhere may differ from this gamma in the last bits.
  if (Math.abs(decoded.gamma - sketch.mapping.gamma) > 1e-12 || decoded.indexOffset !== 0 || decoded.interpolation !== 0) {
    throw new Error(
      `a stored latency sketch has gamma ${decoded.gamma} (index offset ${decoded.indexOffset}, interpolation ${decoded.interpolation}), not the logarithmic mapping of relative accuracy ${SKETCH_RELATIVE_ACCURACY}: it cannot be merged`,
    );
  }
  sketch.count = fill(sketch.store, decoded.positive) + fill(sketch.negativeStore, decoded.negative) + decoded.zeroCount;
  sketch.zeroCount = decoded.zeroCount;
  return sketch;
}

/** Lays the bins into an empty store as it keeps them (adding them one by one regrows its array again and again). */
function fill(store: DDSketch['store'], bins: DecodedStore): number {
  let first = 0;
  let last = bins.counts.length - 1;
  while (first <= last && !((bins.counts[first] as number) > 0)) first++;
  while (last >= first && !((bins.counts[last] as number) > 0)) last--;
  if (first > last) return 0;
  let total = 0;
  const counts = bins.counts.slice(first, last + 1).map((count) => (count > 0 ? count : 0));
  for (const count of counts) total += count;
  store.bins = counts;
  store.offset = bins.offset + first;
  store.minKey = store.offset;
  store.maxKey = store.offset + counts.length - 1;
  store.count = total;
  return total;
}
