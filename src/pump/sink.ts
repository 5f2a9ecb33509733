import type { Registry } from 'prom-client';
import { z } from 'zod';
import type { AnalyticsRecord } from '../analytics/analytics-record.js';
import { milliseconds, name, positiveInt, seconds } from '../config/primitives.js';

/**
 * Where the pump delivers analytics records: a store or a tool. A sink is one file under
 * `src/pump/sinks/` exporting a `SinkDefinition`; the pump gives it batches through the shared
 * batcher and retrier (`sink-runner.ts`), which own batching, retries, dead letters and metrics.
 */
export interface Sink {
  /**
   * Connects and makes what it needs (tables, streams). A failure is retried, with backoff, before
   * any batch is written: the pump starts and keeps trying, saying so.
   */
  open(): Promise<void>;
  /**
   * Delivers the records and resolves once the receiver has them for good. Throws for a failure
   * that may pass (network, timeout, 5xx, 429: a `RetryableError` may say when to retry);
   * `RejectedError` when the receiver refuses the whole batch for good. Records it refuses one by
   * one are returned: they go to the dead letter, the others count as delivered.
   */
  write(records: readonly AnalyticsRecord[]): Promise<RejectedRecord[]>;
  close(): Promise<void>;
  /** Metrics the sink serves on `pump.health`'s `/metrics`, beside the pump's own (the `prometheus` sink without a port of its own). */
  readonly healthMetrics?: Registry;
}

export interface RejectedRecord {
  record: AnalyticsRecord;
  reason: string;
}

/** A failure worth retrying, possibly after a time the receiver named (Retry-After). */
export class RetryableError extends Error {
  constructor(
    message: string,
    readonly retryAfterMs: number | null = null,
  ) {
    super(message);
    this.name = 'RetryableError';
  }
}

/** The receiver refuses the batch for good (a 4xx other than 408/429, invalid data): retrying cannot help. */
export class RejectedError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'RejectedError';
  }
}

/** Options every sink has: which records it takes, how they are shaped, batched and retried. */
export const commonSinkOptions = {
  /** Unique among the pump's sinks; names its dead letter, metrics and `tollgate replay --sink`. Defaults to the type. */
  name: name.optional(),
  apiIds: z.array(z.string().min(1)).default([]),
  skipApiIds: z.array(z.string().min(1)).default([]),
  statusCodes: z.array(z.number().int().min(100).max(599)).default([]),
  skipStatusCodes: z.array(z.number().int().min(100).max(599)).default([]),
  /** Leave out header blocks, payload links and bodies. */
  omitPayloads: z.boolean().default(false),
  /** A record larger than this (encoded) loses its header blocks and bodies; 0: no limit. */
  maxRecordBytes: z.number().int().min(0).default(0),
  /** Top-level fields of the record left out, e.g. `userAgent`. */
  dropFields: z.array(z.string().min(1)).default([]),
  batchSize: positiveInt.default(1000),
  maxDelayMs: milliseconds.default(1000),
  timeoutMs: milliseconds.default(30_000),
  /** How long a failing receiver may hold the pipeline before its batches go to the dead letter. */
  maxRetryTimeSec: seconds.default(300),
};

export type CommonSinkOptions = z.infer<z.ZodObject<typeof commonSinkOptions>>;

/** What the pump gives a sink besides its options. */
export interface SinkContext {
  /** The sink's name (its `name` option, else its type). */
  name: string;
  /** Operational messages (connecting, retrying): standard error. */
  notify: (message: string) => void;
}

/** One kind of sink: its own options (beside the common ones) and how to make one. */
export interface SinkDefinition<Options extends z.ZodRawShape = z.ZodRawShape> {
  type: string;
  options: Options;
  create(options: z.infer<z.ZodObject<Options>> & CommonSinkOptions, context: SinkContext): Sink;
}

/** Infers a definition's option types from its schema shape. */
export function defineSink<Options extends z.ZodRawShape>(definition: SinkDefinition<Options>): SinkDefinition<Options> {
  return definition;
}
