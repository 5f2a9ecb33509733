import { mkdir, open, rm, type FileHandle } from 'node:fs/promises';
import { dirname } from 'node:path';

/** Bodies larger than this go to disk while they stream instead of waiting in memory. */
const SPILL_AFTER_BYTES = 64 * 1024;

export interface SettledPayload {
  /** The file the body was streamed into, or null when it is held in `chunks`. */
  file: string | null;
  chunks: Buffer[];
}

/**
 * The recorded copy of one message body, capped at `limit` bytes. It sees each chunk as it passes
 * through the proxy and never slows the stream: small bodies are held in memory, larger ones are
 * written to `spillPath` as they arrive (when a spill path is given).
 */
export class PayloadCapture {
  /** Bytes of the body that passed, recorded or not. */
  seen = 0;
  /** Bytes kept in the recorded copy. */
  stored = 0;
  truncated = false;
  contentType = '';
  contentEncoding = '';
  #chunks: Buffer[] = [];
  #file: Promise<FileHandle> | null = null;
  #writes: Promise<unknown> = Promise.resolve();
  #failure: Error | null = null;

  constructor(
    readonly limit: number,
    readonly spillPath: string | null,
  ) {}

  push(chunk: Buffer): void {
    this.seen += chunk.length;
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
    this.#chunks.push(piece);
    if (this.spillPath !== null && this.stored > SPILL_AFTER_BYTES) this.#spill(this.spillPath);
  }

  #spill(path: string): void {
    this.#file = mkdir(dirname(path), { recursive: true }).then(() => open(path, 'w'));
    const held = Buffer.concat(this.#chunks);
    this.#chunks = [];
    this.#write(held);
  }

  #write(piece: Buffer): void {
    const file = this.#file as Promise<FileHandle>;
    // One write at a time, in order; the queue is bounded by `limit`.
    this.#writes = this.#writes.then(async () => {
      if (this.#failure !== null) return;
      try {
        await (await file).write(piece);
      } catch (error) {
        this.#failure = error as Error;
      }
    });
  }

  /** Waits for every spilled write and closes the file; what was held in memory is returned. */
  async settle(): Promise<SettledPayload> {
    if (this.#file === null) return { file: null, chunks: this.#chunks };
    await this.#writes;
    try {
      await (await this.#file).close();
    } catch (error) {
      this.#failure ??= error as Error;
    }
    if (this.#failure !== null) throw this.#failure;
    return { file: this.spillPath, chunks: [] };
  }

  /** Drops the recorded copy (its transaction turned out not to need it). */
  async discard(): Promise<void> {
    this.#chunks = [];
    if (this.#file === null || this.spillPath === null) return;
    await this.settle().catch(() => undefined);
    await rm(this.spillPath, { force: true });
  }
}
