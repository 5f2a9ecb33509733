import { analyticsRecord, type AnalyticsRecord, type AnalyticsRendering } from '../analytics/analytics-record.js';
import { encodeBatch } from '../analytics/codec.js';
import type { WHEN_FULL_POLICIES } from '../config/schema.js';
import type { RecordConsumer } from '../recording/pipeline.js';
import type { TransactionRecord } from '../recording/record.js';
import type { BatchBuffer } from './batch-buffer.js';
import type { EncodedBatch, StoreResult } from './spool-writer.js';

export type WhenFull = (typeof WHEN_FULL_POLICIES)[number];

export interface ShipperOptions {
  buffer: BatchBuffer;
  rendering: AnalyticsRendering;
  /** Records wait in memory at most this long before their batch is stored. */
  maxDelayMs: number;
  batchSize: number;
  maxBufferBytes: number;
  whenFull: WhenFull;
  /** Encoded batches that may wait in memory for the buffer; past it, what the policy says goes. */
  maxQueuedBytes: number;
  /** Records dropped (by the policy, or because the buffer failed): reported at most once per interval by the caller. */
  onDrop: (error: Error) => void;
  /** Why the buffer could not store batches (a full disk, a vanished directory). */
  onError: (error: Error) => void;
}

/** How long a full buffer is left alone before it is asked again whether there is room. */
const ROOM_POLL_MS = 200;
/** How long `close` waits for the buffer to take what is left. */
const CLOSE_WAIT_MS = 5_000;

/**
 * Turns finished transactions into analytics records and stores them in the analytics buffer in
 * batches: collected in memory, encoded once per batch, and stored at most `maxDelayMs` later,
 * off the request path. When the buffer is full, `whenFull` decides: drop the newest records,
 * drop the oldest ones, or keep what was accepted and refuse new requests (`refusal`) until there
 * is room.
 */
export class AnalyticsShipper implements RecordConsumer {
  readonly name = 'analytics buffer';
  dropped = 0;
  #collecting: AnalyticsRecord[] = [];
  #timer: NodeJS.Timeout | null = null;
  readonly #queued: EncodedBatch[] = [];
  #queuedBytes = 0;
  #storing: Promise<void> | null = null;
  #full = false;
  #closed = false;

  constructor(readonly options: ShipperOptions) {}

  /** Why new requests are refused (`whenFull: reject` with a full buffer), or null. */
  refusal(): string | null {
    return this.#full && this.options.whenFull === 'reject'
      ? `the analytics buffer is full (analytics.buffer.maxSizeMb ${this.options.maxBufferBytes / 1024 / 1024}, whenFull: reject): no request is served until every transaction can be recorded`
      : null;
  }

  write(records: readonly TransactionRecord[]): void {
    if (this.#closed) return this.#drop(records.length, 'the analytics buffer is closed');
    for (const record of records) {
      // A request refused for want of room is in the traffic log; its record would only take the room it waits for.
      if (record.failureReason === 'analytics-buffer-full') continue;
      this.#collecting.push(analyticsRecord(record, this.options.rendering));
      if (this.#collecting.length >= this.options.batchSize) this.#seal();
    }
    if (this.#collecting.length > 0) this.#timer ??= setTimeout(() => this.#seal(), this.options.maxDelayMs);
  }

  /** Ends the batch being collected: encoded once, queued for the buffer. */
  #seal(): void {
    if (this.#timer !== null) clearTimeout(this.#timer);
    this.#timer = null;
    if (this.#collecting.length === 0) return;
    const batch: EncodedBatch = { data: encodeBatch(this.#collecting), records: this.#collecting.length };
    this.#collecting = [];
    if (this.#queuedBytes + batch.data.length > this.options.maxQueuedBytes) {
      if (this.options.whenFull === 'dropOldest') this.#dropQueuedUntil(batch.data.length);
      if (this.#queuedBytes + batch.data.length > this.options.maxQueuedBytes) {
        return this.#drop(batch.records, `over ${this.options.maxQueuedBytes / 1024 / 1024} MiB of records wait in memory for the analytics buffer`);
      }
    }
    this.#queued.push(batch);
    this.#queuedBytes += batch.data.length;
    this.#storing ??= this.#storeQueued();
  }

  #dropQueuedUntil(bytes: number): void {
    while (this.#queued.length > 0 && this.#queuedBytes + bytes > this.options.maxQueuedBytes) {
      const oldest = this.#queued.shift() as EncodedBatch;
      this.#queuedBytes -= oldest.data.length;
      this.#drop(oldest.records, 'the oldest records waiting in memory made room for new ones');
    }
  }

  /** Stores what is queued, a commit at a time, until nothing is; a full buffer is asked again every ROOM_POLL_MS. */
  async #storeQueued(): Promise<void> {
    const { buffer, whenFull, maxBufferBytes } = this.options;
    while (this.#queued.length > 0) {
      const batches = this.#queued.slice();
      let outcome: StoreResult;
      let failed = false;
      try {
        outcome = await buffer.store(batches, maxBufferBytes, whenFull === 'dropOldest');
      } catch (error) {
        this.options.onError(error as Error);
        outcome = { stored: 0, ids: [], evicted: 0 };
        failed = true;
      }
      if (outcome.evicted > 0) this.#drop(outcome.evicted, 'the oldest records in the buffer made room for new ones (whenFull: dropOldest)');
      this.#unqueue(outcome.stored);
      this.#full = outcome.stored < batches.length;
      if (!this.#full) continue;
      if (whenFull !== 'reject' || this.#closed) {
        const lost = this.#unqueue(batches.length - outcome.stored);
        this.#drop(lost, failed ? 'the analytics buffer could not store them' : `the analytics buffer is full (analytics.buffer.maxSizeMb; whenFull: ${whenFull})`);
      }
      if (whenFull === 'reject' || failed) await new Promise((resolve) => setTimeout(resolve, ROOM_POLL_MS));
    }
    this.#storing = null;
  }

  /** Takes the first `count` batches off the queue; returns their records. */
  #unqueue(count: number): number {
    let records = 0;
    for (const batch of this.#queued.splice(0, count)) {
      this.#queuedBytes -= batch.data.length;
      records += batch.records;
    }
    return records;
  }

  #drop(records: number, why: string): void {
    this.dropped += records;
    this.options.onDrop(Object.assign(new Error(`${records} record(s) dropped (${this.dropped} so far): ${why}`), { code: 'ANALYTICS_DROP' }));
  }

  async close(): Promise<void> {
    this.#seal();
    const deadline = new Promise<'late'>((resolve) => setTimeout(resolve, CLOSE_WAIT_MS, 'late').unref());
    if (this.#storing !== null && (await Promise.race([this.#storing, deadline])) === 'late') {
      this.#closed = true;
      const lost = this.#unqueue(this.#queued.length);
      if (lost > 0) this.#drop(lost, `the analytics buffer took none of them in ${CLOSE_WAIT_MS / 1000} s before the gateway stopped`);
    }
    this.#closed = true;
    await this.options.buffer.close();
  }
}
