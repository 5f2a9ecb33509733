import { closeSync, fdatasyncSync, fstatSync, mkdirSync, openSync, readSync, renameSync, statSync, write, writeSync, type Stats } from 'node:fs';
import { dirname } from 'node:path';
import { performance } from 'node:perf_hooks';

/** A write that blocks the event loop longer than this moves writing to the thread pool for a while. */
const STALL_MS = 50;
/** How long writing stays off the event loop after a stall. */
const ASYNC_AFTER_STALL_MS = 5_000;
/** Between retries of a failed open or write (a full or read-only disk). */
const RETRY_MS = 1_000;
/** Between retries of a write to a pipe that is full (a slow reader of standard output). */
const RETRY_FULL_PIPE_MS = 10;
/** How often the file is checked for having been deleted or moved away under the gateway. */
const CHECK_PATH_MS = 100;
const CLOSE_TIMEOUT_MS = 5_000;

/** Where appended bytes landed. */
export interface Landing {
  path: string;
  offset: number;
}

/** How the files of one output are named. */
export interface FileNaming {
  /** Files keep the names they are written under (a roll opens the next one), rather than being renamed when rolled. */
  readonly keepsNames: boolean;
  /** The file to write next: at start, after a roll, after a reopen. */
  next(): string;
  /** What a finished file is renamed to when rolled (files that keep their names: null). */
  rolledName(path: string): string | null;
}

export interface AppendFileEvents {
  /** Bytes that reached a named file; 0 when it was just opened, to say it is being written (the disk quota must not take it for a finished one). */
  written(path: string, bytes: number): void;
  /** A named file that will not be written again (rolled); `renamedFrom`: the name it was written under, when the roll renamed it. */
  finished(path: string, renamedFrom: string | null): void;
  error(error: Error): void;
  info(message: string): void;
}

export interface AppendFileOptions {
  /** Files named by `naming`, or an open descriptor (standard output) that is never rolled nor reopened. */
  target: { naming: FileNaming; maxBytes: number } | { fd: number; name: string };
  /** Bytes that may wait for the disk; past it, appends are refused. */
  maxPendingBytes: number;
  /** A file of lines: one found ending mid-line (a crash cut the last write) is ended before anything is appended. */
  lines?: boolean;
  /**
   * `landed` waits until the data is on the disk (fdatasync), not only in the kernel: for data whose
   * source is deleted once it landed. One sync per turn of the event loop, whatever was appended in it.
   */
  durable?: boolean;
  events: AppendFileEvents;
}

export interface AppendOptions {
  /** Offsets in the data where a roll may fall (after each whole record), ascending. Without them, the data never spans two files. */
  cuts?: readonly number[];
  /** Learns once the data is all in the file (for data that is not cut: where it begins), or null if it was lost. */
  landed?: (landing: Landing | null) => void;
}

interface Pending {
  data: Buffer;
  /** Bytes of `data` already in the file. */
  done: number;
  /** Where `data` begins in the file, or -1 before its first byte is written. */
  offset: number;
  options: AppendOptions | undefined;
}

/** The next piece of a write: the bytes up to `end` go into the current file, which rolls after them when `roll`. */
interface Piece {
  end: number;
  roll: boolean;
}

/**
 * An append-only file that never blocks the gateway on a bad disk and never loses its place.
 *
 * Appends are written at once with one system call while the disk keeps up: cheaper than any
 * hand-off, and the bytes are in the kernel before the next request is served. A write that
 * stalls moves writing to the thread pool (one write in flight) for a while; a failing disk keeps
 * bytes in memory up to `maxPendingBytes` and retries. A file that cannot be opened is retried;
 * one deleted or moved away is noticed within 100 ms and opened anew; `reopen()` does that on
 * request (SIGHUP from a log rotator). Files roll at `maxBytes`, at a cut the writer allows.
 */
export class AppendFile {
  /** A file is rolled before an append would take it past this size. */
  readonly maxBytes: number;
  readonly #naming: FileNaming | null;
  #fd = -1;
  #path = '';
  #inode = 0;
  #size = 0;
  #pending: Pending[] = [];
  #pendingBytes = 0;
  #asyncUntil = 0;
  #writing = false;
  #reopenWanted = false;
  #retryTimer: NodeJS.Timeout | null = null;
  #nextPathCheck = 0;
  #closed = false;
  #drained: (() => void) | null = null;
  /** With `durable`: data written and not synced yet, told once it is. */
  #unsynced: { landed: (landing: Landing | null) => void; landing: Landing }[] = [];
  #syncScheduled = false;

  constructor(readonly options: AppendFileOptions) {
    const { target } = options;
    if ('fd' in target) {
      this.#naming = null;
      this.maxBytes = Number.POSITIVE_INFINITY;
      this.#fd = target.fd;
      this.#path = target.name;
    } else {
      this.#naming = target.naming;
      this.maxBytes = target.maxBytes;
      this.#open();
    }
  }

  /** The file written now. */
  get path(): string {
    return this.#path;
  }

  /**
   * Appends `data` after everything appended before. Returns false when it was refused (too much
   * waits for the disk). `data` may be reused as soon as this returns.
   */
  append(data: Uint8Array, options?: AppendOptions): boolean {
    if (data.length === 0) {
      options?.landed?.({ path: this.#path, offset: this.#size });
      return true;
    }
    if (this.#pending.length > 0 || this.#closed || this.#fd < 0 || performance.now() < this.#asyncUntil) return this.#queue(data, 0, -1, options);
    this.#checkPath();
    let from = 0;
    let offset = -1;
    while (from < data.length && this.#fd >= 0) {
      const piece = this.#piece(data.length, from, options?.cuts);
      if (piece.end > from) {
        if (offset < 0) offset = this.#size;
        const written = this.#writeNow(data.subarray(from, piece.end));
        from += written;
        if (from < piece.end) break;
      }
      if (piece.roll) {
        this.#roll();
        offset = -1;
      }
    }
    if (from === data.length) {
      this.#landed(options, { path: this.#path, offset });
      return true;
    }
    return this.#queue(data, from, offset, options);
  }

  /** Opens the file anew (a log rotator moved it away): the same name, or the next one for files that keep their names. */
  reopen(): void {
    if (this.#closed || this.#naming === null) return;
    if (this.#writing) {
      this.#reopenWanted = true;
      return;
    }
    this.#reopen();
  }

  /** Writes out what waits (up to 5 s) and closes the file. */
  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    if (this.#pending.length > 0) {
      const drained = new Promise<void>((resolve) => (this.#drained = resolve));
      let timer: NodeJS.Timeout | undefined;
      const timedOut = new Promise<void>((resolve) => (timer = setTimeout(resolve, CLOSE_TIMEOUT_MS)));
      this.#drain();
      await Promise.race([drained, timedOut]);
      clearTimeout(timer);
      if (this.#pending.length > 0) {
        this.options.events.error(new Error(`${this.#pendingBytes} bytes for ${this.#path} could not be written within ${CLOSE_TIMEOUT_MS} ms; they are lost`));
        for (const pending of this.#pending) pending.options?.landed?.(null);
        this.#pending = [];
        this.#pendingBytes = 0;
      }
    }
    if (this.#retryTimer !== null) clearTimeout(this.#retryTimer);
    // A write still in the thread pool holds the descriptor: it is closed when that write returns.
    if (this.#naming !== null && !this.#writing) this.#closeFile();
  }

  /**
   * How much of the data from `from` goes into the current file: all of it when it fits; else
   * up to the last cut that fits, and the file rolls. A record larger than a whole file gets a
   * file of its own.
   */
  #piece(length: number, from: number, cuts: readonly number[] | undefined): Piece {
    const fits = this.maxBytes - this.#size;
    if (length - from <= fits) return { end: length, roll: false };
    let end = from;
    if (cuts !== undefined) {
      for (const cut of cuts) {
        if (cut - from > fits) break;
        if (cut > from) end = cut;
      }
    }
    if (end > from || this.#size > 0) return { end, roll: true };
    const firstCut = cuts?.find((cut) => cut > from) ?? length;
    return { end: firstCut, roll: firstCut < length };
  }

  /** Notices a file deleted or moved away under the gateway, and opens it anew. */
  #checkPath(): void {
    if (this.#naming === null || this.#fd < 0) return;
    const now = performance.now();
    if (now < this.#nextPathCheck) return;
    this.#nextPathCheck = now + CHECK_PATH_MS;
    const info = statOrNothing(this.#path);
    if (info !== undefined && info.ino === this.#inode) return;
    this.options.events.info(`${this.#path} was deleted or moved away; writing to a new file`);
    this.#reopen();
  }

  #writeNow(data: Uint8Array): number {
    const started = performance.now();
    let written = 0;
    try {
      while (written < data.length) written += writeSync(this.#fd, data, written, data.length - written);
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== 'EAGAIN') this.options.events.error(error as Error);
    }
    const elapsed = performance.now() - started;
    if (elapsed > STALL_MS) {
      this.#asyncUntil = performance.now() + ASYNC_AFTER_STALL_MS;
      this.options.events.info(`a write to ${this.#path} blocked the gateway for ${Math.round(elapsed)} ms; writing from the thread pool for a while`);
    }
    this.#wrote(written);
    return written;
  }

  #wrote(bytes: number): void {
    if (bytes === 0) return;
    this.#size += bytes;
    if (this.#naming !== null) this.options.events.written(this.#path, bytes);
  }

  /** Keeps a copy of `data` until it is written; `done` bytes of it are in the file already, from `offset`. */
  #queue(data: Uint8Array, done: number, offset: number, options: AppendOptions | undefined): boolean {
    if (done === 0 && (this.#closed || this.#pendingBytes + data.length > this.options.maxPendingBytes)) {
      return false;
    }
    this.#pending.push({ data: Buffer.from(data), done, offset, options });
    this.#pendingBytes += data.length;
    this.#drain();
    return true;
  }

  #drain(): void {
    if (this.#writing || this.#retryTimer !== null) return;
    const head = this.#pending[0];
    if (head === undefined) {
      this.#drained?.();
      return;
    }
    if (this.#fd < 0) this.#open();
    this.#checkPath();
    if (this.#fd < 0) return this.#retryLater(RETRY_MS);
    const { data } = head;
    const piece = this.#piece(data.length, head.done, head.options?.cuts);
    if (piece.end === head.done) {
      this.#roll();
      head.offset = -1;
      return this.#drain();
    }
    if (head.offset < 0) head.offset = this.#size;
    this.#writing = true;
    const path = this.#path;
    write(this.#fd, data, head.done, piece.end - head.done, null, (error, written) => {
      this.#writing = false;
      // Given up on by close(): what it held was reported lost.
      if (this.#closed && this.#pending[0] !== head) {
        if (this.#naming !== null) this.#closeFile();
        return;
      }
      if (error !== null) {
        if (error.code !== 'EAGAIN') this.options.events.error(error);
        return this.#retryLater(error.code === 'EAGAIN' ? RETRY_FULL_PIPE_MS : RETRY_MS);
      }
      this.#wrote(written);
      head.done += written;
      if (head.done === piece.end && piece.roll) {
        this.#roll();
        head.offset = -1;
      }
      if (head.done === data.length) {
        this.#pending.shift();
        this.#pendingBytes -= data.length;
        this.#landed(head.options, { path, offset: head.offset });
      }
      if (this.#reopenWanted) this.#reopen();
      this.#drain();
    });
  }

  /** Tells `landed` where the data is: at once, or with `durable` once it is synced. */
  #landed(options: AppendOptions | undefined, landing: Landing): void {
    const landed = options?.landed;
    if (landed === undefined) return;
    if (this.options.durable !== true) return landed(landing);
    this.#unsynced.push({ landed, landing });
    if (this.#syncScheduled) return;
    this.#syncScheduled = true;
    setImmediate(() => this.#sync());
  }

  /** Syncs the file written, then tells what waited for it (a file closed was synced before). */
  #sync(): void {
    this.#syncScheduled = false;
    if (this.#unsynced.length === 0) return;
    let synced = true;
    if (this.#fd >= 0) {
      try {
        fdatasyncSync(this.#fd);
      } catch (error) {
        synced = false;
        this.options.events.error(error as Error);
      }
    }
    for (const { landed, landing } of this.#unsynced.splice(0)) landed(synced ? landing : null);
  }

  #retryLater(delayMs: number): void {
    if (this.#retryTimer !== null) return;
    this.#retryTimer = setTimeout(() => {
      this.#retryTimer = null;
      this.#drain();
    }, delayMs);
  }

  #reopen(): void {
    this.#reopenWanted = false;
    const path = this.#path;
    this.#closeFile();
    // A file that keeps its name is finished where it is; one that is renamed when rolled was moved away by whoever asked.
    if (this.#naming?.keepsNames === true) this.options.events.finished(path, null);
    // What was half written to the old file starts again, whole, in the new one.
    const head = this.#pending[0];
    if (head !== undefined) {
      head.done = 0;
      head.offset = -1;
    }
    this.#open();
  }

  #open(): void {
    const path = (this.#naming as FileNaming).next();
    this.#path = path;
    try {
      mkdirSync(dirname(path), { recursive: true });
      this.#fd = openSync(path, 'a+');
      const info = fstatSync(this.#fd);
      this.#inode = info.ino;
      this.#size = info.size;
      this.#nextPathCheck = performance.now() + CHECK_PATH_MS;
      this.options.events.written(path, 0);
      if (this.options.lines === true && this.#size > 0 && !this.#endsWithNewline()) this.#wrote(writeSync(this.#fd, '\n'));
    } catch (error) {
      this.#closeFile();
      this.options.events.error(error as Error);
    }
  }

  #endsWithNewline(): boolean {
    const last = Buffer.alloc(1);
    readSync(this.#fd, last, 0, 1, this.#size - 1);
    return last[0] === 0x0a;
  }

  #closeFile(): void {
    if (this.#fd < 0) return;
    if (this.options.durable === true) this.#sync();
    try {
      closeSync(this.#fd);
    } catch {
      // Closing only releases the descriptor; its bytes were written or reported already.
    }
    this.#fd = -1;
  }

  #roll(): void {
    const path = this.#path;
    this.#closeFile();
    const target = (this.#naming as FileNaming).rolledName(path);
    if (target === null) {
      this.options.events.finished(path, null);
    } else {
      try {
        renameSync(path, target);
        this.options.events.finished(target, path);
      } catch (error) {
        this.options.events.error(error as Error);
      }
    }
    this.#open();
  }
}

/** The file's status, or nothing when it cannot be had: gone, or its directory replaced by a file (ENOTDIR). */
function statOrNothing(path: string): Stats | undefined {
  try {
    return statSync(path);
  } catch {
    return undefined;
  }
}
