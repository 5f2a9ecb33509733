import { mkdir, open, rm, type FileHandle } from 'node:fs/promises';
import { dirname } from 'node:path';
import type { PayloadNotStored } from './record.js';

/** Bodies larger than this go to disk while they stream instead of waiting in memory, where the store allows it. */
const SPILL_AFTER_BYTES = 64 * 1024;

/**
 * The bytes of bodies held in memory by every capture of the process together. A body that
 * would take it past its limit is spilled to disk where it can be, else not stored.
 */
export class HeldBytes {
  used = 0;
  /** Bodies not stored because the limit was reached. */
  refused = 0;

  constructor(readonly limit: number) {}

  take(bytes: number): boolean {
    if (this.used + bytes > this.limit) return false;
    this.used += bytes;
    return true;
  }

  give(bytes: number): void {
    this.used -= bytes;
  }
}

/**
 * The recorded copy of one message body, capped at `limit` bytes. It sees each chunk as it passes
 * through the proxy and never slows the stream: bodies are held in memory, or (with a spill path)
 * written to it once they pass 64 KiB or memory runs short.
 */
export class PayloadCapture {
  /** Bytes of the body that passed, recorded or not. */
  seen = 0;
  /** Bytes kept in the recorded copy. */
  stored = 0;
  truncated = false;
  /** Set when the copy was given up while the body passed. */
  notStored: PayloadNotStored | null = null;
  #chunks: Buffer[] = [];
  #held = 0;
  #file: Promise<FileHandle> | null = null;
  #writes: Promise<unknown> = Promise.resolve();
  #failure: Error | null = null;
  /** Taken by the pipeline: a chunk that passes later (a back end that answered before the upload ended) is no longer kept. */
  #sealed = false;

  constructor(
    readonly limit: number,
    readonly contentType: string,
    readonly contentEncoding: string,
    readonly heldBytes: HeldBytes,
    /** Where the body may stream to; null: it must be held whole (to be redacted, or by the store's design). */
    readonly spillPath: string | null,
  ) {}

  push(chunk: Buffer): void {
    this.seen += chunk.length;
    if (this.notStored !== null || this.#sealed) return;
    const room = this.limit - this.stored;
    if (room <= 0) {
      if (chunk.length > 0) this.truncated = true;
      return;
    }
    let piece = chunk;
    if (chunk.length > room) {
      piece = chunk.subarray(0, room);
      this.truncated = true;
    }
    this.stored += piece.length;
    if (this.#file !== null) return this.#write(piece);
    if (!this.heldBytes.take(piece.length)) {
      if (this.spillPath !== null) {
        this.#chunks.push(piece);
        return this.#spill(this.spillPath);
      }
      this.heldBytes.refused++;
      this.notStored = 'memory-limit';
      this.#release();
      return;
    }
    this.#held += piece.length;
    this.#chunks.push(piece);
    if (this.spillPath !== null && this.stored > SPILL_AFTER_BYTES) this.#spill(this.spillPath);
  }

  #release(): void {
    this.heldBytes.give(this.#held);
    this.#held = 0;
    this.#chunks = [];
  }

  #spill(path: string): void {
    this.#file = mkdir(dirname(path), { recursive: true }).then(() => open(path, 'w'));
    const held = Buffer.concat(this.#chunks);
    this.#release();
    this.#write(held);
  }

  #write(piece: Buffer): void {
    const file = this.#file as Promise<FileHandle>;
    // One write at a time, in order; the queue is bounded by `limit`.
    this.#writes = this.#writes.then(async () => {
      if (this.#failure !== null) return;
      try {
        const handle = await file;
        // A write may take fewer bytes than asked (a disk filling up): the rest follows, or fails.
        for (let written = 0; written < piece.length; ) written += (await handle.write(piece, written)).bytesWritten;
      } catch (error) {
        this.#failure = error as Error;
      }
    });
  }

  /** Stops keeping what passes from now on: the recorded copy is being stored. */
  seal(): void {
    this.#sealed = true;
  }

  /** The chunks held in memory (call `release()` once done with them), or null when the body streamed to a file. */
  held(): Buffer[] | null {
    return this.#file === null ? this.#chunks : null;
  }

  /** Gives the memory of held chunks back to the process-wide limit. */
  release(): void {
    this.#release();
  }

  /** The file the body streamed to, once every byte is in it. */
  async fileWritten(): Promise<string> {
    await this.#writes;
    try {
      await (await (this.#file as Promise<FileHandle>)).close();
    } catch (error) {
      this.#failure ??= error as Error;
    }
    if (this.#failure !== null) {
      // A body cut short (a full disk) must not stay behind under its name.
      await rm(this.spillPath as string, { force: true }).catch(() => undefined);
      throw this.#failure;
    }
    return this.spillPath as string;
  }

  /** Drops the recorded copy (its transaction turned out not to need it). */
  async discard(): Promise<void> {
    this.#sealed = true;
    this.#release();
    if (this.#file === null || this.spillPath === null) return;
    await this.fileWritten().catch(() => undefined);
    await rm(this.spillPath, { force: true });
  }
}
