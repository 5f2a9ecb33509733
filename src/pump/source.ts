import type { AnalyticsRecord } from '../analytics/analytics-record.js';

/** A batch as the pump takes it from the buffer. */
export interface SourceBatch {
  /** Unique within the source (the spool file and row, the stream entry): for logs and dead letters. */
  readonly key: string;
  readonly records: readonly AnalyticsRecord[];
}

/**
 * Where the pump takes batches from: the embedded spools on this host, or the Redis stream (as one
 * consumer of the group). A batch leaves the buffer only when `ack` is called: after every sink has
 * persisted it or dead-lettered it.
 */
export interface BatchSource {
  /** Up to `max` batches not yet handed out, waiting at most `waitMs` for some; [] when none came. */
  read(max: number, waitMs: number): Promise<SourceBatch[]>;
  /** Every sink has the batch: it leaves the buffer. */
  ack(batch: SourceBatch): Promise<void>;
  /** Batches in the buffer not yet acknowledged, and the age in ms of the oldest (for /metrics). */
  depth(): Promise<{ batches: number; records: number; oldestAgeMs: number }>;
  close(): Promise<void>;
}
