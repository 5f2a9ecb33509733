import type { AnalyticsRecord } from '../analytics/analytics-record.js';
import type { DeadLetter } from './dead-letter.js';
import { recordShaper } from './record-shaping.js';
import { RejectedError, RetryableError, type CommonSinkOptions, type RejectedRecord, type Sink } from './sink.js';

/** `open`: delivering; `retrying`: failing, retried with backoff; `dead-lettering`: failing longer than `maxRetryTimeSec`, batches go to the dead letter. */
export type SinkState = 'opening' | 'open' | 'retrying' | 'dead-lettering';

export type DeadLetterReason = 'rejected_batch' | 'rejected_record' | 'retry_time_exceeded';

/** What a runner reports as it goes (the pump's metrics). */
export interface SinkRunnerEvents {
  written(records: number): void;
  /** Records of an attempt that failed and is tried again. */
  retried(records: number): void;
  deadLettered(reason: DeadLetterReason, records: number): void;
  filtered(records: number): void;
  /** Dead-lettered records an attempt that had timed out delivered after all: taken out of the dead letter. */
  withdrawn(records: number): void;
  /** From a batch being formed to the sink having it, retries included. */
  batchSeconds(seconds: number): void;
}

export interface SinkStatus {
  state: SinkState;
  lastError: string | null;
}

const BACKOFF_BASE_MS = 100;
/** The longest wait between two attempts, unless the receiver asks for more (Retry-After). */
export const BACKOFF_CAP_MS = 30_000;
/** A failing sink says so at most this often. */
const REPORT_EVERY_MS = 10_000;

interface Delivery {
  remaining: number;
  resolve: () => void;
}

interface Entry {
  record: AnalyticsRecord;
  delivery: Delivery;
  queuedAt: number;
}

/** What one attempt gave: the records the sink refused one by one, or a failure; an attempt that timed out may still deliver (`late`). */
type Attempt = { ok: true; rejected: RejectedRecord[] } | { ok: false; error: Error; late: Promise<RejectedRecord[] | null> | null };

/**
 * The batcher and retrier every sink shares. It takes source batches (`deliver`), keeps what the
 * sink's filter takes, shapes it, writes it in batches of `batchSize` (or what came within
 * `maxDelayMs`), one write at a time, each bounded by `timeoutMs`, retried with exponential
 * backoff and full jitter. A batch refused for good, records refused one by one, and batches of a
 * sink failing longer than `maxRetryTimeSec` go to the sink's dead letter. `deliver` resolves
 * once every record of the source batch is written or dead-lettered: only then may the source
 * acknowledge it. It holds no more than the records of the source batches the pump has in flight.
 */
export class SinkRunner {
  readonly #shape: (records: readonly AnalyticsRecord[]) => { kept: AnalyticsRecord[]; filtered: number };
  readonly #maxRetryMs: number;
  #queue: Entry[] = [];
  #state: SinkState = 'opening';
  #lastError: string | null = null;
  #opened = false;
  /** When the current run of failures began (null: the last attempt succeeded). */
  #failingSince: number | null = null;
  #failures = 0;
  #lastAttemptAt = 0;
  #lastReportAt = 0;
  #flushing = false;
  #stopped = false;
  #wake: (() => void) | null = null;
  #stopSignal: Promise<void>;
  #signalStop!: () => void;
  readonly #running: Promise<void>;

  constructor(
    readonly name: string,
    readonly sink: Sink,
    readonly options: CommonSinkOptions,
    readonly deadLetter: DeadLetter,
    readonly events: SinkRunnerEvents,
    readonly notify: (message: string) => void,
  ) {
    this.#shape = recordShaper(options);
    this.#maxRetryMs = options.maxRetryTimeSec * 1000;
    this.#stopSignal = new Promise((resolve) => (this.#signalStop = resolve));
    this.#running = this.#run().catch((error: unknown) => {
      this.#lastError = `the runner stopped: ${(error as Error).message}`;
      this.notify(`sink ${this.name}: ${this.#lastError}`);
    });
  }

  status(): SinkStatus {
    return { state: this.#state, lastError: this.#lastError };
  }

  /** Resolves once each of the records the sink takes is written or dead-lettered (never, if the runner is stopped first). */
  deliver(records: readonly AnalyticsRecord[]): Promise<void> {
    const { kept, filtered } = this.#shape(records);
    if (filtered > 0) this.events.filtered(filtered);
    if (kept.length === 0) return Promise.resolve();
    return new Promise((resolve) => {
      const delivery: Delivery = { remaining: kept.length, resolve };
      const queuedAt = Date.now();
      for (const record of kept) this.#queue.push({ record, delivery, queuedAt });
      this.#wakeUp();
    });
  }

  /** Writes what waits at once, without waiting for `maxDelayMs` (the pump is stopping). */
  flush(): void {
    this.#flushing = true;
    this.#wakeUp();
  }

  /** Stops attempting (what is not delivered stays unacknowledged in the buffer), then closes the sink. */
  async stop(): Promise<void> {
    this.#stopped = true;
    this.#signalStop();
    this.#wakeUp();
    await this.#running;
    await this.sink.close().catch((error: unknown) => this.notify(`sink ${this.name}: closing failed: ${(error as Error).message}`));
  }

  async #run(): Promise<void> {
    while (!this.#stopped) {
      if (this.#queue.length === 0) {
        if (this.#opened) await this.#waitForWork(null);
        else if (!(await this.#open())) await this.#waitForWork(this.#backoffMs(null));
        continue;
      }
      const oldest = (this.#queue[0] as Entry).queuedAt;
      const due = oldest + this.options.maxDelayMs - Date.now();
      if (!this.#flushing && this.#queue.length < this.options.batchSize && due > 0) {
        await this.#waitForWork(due);
        continue;
      }
      await this.#send(this.#queue.splice(0, this.options.batchSize));
    }
  }

  /** Sleeps until records come, a flush or stop is asked for, or `ms` pass. */
  #waitForWork(ms: number | null): Promise<void> {
    return new Promise((resolve) => {
      const timer = ms === null ? undefined : setTimeout(() => this.#wakeUp(), ms);
      this.#wake = () => {
        clearTimeout(timer);
        resolve();
      };
    });
  }

  #wakeUp(): void {
    const wake = this.#wake;
    this.#wake = null;
    wake?.();
  }

  async #send(entries: Entry[]): Promise<void> {
    const records = entries.map((entry) => entry.record);
    const formedAt = Date.now();
    let late: Promise<RejectedRecord[] | null> | null = null;
    for (;;) {
      if (this.#stopped) return;
      if (this.#state === 'dead-lettering' && Date.now() - this.#lastAttemptAt < Math.min(BACKOFF_CAP_MS, this.#maxRetryMs)) {
        return this.#giveUp(entries, late);
      }
      const attempt = await this.#attempt(records);
      if (attempt.ok) return this.#delivered(entries, attempt.rejected, formedAt);
      if (attempt.error instanceof RejectedError) {
        this.#succeeded();
        this.notify(`sink ${this.name}: a batch of ${records.length} records was refused (${attempt.error.message}); it goes to the dead letter`);
        await this.#deadLetter(records, 'rejected_batch');
        return this.#finish(entries);
      }
      this.#failed(attempt.error);
      late = attempt.late ?? late;
      if (this.#state === 'dead-lettering') return this.#giveUp(entries, late);
      this.events.retried(records.length);
      const settledLate = await this.#sleep(this.#backoffMs(attempt.error), late);
      if (settledLate !== null) {
        this.#succeeded();
        return this.#delivered(entries, settledLate, formedAt);
      }
    }
  }

  async #attempt(records: AnalyticsRecord[]): Promise<Attempt> {
    this.#lastAttemptAt = Date.now();
    if (!this.#opened && !(await this.#open())) return { ok: false, error: new RetryableError(this.#lastError ?? 'not open'), late: null };
    const write = Promise.resolve().then(() => this.sink.write(records));
    const outcome = await withTimeout(write, this.options.timeoutMs, this.#stopSignal);
    if (outcome === TIMED_OUT) {
      return {
        ok: false,
        error: new RetryableError(`no answer within ${this.options.timeoutMs} ms (timeoutMs)`),
        late: write.then(
          (rejected) => rejected,
          () => null,
        ),
      };
    }
    if (outcome instanceof Error) return { ok: false, error: outcome, late: null };
    return { ok: true, rejected: outcome };
  }

  /** One attempt to open the sink; a failure counts like a failed write. */
  async #open(): Promise<boolean> {
    const opening = Promise.resolve().then(() => this.sink.open());
    const outcome = await withTimeout(opening, this.options.timeoutMs, this.#stopSignal);
    if (outcome === undefined) {
      this.#opened = true;
      this.#succeeded();
      return true;
    }
    const error = outcome === TIMED_OUT ? new Error(`no answer within ${this.options.timeoutMs} ms (timeoutMs)`) : outcome;
    this.#failed(new RetryableError(`cannot open: ${error.message}`));
    return false;
  }

  #delivered(entries: Entry[], rejected: RejectedRecord[], formedAt: number): Promise<void> {
    this.#succeeded();
    this.events.written(entries.length - rejected.length);
    this.events.batchSeconds((Date.now() - formedAt) / 1000);
    if (rejected.length === 0) {
      this.#finish(entries);
      return Promise.resolve();
    }
    const [first] = rejected;
    this.notify(`sink ${this.name}: ${rejected.length} records refused (first: ${first?.reason}); they go to the dead letter`);
    return this.#deadLetter(
      rejected.map(({ record }) => record),
      'rejected_record',
    ).then(() => this.#finish(entries));
  }

  /** Failing longer than `maxRetryTimeSec`: the batch goes to the dead letter; should an attempt that timed out deliver it after all, it is taken out again. */
  async #giveUp(entries: Entry[], late: Promise<RejectedRecord[] | null> | null): Promise<void> {
    const records = entries.map((entry) => entry.record);
    const id = await this.#deadLetter(records, 'retry_time_exceeded');
    this.#finish(entries);
    if (late === null || id === null) return;
    void late.then((rejected) => {
      if (rejected === null) return;
      try {
        this.deadLetter.delete(id);
      } catch (error) {
        this.notify(`sink ${this.name}: a batch delivered late stays in the dead letter too: ${(error as Error).message}`);
        return;
      }
      this.events.withdrawn(records.length);
      this.events.written(records.length - rejected.length);
      this.notify(`sink ${this.name}: a timed-out attempt delivered ${records.length} records after all; they left the dead letter`);
    });
  }

  /** Keeps the records in the dead letter, retrying while its disk fails; null when stopped first. */
  async #deadLetter(records: AnalyticsRecord[], reason: DeadLetterReason): Promise<number | null> {
    for (let failures = 0; ; failures++) {
      try {
        const id = this.deadLetter.put(records);
        this.events.deadLettered(reason, records.length);
        return id;
      } catch (error) {
        this.notify(`sink ${this.name}: cannot write the dead letter ${this.deadLetter.path}: ${(error as Error).message}; retrying`);
        if (this.#stopped) return null;
        await this.#sleep(fullJitter(failures), null);
      }
    }
  }

  #finish(entries: Entry[]): void {
    for (const { delivery } of entries) {
      if (--delivery.remaining === 0) delivery.resolve();
    }
  }

  #succeeded(): void {
    if (this.#state !== 'open' && this.#failingSince !== null) {
      this.notify(`sink ${this.name}: delivering again after ${Math.round((Date.now() - this.#failingSince) / 1000)} s of failures`);
    }
    this.#state = 'open';
    this.#failingSince = null;
    this.#failures = 0;
  }

  #failed(error: Error): void {
    const now = Date.now();
    this.#failingSince ??= now;
    this.#failures++;
    this.#lastError = error.message;
    const before = this.#state;
    this.#state = now - this.#failingSince >= this.#maxRetryMs ? 'dead-lettering' : 'retrying';
    if (before !== this.#state || now - this.#lastReportAt >= REPORT_EVERY_MS) {
      this.#lastReportAt = now;
      const then =
        this.#state === 'dead-lettering'
          ? `failing for more than ${this.options.maxRetryTimeSec} s (maxRetryTimeSec): its batches go to the dead letter while it stays down`
          : 'retrying';
      this.notify(`sink ${this.name}: ${error.message}; ${then}`);
    }
  }

  /** Full jitter, or what the receiver asked for; until the sink gives up, never past the moment it is to. */
  #backoffMs(error: Error | null): number {
    const wanted = error instanceof RetryableError && error.retryAfterMs !== null ? error.retryAfterMs : fullJitter(this.#failures);
    if (this.#failingSince === null || this.#state === 'dead-lettering') return wanted;
    return Math.max(0, Math.min(wanted, this.#failingSince + this.#maxRetryMs - Date.now()));
  }

  /** Waits `ms`, or less if stopped; resolves with what a timed-out attempt delivered should it succeed meanwhile. */
  async #sleep(ms: number, late: Promise<RejectedRecord[] | null> | null): Promise<RejectedRecord[] | null> {
    let timer: NodeJS.Timeout | undefined;
    const elapsed = new Promise<null>((resolve) => (timer = setTimeout(() => resolve(null), ms)));
    const delivered = late === null ? elapsed : late.then((rejected) => rejected ?? elapsed);
    const outcome = await Promise.race([elapsed, this.#stopSignal.then(() => null), delivered]);
    clearTimeout(timer);
    return outcome;
  }
}

function fullJitter(failures: number): number {
  return Math.random() * Math.min(BACKOFF_CAP_MS, BACKOFF_BASE_MS * 2 ** Math.min(failures, 20));
}

const TIMED_OUT = Symbol('timed out');

/** The promise's value, its error, or TIMED_OUT (after `ms`, or at once when stopped); the promise itself runs on. */
async function withTimeout<T>(promise: Promise<T>, ms: number, stopped: Promise<void>): Promise<T | Error | typeof TIMED_OUT> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<typeof TIMED_OUT>((resolve) => (timer = setTimeout(() => resolve(TIMED_OUT), ms)));
  try {
    return await Promise.race([
      promise.catch((error: unknown) => (error instanceof Error ? error : new Error(String(error)))),
      timeout,
      stopped.then((): typeof TIMED_OUT => TIMED_OUT),
    ]);
  } finally {
    clearTimeout(timer);
  }
}
