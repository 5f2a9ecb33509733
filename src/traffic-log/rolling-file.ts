import { mkdirSync, readdirSync, statSync } from 'node:fs';
import { rename } from 'node:fs/promises';
import { join } from 'node:path';
import sonicBoom from 'sonic-boom';

// A CommonJS package: its class is reached through the default export.
const { SonicBoom } = sonicBoom;

// sonic-boom writes at most this much per write; its 16 KiB default cannot keep up with a busy
// gateway when each write waits for a turn of a loaded event loop, and the backlog grows.
const MAX_WRITE_BYTES = 1024 * 1024;

type Boom = InstanceType<typeof SonicBoom>;

/** sonic-boom's type definitions know only its text mode; in buffer mode it takes bytes. */
function writeBytes(boom: Boom, lines: Buffer): void {
  boom.write(lines as unknown as string);
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
    this.#boom = new SonicBoom({ dest: this.path, append: true, sync: false, maxWrite: MAX_WRITE_BYTES, contentMode: 'buffer' });
    this.#boom.on('error', onError);
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
    await new Promise<void>((resolve) => {
      this.#boom.once('close', () => resolve());
      this.#boom.end();
    });
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
  #boom = new SonicBoom({ fd: 1, sync: false, maxWrite: MAX_WRITE_BYTES, contentMode: 'buffer' });

  write(lines: Buffer): void {
    writeBytes(this.#boom, lines);
  }

  close(): Promise<void> {
    return new Promise((resolve) => this.#boom.flush(() => resolve()));
  }
}
