import { analyticsRecord, type AnalyticsRecord, type AnalyticsRendering } from '../analytics/analytics-record.js';
import { encodeBatch } from '../analytics/codec.js';
import type { WHEN_FULL_POLICIES } from '../config/schema.js';
import type { RecordConsumer } from '../recording/pipeline.js';
import type { TransactionRecord } from '../recording/record.js';
import type { BatchBuffer } from './batch-buffer.js';
import type { EncodedBatch } from './spool-writer.js';

const MB = 1024 * 1024;

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

/** How long a full or failing buffer is left alone before it is asked again. */
const RETRY_MS = 200;
/** How long `close` waits for the buffer to take what is left. */
const CLOSE_WAIT_MS = 5_000;
/** Batches given to the buffer at once: a retry after a failure copies no more than this to its thread. */
const MAX_BATCHES_PER_STORE = 32;

type BufferCondition = { state: 'ok' } | { state: 'full' } | { state: 'failing'; reason: string };

/**
 * Turns finished transactions into analytics records and stores them in the analytics buffer in
 * batches: collected in memory, encoded once per batch, and stored at most `maxDelayMs` later,
 * off the request path. Batches the buffer has not taken yet (it is slow, failing or full) wait in
 * memory up to `maxQueuedBytes`. When the buffer is full, `whenFull` decides: drop the newest
 * records, drop the oldest ones, or keep every record of a request already answered and refuse new
 * requests (`refusal`) while the buffer is full or failing, or half the memory is taken.
 */
export class AnalyticsShipper implements RecordConsumer {
  readonly name = 'analytics buffer';
  dropped = 0;
  #collecting: AnalyticsRecord[] = [];
  #timer: NodeJS.Timeout | null = null;
  /** Sealed batches the buffer has not been given yet, oldest first. */
  readonly #queued: EncodedBatch[] = [];
  /** Records of the commit under way: taken out of `#queued`, so nothing drops them meanwhile. */
  #inFlightRecords = 0;
  /** Encoded bytes of `#queued` and of the commit under way. */
  #heldBytes = 0;
  #storing: Promise<void> | null = null;
  #condition: BufferCondition = { state: 'ok' };
  #closed = false;

  constructor(readonly options: ShipperOptions) {}

  /** Why new requests are refused (`whenFull: reject` while their records could not be kept), or null. */
  refusal(): string | null {
    if (this.options.whenFull !== 'reject') return null;
    const { maxBufferBytes, maxQueuedBytes } = this.options;
    const refusing = 'no request is served until every transaction can be recorded (whenFull: reject)';
    switch (this.#condition.state) {
      case 'full':
        return `the analytics buffer is full (analytics.buffer.maxSizeMb ${maxBufferBytes / MB}, or its disk): ${refusing}`;
      case 'failing':
        return `the analytics buffer cannot store records (${this.#condition.reason}): ${refusing}`;
      case 'ok':
        return this.#heldBytes > maxQueuedBytes / 2 ? `over ${maxQueuedBytes / 2 / MB} MiB of records wait in memory for the analytics buffer: ${refusing}` : null;
    }
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
    const { maxQueuedBytes, whenFull } = this.options;
    if (whenFull === 'dropOldest') {
      while (this.#queued.length > 0 && this.#heldBytes + batch.data.length > maxQueuedBytes) {
        const oldest = this.#queued.shift() as EncodedBatch;
        this.#heldBytes -= oldest.data.length;
        this.#drop(oldest.records, 'the oldest records waiting in memory made room for new ones (whenFull: dropOldest)');
      }
    }
    if (this.#heldBytes + batch.data.length > maxQueuedBytes) {
      return this.#drop(batch.records, `over ${maxQueuedBytes / MB} MiB of records wait in memory for the analytics buffer`);
    }
    this.#queued.push(batch);
    this.#heldBytes += batch.data.length;
    this.#storing ??= this.#storeQueued();
  }

  /** Gives the buffer what is queued, a commit at a time, until nothing is; a full or failing buffer is asked again every RETRY_MS. */
  async #storeQueued(): Promise<void> {
    const { buffer, whenFull, maxBufferBytes } = this.options;
    while (this.#queued.length > 0) {
      const batches = this.#queued.splice(0, MAX_BATCHES_PER_STORE);
      this.#inFlightRecords = batches.reduce((sum, batch) => sum + batch.records, 0);
      let stored = 0;
      try {
        const outcome = await buffer.store(batches, maxBufferBytes, whenFull === 'dropOldest');
        stored = outcome.stored;
        if (outcome.evicted > 0) this.#drop(outcome.evicted, 'the oldest records in the buffer made room for new ones (whenFull: dropOldest)');
        this.#condition = stored < batches.length ? { state: 'full' } : { state: 'ok' };
      } catch (error) {
        this.options.onError(error as Error);
        this.#condition = { state: 'failing', reason: (error as Error).message };
      }
      this.#inFlightRecords = 0;
      this.#release(batches.slice(0, stored));
      const rest = batches.slice(stored);
      if (rest.length === 0) continue;
      if (this.#condition.state === 'full' && whenFull !== 'reject') {
        this.#release(rest);
        this.#drop(
          rest.reduce((sum, batch) => sum + batch.records, 0),
          `the analytics buffer is full (analytics.buffer.maxSizeMb, or its disk; whenFull: ${whenFull})`,
        );
        continue;
      }
      // Kept for another try: a failing buffer may recover, and under reject a full one gets room from the pumps.
      this.#queued.unshift(...rest);
      if (this.#closed) break;
      await new Promise((resolve) => setTimeout(resolve, RETRY_MS));
    }
    this.#storing = null;
  }

  #release(batches: readonly EncodedBatch[]): void {
    for (const batch of batches) this.#heldBytes -= batch.data.length;
  }

  #drop(records: number, why: string): void {
    this.dropped += records;
    this.options.onDrop(Object.assign(new Error(`${records} record(s) dropped (${this.dropped} so far): ${why}`), { code: 'ANALYTICS_DROP' }));
  }

  async close(): Promise<void> {
    this.#seal();
    const deadline = new Promise<'late'>((resolve) => setTimeout(resolve, CLOSE_WAIT_MS, 'late').unref());
    const late = this.#storing !== null && (await Promise.race([this.#storing, deadline])) === 'late';
    this.#closed = true;
    const lost = this.#queued.splice(0);
    this.#release(lost);
    const records = lost.reduce((sum, batch) => sum + batch.records, 0);
    if (records > 0) this.#drop(records, `the analytics buffer did not take them within ${CLOSE_WAIT_MS / 1000} s of the gateway stopping`);
    if (late && this.#inFlightRecords > 0) {
      this.options.onError(new Error(`${this.#inFlightRecords} record(s) were still being committed to the analytics buffer when the gateway stopped; they may be lost`));
    }
    await this.options.buffer.close();
  }
}
