import type { EncodedBatch, StoreResult } from './spool-writer.js';

/**
 * Where the gateway's analytics records go, batch by batch: the embedded spool, or the Redis
 * stream (which keeps a local copy in the spool until the pumps acknowledge). A buffer is one file
 * in `src/buffer/` implementing this.
 */
export interface BatchBuffer {
  /** Keeps for good (one commit) as many of the batches, in order, as keep it within `maxBytes`; `makeRoom`: drop the oldest first. */
  store(batches: readonly EncodedBatch[], maxBytes: number, makeRoom: boolean): Promise<StoreResult>;
  close(): Promise<void>;
}
