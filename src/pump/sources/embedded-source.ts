import { readdirSync } from 'node:fs';
import { basename, join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { decodeBatch } from '../../analytics/codec.js';
import { Spool, SPOOL_FILE } from '../../buffer/spool.js';
import type { DeadLetter } from '../dead-letter.js';
import type { BatchSource, SourceBatch } from '../source.js';

/** How often the directory is looked at for spools of gateways started since. */
const RESCAN_MS = 1_000;
/** How often each spool's write-ahead log is checkpointed, so it cannot grow while gateways write. */
const CHECKPOINT_MS = 10_000;
/** A batch that cannot be set aside is reported at most this often. */
const REPORT_EVERY_MS = 10_000;
/** Between two looks for new batches when there were none. */
const POLL_MS = 25;

export interface EmbeddedSourceOptions {
  /** `analytics.buffer.directory`. */
  directory: string;
  /** Where batches that cannot be decoded go, whole, as they were read. */
  undecodable: DeadLetter;
  /** A batch could not be decoded (it went to `undecodable`). */
  onUndecodable: () => void;
  notify: (message: string) => void;
}

interface EmbeddedBatch extends SourceBatch {
  readonly spool: OpenSpool;
  readonly id: number;
}

interface OpenSpool {
  spool: Spool;
  name: string;
  /** The last batch handed out: the next read starts after it. */
  lastId: number;
}

/**
 * Every embedded spool (`*.spool`) in the buffer directory of this host, each gateway process
 * writing its own while this reads. Batches are handed out oldest first, each once; `ack` deletes
 * it. A pump that restarts (even after SIGKILL) hands out again every batch not acknowledged.
 */
export class EmbeddedSource implements BatchSource {
  readonly #spools = new Map<string, OpenSpool>();
  #nextScan = 0;
  #nextCheckpoint = Date.now() + CHECKPOINT_MS;
  #closed = false;
  /** Acknowledgements waiting for this turn of the event loop to end: deleted in one commit per spool (a commit waits for the disk). */
  readonly #acks = new Map<OpenSpool, { ids: number[]; done: (() => void)[]; failed: ((error: Error) => void)[] }>();
  #ackScheduled = false;
  #setAsideFailedAt = 0;

  constructor(readonly options: EmbeddedSourceOptions) {}

  async read(max: number, waitMs: number): Promise<SourceBatch[]> {
    const deadline = Date.now() + waitMs;
    for (;;) {
      this.#maintain();
      const batches = this.#take(max);
      if (batches.length > 0 || this.#closed || Date.now() >= deadline) return batches;
      await sleep(Math.min(POLL_MS, Math.max(0, deadline - Date.now())));
    }
  }

  ack(batch: SourceBatch): Promise<void> {
    const { spool, id } = batch as EmbeddedBatch;
    return new Promise((resolve, reject) => {
      let pending = this.#acks.get(spool);
      if (pending === undefined) {
        pending = { ids: [], done: [], failed: [] };
        this.#acks.set(spool, pending);
      }
      pending.ids.push(id);
      pending.done.push(resolve);
      pending.failed.push(reject);
      if (!this.#ackScheduled) {
        this.#ackScheduled = true;
        setImmediate(() => this.#deleteAcknowledged());
      }
    });
  }

  #deleteAcknowledged(): void {
    this.#ackScheduled = false;
    for (const [open, { ids, done, failed }] of this.#acks) {
      this.#acks.delete(open);
      try {
        open.spool.delete(ids);
        for (const resolve of done) resolve();
      } catch (error) {
        for (const reject of failed) reject(error as Error);
      }
    }
  }

  async depth(): Promise<{ batches: number; records: number; oldestAgeMs: number }> {
    this.#maintain();
    const depth = { batches: 0, records: 0, oldestAgeMs: 0 };
    const now = Date.now();
    for (const { spool } of this.#spools.values()) {
      const totals = spool.totals();
      depth.batches += totals.batches;
      depth.records += totals.records;
      const oldest = spool.oldestCreatedAt();
      if (oldest !== null) depth.oldestAgeMs = Math.max(depth.oldestAgeMs, now - oldest);
    }
    return depth;
  }

  async close(): Promise<void> {
    this.#deleteAcknowledged();
    this.#closed = true;
    for (const { spool } of this.#spools.values()) spool.close();
    this.#spools.clear();
  }

  /** Opens spools that appeared, and checkpoints now and then. */
  #maintain(): void {
    if (this.#closed) return;
    const now = Date.now();
    if (now >= this.#nextScan) {
      this.#nextScan = now + RESCAN_MS;
      this.#scan();
    }
    if (now >= this.#nextCheckpoint) {
      this.#nextCheckpoint = now + CHECKPOINT_MS;
      for (const open of this.#spools.values()) {
        try {
          open.spool.checkpoint();
        } catch (error) {
          this.options.notify(`spool ${open.name}: checkpoint failed: ${(error as Error).message}`);
        }
      }
    }
  }

  #scan(): void {
    let names: string[];
    try {
      names = readdirSync(this.options.directory);
    } catch (error) {
      // Not there yet: no gateway has spooled anything.
      if ((error as NodeJS.ErrnoException).code === 'ENOENT') return;
      throw error;
    }
    for (const name of names.filter((file) => SPOOL_FILE.test(file)).sort()) {
      const path = join(this.options.directory, name);
      if (this.#spools.has(path)) continue;
      this.#spools.set(path, { spool: new Spool(path), name: basename(path), lastId: 0 });
      this.options.notify(`reading the spool ${path}`);
    }
  }

  /** Up to `max` batches not handed out yet, shared across the spools. */
  #take(max: number): EmbeddedBatch[] {
    const taken: EmbeddedBatch[] = [];
    const spools = [...this.#spools.values()];
    const share = Math.max(1, Math.ceil(max / Math.max(1, spools.length)));
    for (const open of spools) {
      if (taken.length >= max) break;
      for (const row of open.spool.read(open.lastId, Math.min(share, max - taken.length))) {
        const key = `${open.name}#${row.id}`;
        let records;
        try {
          records = decodeBatch(row.data);
        } catch (error) {
          if (!this.#setAside(open, row.id, row.data, row.records, `${key}: cannot be decoded (${(error as Error).message})`)) break;
          open.lastId = row.id;
          continue;
        }
        open.lastId = row.id;
        taken.push({ key, records, spool: open, id: row.id });
      }
    }
    return taken;
  }

  /** Moves a batch that cannot be decoded to the dead letter; false when that failed (it is tried again on the next read). */
  #setAside(open: OpenSpool, id: number, data: Buffer, records: number, problem: string): boolean {
    try {
      this.options.undecodable.putEncoded(data, records);
      open.spool.delete([id]);
    } catch (error) {
      const now = Date.now();
      if (now - this.#setAsideFailedAt >= REPORT_EVERY_MS) {
        this.#setAsideFailedAt = now;
        this.options.notify(`${problem}; it stays in the spool, which is read no further for now: cannot move it to ${this.options.undecodable.path}: ${(error as Error).message}`);
      }
      return false;
    }
    this.options.onUndecodable();
    this.options.notify(`${problem}; moved to ${this.options.undecodable.path}`);
    return true;
  }
}
