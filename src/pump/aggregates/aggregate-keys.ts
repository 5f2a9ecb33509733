import type { AggregatedRecord } from './aggregate.js';

/** Records are counted per minute; hours and days are roll-ups of the size before them. */
export const BUCKET_SIZES = ['minute', 'hour', 'day'] as const;
export type BucketSize = (typeof BUCKET_SIZES)[number];

const BUCKET_MS: Record<BucketSize, number> = { minute: 60_000, hour: 3_600_000, day: 86_400_000 };

/** Each roll-up: the buckets of `to` are made from those of `from`. */
export const ROLL_UPS: readonly { from: BucketSize; to: BucketSize }[] = [
  { from: 'minute', to: 'hour' },
  { from: 'hour', to: 'day' },
];

export const DIMENSIONS = ['total', 'api', 'api+normalisedPath', 'status', 'apiKey', 'tag'] as const;
export type Dimension = (typeof DIMENSIONS)[number];

/** One aggregate's place: a bucket (epoch ms of its start, UTC), its size, and a dimension's value. */
export interface AggregateKey {
  bucket: number;
  size: BucketSize;
  dimension: Dimension;
  /** '' for `total`; the API id, `<api id> <normalised path>`, the status code, the key's hash, the tag. */
  value: string;
}

/** The start of the bucket holding `epochMs` (UTC: days start at midnight UTC). */
export function bucketStart(epochMs: number, size: BucketSize): number {
  const length = BUCKET_MS[size];
  return Math.floor(epochMs / length) * length;
}

export function bucketEnd(bucket: number, size: BucketSize): number {
  return bucket + BUCKET_MS[size];
}

/**
 * The dimension values a record counts in. Paths count only for tracked endpoints unless
 * `trackAllPaths`: every distinct path of every API would make a row per minute each.
 */
export function dimensionsOf(record: AggregatedRecord, trackAllPaths: boolean): { dimension: Dimension; value: string }[] {
  const found: { dimension: Dimension; value: string }[] = [
    { dimension: 'total', value: '' },
    { dimension: 'status', value: String(record.status) },
  ];
  if (record.apiId != null) {
    found.push({ dimension: 'api', value: record.apiId });
    if (record.normalisedPath != null && (trackAllPaths || record.trackedEndpoint != null)) {
      found.push({ dimension: 'api+normalisedPath', value: `${record.apiId} ${record.normalisedPath}` });
    }
  }
  if (record.apiKeyHash != null) found.push({ dimension: 'apiKey', value: record.apiKeyHash });
  // A tag given twice counts once.
  for (const tag of new Set(record.tags ?? [])) found.push({ dimension: 'tag', value: tag });
  return found;
}

export function keyText(key: AggregateKey): string {
  return `${key.bucket}\u0000${key.size}\u0000${key.dimension}\u0000${key.value}`;
}
