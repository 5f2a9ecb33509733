import { Worker } from 'node:worker_threads';
import type { SpooledBatch } from './spool.js';

/** A batch of analytics records, encoded once (`src/analytics/codec.ts`). */
export interface EncodedBatch {
  data: Uint8Array;
  records: number;
}

/** What became of batches given to the spool: the first `stored` of them were taken (with `makeRoom`, all); the others did not fit. */
export interface StoreResult {
  stored: number;
  /** Records of the oldest batches removed to make room. */
  evicted: number;
}

export type SpoolRequest = { seq: number } & (
  | { op: 'store'; batches: Uint8Array[]; records: number[]; maxBytes: number; makeRoom: boolean }
  | { op: 'delete'; ids: number[] }
  | { op: 'markSent'; sent: { id: number; entry: string }[]; run: string }
  | { op: 'unsent'; run: string; afterId: number; limit: number }
  | { op: 'sentEntries'; run: string }
  | { op: 'forgetSent'; run: string }
  | { op: 'close' }
);

type RequestBody = SpoolRequest extends infer R ? (R extends { seq: number } ? Omit<R, 'seq'> : never) : never;

export type SpoolReply = { seq: number; result: unknown } | { seq: number; error: { message: string; code: string | null } };

interface Pending {
  resolve: (value: unknown) => void;
  reject: (error: Error) => void;
}

/**
 * The gateway's handle on its spool (`src/buffer/spool.ts`), which lives in a thread of its own:
 * every operation is a message, answered once the database has it.
 */
export class SpoolWriter {
  readonly #worker: Worker;
  readonly #pending = new Map<number, Pending>();
  #nextSeq = 0;
  #dead: Error | null = null;

  constructor(readonly path: string) {
    this.#worker = new Worker(new URL('./spool-thread.js', import.meta.url), { workerData: { path } });
    this.#worker.unref();
    this.#worker.on('message', (reply: SpoolReply) => this.#settle(reply));
    this.#worker.on('error', (error) => this.#die(error));
    this.#worker.on('exit', (code) => this.#die(new Error(`the spool thread exited (code ${code})`)));
  }

  /** Stores in one commit as many of the batches, in order, as keep the spool within `maxBytes` (`makeRoom`: remove the oldest first). */
  store(batches: readonly EncodedBatch[], maxBytes: number, makeRoom: boolean): Promise<StoreResult> {
    // Each batch gets a buffer of its own to move to the thread: an encoder's output may share a larger one.
    const copies = batches.map(({ data }) => new Uint8Array(data));
    return this.#call(
      { op: 'store', batches: copies, records: batches.map((batch) => batch.records), maxBytes, makeRoom },
      copies.map((copy) => copy.buffer),
    ) as Promise<StoreResult>;
  }

  delete(ids: number[]): Promise<void> {
    return this.#call({ op: 'delete', ids }) as Promise<void>;
  }

  markSent(sent: { id: number; entry: string }[], run: string): Promise<void> {
    return this.#call({ op: 'markSent', sent, run }) as Promise<void>;
  }

  async unsent(run: string, afterId: number, limit: number): Promise<SpooledBatch[]> {
    const batches = (await this.#call({ op: 'unsent', run, afterId, limit })) as (SpooledBatch & { data: Uint8Array })[];
    // A Buffer comes out of the thread as a plain Uint8Array: viewed as a Buffer again, not copied.
    return batches.map((batch) => ({ ...batch, data: Buffer.from(batch.data.buffer, batch.data.byteOffset, batch.data.byteLength) }));
  }

  sentEntries(run: string): Promise<{ id: number; entry: string }[]> {
    return this.#call({ op: 'sentEntries', run }) as Promise<{ id: number; entry: string }[]>;
  }

  forgetSent(run: string): Promise<void> {
    return this.#call({ op: 'forgetSent', run }) as Promise<void>;
  }

  async close(): Promise<void> {
    if (this.#dead === null) await this.#call({ op: 'close' }).catch(() => undefined);
    await this.#worker.terminate();
  }

  #call(body: RequestBody, transfer: ArrayBuffer[] = []): Promise<unknown> {
    if (this.#dead !== null) return Promise.reject(this.#dead);
    const seq = this.#nextSeq++;
    return new Promise((resolve, reject) => {
      this.#pending.set(seq, { resolve, reject });
      this.#worker.ref();
      this.#worker.postMessage({ ...body, seq }, transfer);
    });
  }

  #settle(reply: SpoolReply): void {
    const pending = this.#pending.get(reply.seq);
    if (pending === undefined) return;
    this.#pending.delete(reply.seq);
    if (this.#pending.size === 0) this.#worker.unref();
    if ('error' in reply) pending.reject(Object.assign(new Error(`${this.path}: ${reply.error.message}`), { code: reply.error.code ?? undefined }));
    else pending.resolve(reply.result);
  }

  #die(error: Error): void {
    this.#dead ??= error;
    for (const pending of this.#pending.values()) pending.reject(error);
    this.#pending.clear();
  }
}
