import { Worker } from 'node:worker_threads';

/** One payload file to create: from bytes, or as another name of a file already written. */
export interface FileJob {
  path: string;
  data: Uint8Array | null;
  /** With `data` null: the file this one is the same body as (hard-linked, else copied). */
  sameAs: string | null;
}

export interface WriteBatch {
  id: number;
  jobs: FileJob[];
}

export interface WriteResult {
  id: number;
  /** Per job: null when written, else why not. */
  errors: (string | null)[];
}

interface Pending {
  resolve: (errors: (string | null)[]) => void;
  reject: (error: Error) => void;
  from: number;
  count: number;
}

/**
 * Writes payload files on a worker thread. Jobs asked for in one turn of the event loop go over
 * in one message, in order; each caller learns which of its files could not be written.
 */
export class PayloadWriter {
  readonly #worker: Worker;
  #queued: FileJob[] = [];
  #waiting: Pending[] = [];
  #inFlight = new Map<number, Pending[]>();
  #nextId = 0;
  #scheduled = false;
  #failure: Error | null = null;

  constructor() {
    this.#worker = new Worker(new URL('./payload-writer-thread.js', import.meta.url));
    this.#worker.on('message', (result: WriteResult) => this.#settle(result));
    this.#worker.on('error', (error) => this.#failAll(error));
    this.#worker.unref();
  }

  write(jobs: FileJob[]): Promise<(string | null)[]> {
    if (jobs.length === 0) return Promise.resolve([]);
    if (this.#failure !== null) return Promise.reject(this.#failure);
    return new Promise((resolve, reject) => {
      this.#waiting.push({ resolve, reject, from: this.#queued.length, count: jobs.length });
      for (const job of jobs) this.#queued.push(job);
      if (!this.#scheduled) {
        this.#scheduled = true;
        setImmediate(this.#send);
      }
    });
  }

  readonly #send = (): void => {
    this.#scheduled = false;
    const batch: WriteBatch = { id: this.#nextId++, jobs: this.#queued };
    this.#inFlight.set(batch.id, this.#waiting);
    this.#queued = [];
    this.#waiting = [];
    this.#worker.ref();
    this.#worker.postMessage(batch);
  };

  #settle(result: WriteResult): void {
    const waiting = this.#inFlight.get(result.id) ?? [];
    this.#inFlight.delete(result.id);
    if (this.#inFlight.size === 0) this.#worker.unref();
    for (const pending of waiting) pending.resolve(result.errors.slice(pending.from, pending.from + pending.count));
  }

  #failAll(error: Error): void {
    this.#failure = error;
    for (const waiting of this.#inFlight.values()) for (const pending of waiting) pending.reject(error);
    this.#inFlight.clear();
  }

  async close(): Promise<void> {
    await this.#worker.terminate();
  }
}
