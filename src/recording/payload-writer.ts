import { performance } from 'node:perf_hooks';
import { Worker } from 'node:worker_threads';

/** One payload file to create: from bytes, as another name of a file already written, or by moving a file into place. */
export interface FileJob {
  path: string;
  data: Buffer | null;
  /** With `data` null: the file this one is the same body as (hard-linked, else copied). */
  sameAs: string | null;
  /** With `data` null: the file a body streamed into while it passed, moved to `path`. */
  movedFrom: string | null;
}

export interface JobFailure {
  code: string;
  message: string;
}

/** The jobs of one turn, their bytes packed into one buffer that is moved, not copied, to the thread. */
export interface WriteBatch {
  id: number;
  paths: string[];
  sameAs: (string | null)[];
  movedFrom: (string | null)[];
  /** Bytes per job in `data`, in order; -1 for a job that links or moves. */
  lengths: number[];
  data: ArrayBuffer;
}

export interface WriteResult {
  id: number;
  /** Per job: null when written, else why not. */
  failures: (JobFailure | null)[];
  /** How long the thread took for the batch. */
  busyMs: number;
}

type Done = (failures: (JobFailure | null)[]) => void;

interface Waiting {
  jobs: FileJob[];
  done: Done;
}

interface InFlight {
  sentAt: number;
  bytes: number;
  jobs: number;
  waiting: Waiting[];
}

export interface PayloadWriterOptions {
  /** Writes are refused while the oldest unfinished batch is older than this: the window a crash can lose. */
  maxDelayMs: number;
  /** Bytes that may wait for the thread. */
  maxQueuedBytes: number;
  onError: (error: Error) => void;
  /** The thread's script: the real one unless a test gives one that misbehaves. */
  threadScript?: URL;
}

/** Until the thread has finished a batch: a small file costs tens of microseconds, more on a busy disk. */
const FIRST_GUESS_MS_PER_JOB = 0.1;
/** How much each finished batch moves the estimate of the thread's pace. */
const PACE_WEIGHT = 0.2;

/** Node offers no errno for a thread that died; one code keeps its reports together. */
const WRITER_DIED = 'EWRITERDIED';
const CLOSE_TIMEOUT_MS = 5_000;

/**
 * Writes payload files on a worker thread, a bounded time behind the gateway: jobs asked for in
 * one turn go over in one message, in order. New jobs are refused (their bodies are reported as
 * not stored) when, at the thread's recent pace, they would be written more than `maxDelayMs`
 * from now, or when more than `maxQueuedBytes` wait: the transactions a crash can lose are those
 * of the last `maxDelayMs`. A thread that dies fails what it held and is replaced.
 */
export class PayloadWriter {
  #worker: Worker | null = null;
  #queued: Waiting[] = [];
  #queuedBytes = 0;
  /** Jobs taken and not yet written: queued here or held by the thread. */
  #unwrittenJobs = 0;
  #msPerJob = FIRST_GUESS_MS_PER_JOB;
  readonly #inFlight = new Map<number, InFlight>();
  #inFlightBytes = 0;
  #nextId = 0;
  #scheduled = false;
  #closing = false;
  #idle: (() => void) | null = null;

  constructor(readonly options: PayloadWriterOptions) {}

  /** Takes the jobs, or refuses them (false) when the thread is too far behind; `done` learns each job's fate. */
  write(jobs: FileJob[], done: Done): boolean {
    let bytes = 0;
    for (const job of jobs) bytes += job.data?.length ?? 0;
    if (this.#closing || this.#behind(bytes, jobs.length)) return false;
    this.#queued.push({ jobs, done });
    this.#queuedBytes += bytes;
    this.#unwrittenJobs += jobs.length;
    if (!this.#scheduled) {
      this.#scheduled = true;
      setImmediate(this.#send);
    }
    return true;
  }

  /** Whether jobs taken now would land later than `maxDelayMs` from now, or too many bytes wait. */
  #behind(bytes: number, jobs: number): boolean {
    const { maxDelayMs, maxQueuedBytes } = this.options;
    if (this.#queuedBytes + this.#inFlightBytes + bytes > maxQueuedBytes) return true;
    if ((this.#unwrittenJobs + jobs) * this.#msPerJob > maxDelayMs) return true;
    // A thread that stopped answering has no pace to go by.
    const oldest = this.#inFlight.values().next().value;
    return oldest !== undefined && performance.now() - oldest.sentAt > maxDelayMs;
  }

  readonly #send = (): void => {
    this.#scheduled = false;
    const waiting = this.#queued;
    if (waiting.length === 0) return;
    const bytes = this.#queuedBytes;
    this.#queued = [];
    this.#queuedBytes = 0;
    const data = new Uint8Array(bytes);
    const batch: WriteBatch = { id: this.#nextId++, paths: [], sameAs: [], movedFrom: [], lengths: [], data: data.buffer };
    let at = 0;
    let jobCount = 0;
    for (const { jobs } of waiting) {
      jobCount += jobs.length;
      for (const job of jobs) {
        batch.paths.push(job.path);
        batch.sameAs.push(job.sameAs);
        batch.movedFrom.push(job.movedFrom);
        if (job.data === null) {
          batch.lengths.push(-1);
          continue;
        }
        data.set(job.data, at);
        at += job.data.length;
        batch.lengths.push(job.data.length);
      }
    }
    this.#inFlight.set(batch.id, { sentAt: performance.now(), bytes, jobs: jobCount, waiting });
    this.#inFlightBytes += bytes;
    const worker = this.#thread();
    worker.ref();
    worker.postMessage(batch, [batch.data]);
  };

  #thread(): Worker {
    if (this.#worker !== null) return this.#worker;
    const worker = new Worker(this.options.threadScript ?? new URL('./payload-writer-thread.js', import.meta.url));
    worker.on('message', (result: WriteResult) => this.#settle(result));
    worker.on('error', (error) => this.#died(worker, error));
    worker.on('exit', (code) => this.#died(worker, new Error(`the payload writer thread exited (code ${code})`)));
    this.#worker = worker;
    return worker;
  }

  #settle(result: WriteResult): void {
    const batch = this.#inFlight.get(result.id);
    if (batch === undefined) return;
    this.#finish(result.id, batch);
    if (batch.jobs > 0) this.#msPerJob += PACE_WEIGHT * (result.busyMs / batch.jobs - this.#msPerJob);
    let from = 0;
    for (const { jobs, done } of batch.waiting) {
      done(result.failures.slice(from, from + jobs.length));
      from += jobs.length;
    }
  }

  #finish(id: number, batch: InFlight): void {
    this.#inFlight.delete(id);
    this.#inFlightBytes -= batch.bytes;
    this.#unwrittenJobs -= batch.jobs;
    if (this.#inFlight.size > 0) return;
    this.#worker?.unref();
    this.#idle?.();
  }

  /** Fails everything the thread held; the next batch starts a new one. */
  #died(worker: Worker, error: Error): void {
    if (this.#worker !== worker) return;
    this.#worker = null;
    if (this.#closing && this.#inFlight.size === 0) return;
    this.options.onError(Object.assign(new Error(`${error.message}; its files are reported as not stored`), { code: WRITER_DIED }));
    const failure: JobFailure = { code: WRITER_DIED, message: error.message };
    for (const [id, batch] of [...this.#inFlight]) {
      this.#finish(id, batch);
      for (const { jobs, done } of batch.waiting) done(jobs.map(() => failure));
    }
  }

  /** Waits for the files asked for (up to 5 s), then stops the thread. */
  async close(): Promise<void> {
    this.#closing = true;
    this.#send();
    if (this.#inFlight.size > 0) {
      let timer: NodeJS.Timeout | undefined;
      await Promise.race([
        new Promise<void>((resolve) => (this.#idle = resolve)),
        new Promise<void>((resolve) => (timer = setTimeout(resolve, CLOSE_TIMEOUT_MS))),
      ]);
      clearTimeout(timer);
    }
    const worker = this.#worker;
    if (worker === null) return;
    // Said before terminating: the thread's exit event comes first and would report a plain exit.
    if (this.#inFlight.size > 0) this.#died(worker, new Error(`the payload writer did not finish within ${CLOSE_TIMEOUT_MS} ms`));
    this.#worker = null;
    await worker.terminate();
  }
}
