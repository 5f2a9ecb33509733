import type { Dirent } from 'node:fs';
import { readdir, rm, rmdir, stat } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';

/** Deleted per step, so a quota that is far over never holds the event loop long. */
const DELETE_BATCH = 8;
/** A payload minute folder is deleted only after this much of the next minutes has passed: late bodies still land in it. */
const MINUTE_SETTLES_AFTER_MS = 2 * 60_000;

const TRAFFIC_LOG_FILE = /_traffic(_\d{4}-\d{2}-\d{2}-\d+)?\.log$/;
const CURRENT_TRAFFIC_LOG_FILE = /_traffic\.log$/;
const PACKED_PAYLOAD_FILE = /^(.+_payloads)_(\d{4}-\d{2}-\d{2})-(\d+)\.bin$/;
const DAY_FOLDER = /^\d{4}-\d{2}-\d{2}$/;
const MINUTE_FOLDER = /^\d{2}\.\d{2}$/;

interface Item {
  bytes: number;
  /** Epoch ms that orders deletion, oldest first. */
  age: number;
  /** A finished file (rolled log, earlier packed payload file): deletable. */
  finished: boolean;
  /** For a payload minute folder: the start of its minute; deletable once it has settled. */
  minute: number | null;
  /** A settled minute folder whose bytes were walked: it no longer changes. */
  walked?: boolean;
}

export interface DiskQuotaOptions {
  maxBytes: number;
  /** The traffic log directory, when the log is written to files. */
  logDirectory: string | null;
  /** The payload directory, when payloads are stored. */
  payloadDirectory: string | null;
  events: { error(error: Error): void; info(message: string): void };
}

async function entries(directory: string): Promise<Dirent[]> {
  try {
    return await readdir(directory, { withFileTypes: true });
  } catch {
    return [];
  }
}

/** Bytes below a folder; a body stored under two names (hard links) counts once. */
async function folderBytes(folder: string, seen = new Set<number>()): Promise<number> {
  let total = 0;
  for (const entry of await entries(folder)) {
    const path = join(folder, entry.name);
    if (entry.isDirectory()) {
      total += await folderBytes(path, seen);
      continue;
    }
    const info = await stat(path).catch(() => null);
    if (info === null || seen.has(info.ino)) continue;
    seen.add(info.ino);
    total += info.size;
  }
  return total;
}

/** The newest packed payload file of each instance (by day, then number): the one it writes. */
function packedFilesBeingWritten(names: string[]): Set<string> {
  const newest = new Map<string, { name: string; day: string; n: number }>();
  for (const name of names) {
    const match = PACKED_PAYLOAD_FILE.exec(name);
    if (match === null) continue;
    const [, base = '', day = '', n = '0'] = match;
    const known = newest.get(base);
    if (known === undefined || day > known.day || (day === known.day && Number(n) > known.n)) newest.set(base, { name, day, n: Number(n) });
  }
  return new Set([...newest.values()].map(({ name }) => name));
}

/** An async task run once at a time: a call while it runs shares that run. Its errors are reported, never thrown. */
class OneAtATime {
  current: Promise<void> | null = null;

  constructor(
    readonly task: () => Promise<void>,
    readonly onError: (error: Error) => void,
  ) {}

  run(): Promise<void> {
    this.current ??= this.task()
      .catch(this.onError)
      .finally(() => {
        this.current = null;
      });
    return this.current;
  }
}

/** `2026-11-21/08.15` to epoch ms (UTC). */
function minuteOf(day: string, minute: string): number {
  return Date.parse(`${day}T${minute.replace('.', ':')}:00Z`);
}

/**
 * Keeps the traffic log files and stored payloads under `maxBytes` together, whatever writes
 * them, by deleting the oldest finished files and settled payload minute folders. Files being
 * written and the payloads of the last minutes are never deleted.
 *
 * Bytes are counted as they are written; the directories are walked once at start and then at
 * each `rescan()` (which also learns what other instances wrote and what others deleted), and a
 * folder that has settled is walked once.
 */
export class DiskQuota {
  readonly #items = new Map<string, Item>();
  #total = 0;
  readonly #enforcing = new OneAtATime(() => this.#enforce(), (error) => this.options.events.error(error));
  readonly #scanning = new OneAtATime(() => this.#rescan(), (error) => this.options.events.error(error));
  #timer: NodeJS.Timeout | null = null;

  constructor(readonly options: DiskQuotaOptions) {}

  /** Bytes counted against the quota now. */
  get total(): number {
    return this.#total;
  }

  /** Walks the directories now and every `intervalMs`. */
  start(intervalMs: number): void {
    void this.rescan();
    this.#timer = setInterval(() => void this.rescan(), intervalMs);
    this.#timer.unref();
  }

  async stop(): Promise<void> {
    if (this.#timer !== null) clearInterval(this.#timer);
    this.#timer = null;
    await this.#scanning.current;
    await this.#enforcing.current;
  }

  /** `bytes` were appended to a file being written. */
  fileWritten(path: string, bytes: number): void {
    this.#count(path, bytes, null);
  }

  /** A file will not be written again: it may go, oldest first. `renamedFrom`: the name its bytes were counted under. */
  fileFinished(path: string, renamedFrom: string | null): void {
    const item = this.#items.get(renamedFrom ?? path) ?? { bytes: 0, age: 0, finished: false, minute: null };
    if (renamedFrom !== null) this.#items.delete(renamedFrom);
    item.finished = true;
    item.age = Date.now();
    this.#items.set(path, item);
  }

  /** `bytes` of payloads were stored in the minute folder `folder` (the minute starting at `minute`). */
  folderWritten(folder: string, minute: number, bytes: number): void {
    this.#count(folder, bytes, minute);
  }

  #count(path: string, bytes: number, minute: number | null): void {
    const item = this.#items.get(path);
    if (item === undefined) this.#items.set(path, { bytes, age: minute ?? Date.now(), finished: false, minute });
    else item.bytes += bytes;
    this.#total += bytes;
    if (this.#total > this.options.maxBytes) void this.enforce();
  }

  /** Deletes the oldest deletable items until the total is under the quota; concurrent calls share one run. */
  enforce(): Promise<void> {
    return this.#enforcing.run();
  }

  async #enforce(): Promise<void> {
    const { maxBytes } = this.options;
    let deleted = 0;
    let freed = 0;
    while (this.#total > maxBytes) {
      const settledBefore = Date.now() - MINUTE_SETTLES_AFTER_MS;
      const oldest = [...this.#items]
        .filter(([, item]) => item.finished || (item.minute !== null && item.minute < settledBefore))
        .sort(([, a], [, b]) => a.age - b.age)
        .slice(0, DELETE_BATCH);
      if (oldest.length === 0) break;
      for (const [path, item] of oldest) {
        if (this.#total <= maxBytes) break;
        await rm(path, { recursive: true, force: true });
        if (item.minute !== null) await rmdir(dirname(path)).catch(() => undefined);
        this.#forget(path, item);
        deleted++;
        freed += item.bytes;
      }
    }
    if (deleted > 0) {
      const mb = (bytes: number): string => (bytes / 1024 / 1024).toFixed(1);
      this.options.events.info(`disk quota: deleted the ${deleted} oldest file(s)/folder(s), ${mb(freed)} MB; ${mb(this.#total)} MB of ${mb(maxBytes)} MB in use`);
    }
  }

  #forget(path: string, item: Item): void {
    this.#items.delete(path);
    this.#total -= item.bytes;
  }

  /** Walks the directories: learns files and folders written by others, forgets what others deleted. */
  rescan(): Promise<void> {
    return this.#scanning.run();
  }

  async #rescan(): Promise<void> {
    const seen = new Set<string>();
    const { logDirectory, payloadDirectory } = this.options;
    if (logDirectory !== null) {
      for (const entry of await entries(logDirectory)) {
        if (entry.isFile() && TRAFFIC_LOG_FILE.test(entry.name)) await this.#scanFile(join(logDirectory, entry.name), !CURRENT_TRAFFIC_LOG_FILE.test(entry.name), seen);
      }
    }
    if (payloadDirectory !== null) {
      const payloadEntries = await entries(payloadDirectory);
      const beingWritten = packedFilesBeingWritten(payloadEntries.map((entry) => entry.name));
      for (const entry of payloadEntries) {
        const path = join(payloadDirectory, entry.name);
        if (entry.isFile() && PACKED_PAYLOAD_FILE.test(entry.name)) await this.#scanFile(path, !beingWritten.has(entry.name), seen);
        else if (entry.isDirectory() && DAY_FOLDER.test(entry.name)) await this.#scanDay(path, seen);
      }
    }
    for (const [path, item] of this.#items) if (!seen.has(path)) this.#forget(path, item);
    if (this.#total > this.options.maxBytes) await this.enforce();
  }

  /** `finished`: the directory shows the file is no longer written (a rolled log file, a packed file with a newer one after it). */
  async #scanFile(path: string, finished: boolean, seen: Set<string>): Promise<void> {
    seen.add(path);
    const known = this.#items.get(path);
    if (known?.finished === true) return;
    const info = await stat(path).catch(() => null);
    if (info === null) return;
    const item = known ?? { bytes: 0, age: info.mtimeMs, finished, minute: null };
    // Another instance's packed file it has since rolled away from.
    item.finished ||= finished;
    this.#set(path, info.size, item);
  }

  async #scanDay(dayPath: string, seen: Set<string>): Promise<void> {
    const day = basename(dayPath);
    const minutes = await entries(dayPath);
    const settledBefore = Date.now() - MINUTE_SETTLES_AFTER_MS;
    for (const entry of minutes) {
      if (!entry.isDirectory() || !MINUTE_FOLDER.test(entry.name)) continue;
      const path = join(dayPath, entry.name);
      const minute = minuteOf(day, entry.name);
      seen.add(path);
      const known = this.#items.get(path);
      if (known?.walked === true) continue;
      const item = known ?? { bytes: 0, age: minute, finished: false, minute };
      this.#set(path, await folderBytes(path), item);
      item.walked = minute < settledBefore;
    }
  }

  #set(path: string, bytes: number, item: Item): void {
    this.#total += bytes - item.bytes;
    item.bytes = bytes;
    this.#items.set(path, item);
  }
}
