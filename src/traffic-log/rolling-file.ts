import { mkdirSync, readdirSync, statSync } from 'node:fs';
import { rename } from 'node:fs/promises';
import { join } from 'node:path';
import sonicBoom from 'sonic-boom';

// A CommonJS package: its class is reached through the default export.
const { SonicBoom } = sonicBoom;

// sonic-boom writes at most this much per write; its 16 KiB default cannot keep up with a busy
// gateway when each write waits for a turn of a loaded event loop, and the backlog grows.
const MAX_WRITE_BYTES = 1024 * 1024;

// What may wait in memory for the disk (a slow or full disk): past it, new lines are dropped,
// and reported, rather than the gateway running out of memory.
const MAX_BUFFERED_BYTES = 64 * 1024 * 1024;
const CLOSE_TIMEOUT_MS = 5_000;

type Boom = InstanceType<typeof SonicBoom>;

function openBoom(target: { dest: string } | { fd: number }, onError: (error: Error) => void): Boom {
  const boom = new SonicBoom({ ...target, append: true, sync: false, maxWrite: MAX_WRITE_BYTES, maxLength: MAX_BUFFERED_BYTES, contentMode: 'buffer' });
  boom.on('error', onError);
  boom.on('drop', () => onError(new Error(`over ${MAX_BUFFERED_BYTES / 1024 / 1024} MiB wait for the disk: a transaction's lines were dropped`)));
  return boom;
}

/** sonic-boom's type definitions know only its text mode; in buffer mode it takes bytes. */
function writeBytes(boom: Boom, lines: Buffer): void {
  boom.write(lines as unknown as string);
}

/** Flushes and closes; a disk that cannot take the rest (full, gone) does not hold shutdown. */
function closeBoom(boom: Boom, onError: (error: Error) => void): Promise<void> {
  return new Promise((resolve) => {
    const timer = setTimeout(() => {
      onError(new Error(`could not write the last lines within ${CLOSE_TIMEOUT_MS} ms; they are lost`));
      boom.destroy();
      resolve();
    }, CLOSE_TIMEOUT_MS);
    boom.once('close', () => {
      clearTimeout(timer);
      resolve();
    });
    boom.end();
  });
}

export interface LineDestination {
  /** Appends whole lines (UTF-8); never blocks on the disk. */
  write(lines: Buffer): void;
  /** Writes out everything buffered and closes. */
  close(): Promise<void>;
}

function today(): string {
  return new Date().toISOString().slice(0, 10);
}

/**
 * `<directory>/<base>.log`, appended through a sonic-boom buffer (one write in flight, lines
 * never split), rolled to `<base>_<YYYY-MM-DD>-<n>.log` when it passes `maxBytes`.
 */
export class RollingFile implements LineDestination {
  readonly path: string;
  #boom: Boom;
  #size: number;
  #rolled = new Map<string, number>();
  #rolling: Promise<void> = Promise.resolve();
  /** Lines written since the roll under way, or null when none is. */
  #held: Buffer[] | null = null;

  constructor(
    readonly directory: string,
    readonly base: string,
    readonly maxBytes: number,
    readonly onRolled: () => void,
    readonly onError: (error: Error) => void,
  ) {
    mkdirSync(directory, { recursive: true });
    this.path = join(directory, `${base}.log`);
    this.#size = sizeOf(this.path);
    // Find the highest roll number used per day, so a restart never overwrites a rolled file.
    const rolledName = new RegExp(`^${base.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}_(\\d{4}-\\d{2}-\\d{2})-(\\d+)\\.log$`);
    for (const name of readdirSync(directory)) {
      const match = rolledName.exec(name);
      if (match) this.#rolled.set(match[1] as string, Math.max(this.#rolled.get(match[1] as string) ?? 0, Number(match[2])));
    }
    this.#boom = openBoom({ dest: this.path }, onError);
  }

  write(lines: Buffer): void {
    const bytes = lines.length;
    if (this.#size > 0 && this.#size + bytes > this.maxBytes) this.#roll();
    this.#size += bytes;
    if (this.#held !== null) this.#held.push(lines);
    else writeBytes(this.#boom, lines);
  }

  #roll(): void {
    const day = today();
    const n = (this.#rolled.get(day) ?? 0) + 1;
    this.#rolled.set(day, n);
    this.#size = 0;
    const target = join(this.directory, `${this.base}_${day}-${n}.log`);
    // Lines written from now on wait in memory until the old file has all it was counted for
    // and the fresh one is open; sonic-boom alone would put its buffer wherever reopen finds it.
    const held: Buffer[] = [];
    this.#held = held;
    this.#rolling = this.#rolling
      .then(() => this.#flushed())
      .then(() => rename(this.path, target))
      .then(() => this.#reopen())
      .then(
        () => this.onRolled(),
        (error: Error) => this.onError(error),
      )
      .then(() => {
        if (this.#held === held) this.#held = null;
        for (const lines of held) writeBytes(this.#boom, lines);
      });
  }

  #flushed(): Promise<void> {
    return new Promise((resolve, reject) => this.#boom.flush((error) => (error ? reject(error) : resolve())));
  }

  /** Resolves once the fresh file is open; a failure to open is reported by the error listener. */
  #reopen(): Promise<void> {
    return new Promise((resolve) => {
      const done = (): void => {
        this.#boom.off('ready', done).off('error', done);
        resolve();
      };
      this.#boom.once('ready', done).once('error', done);
      this.#boom.reopen();
    });
  }

  async close(): Promise<void> {
    await this.#rolling;
    await closeBoom(this.#boom, this.onError);
  }
}

function sizeOf(path: string): number {
  try {
    return statSync(path).size;
  } catch {
    return 0;
  }
}

/** The same lines on standard output (`trafficLog.output: stdout`). */
export class StdoutLines implements LineDestination {
  readonly #boom: Boom;

  constructor(readonly onError: (error: Error) => void) {
    this.#boom = openBoom({ fd: 1 }, onError);
  }

  write(lines: Buffer): void {
    writeBytes(this.#boom, lines);
  }

  close(): Promise<void> {
    return closeBoom(this.#boom, this.onError);
  }
}
