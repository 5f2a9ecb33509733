import type { Dirent } from 'node:fs';
import { readdir, rm, stat } from 'node:fs/promises';
import { join, resolve } from 'node:path';

interface Removable {
  path: string;
  /** Epoch ms used to order deletion, oldest first. */
  age: number;
  bytes: number;
}

export interface DiskQuotaOptions {
  logDirectory: string;
  /** Files in the log directory that belong to the traffic log. */
  isLogFile: (name: string) => boolean;
  /** Log files being written (by this or another instance), never deleted. */
  isCurrentFile: (name: string) => boolean;
  payloadDirectory: string | null;
  maxBytes: number;
  onError: (error: Error) => void;
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

/** `2026-11-21/08.15` to epoch ms (UTC), or NaN for anything else. */
function minuteFolderTime(day: string, minute: string): number {
  if (!/^\d{4}-\d{2}-\d{2}$/.test(day) || !/^\d{2}\.\d{2}$/.test(minute)) return Number.NaN;
  return Date.parse(`${day}T${minute.replace('.', ':')}:00Z`);
}

/**
 * Keeps the traffic log files and payload folders under `maxBytes` together by deleting the
 * oldest (rolled log files and whole minute folders of payloads). The files being written and the
 * current minute's payloads are never deleted.
 */
export class DiskQuota {
  #timer: NodeJS.Timeout | null = null;
  #running: Promise<void> | null = null;
  /** Rolled log files and payload minute folders old enough that nothing is written to them any more. */
  #settled = new Map<string, Removable>();

  constructor(readonly options: DiskQuotaOptions) {}

  start(intervalMs: number): void {
    this.#timer = setInterval(() => void this.enforce(true), intervalMs);
    this.#timer.unref();
    void this.enforce(true);
  }

  stop(): Promise<void> {
    if (this.#timer !== null) clearInterval(this.#timer);
    this.#timer = null;
    return this.#running ?? Promise.resolve();
  }

  /**
   * One check; concurrent calls share the one in progress. Without `countRecent` (the check after
   * a roll, which may come every few seconds) the payload folders of the last minutes, still being
   * written, are not walked: they are counted at the next interval check.
   */
  enforce(countRecent = false): Promise<void> {
    this.#running ??= this.#enforce(countRecent)
      .catch((error: Error) => this.options.onError(error))
      .finally(() => {
        this.#running = null;
      });
    return this.#running;
  }

  async #enforce(countRecent: boolean): Promise<void> {
    const { maxBytes } = this.options;
    const candidates = await this.#candidates(countRecent);
    let total = candidates.total;
    const removable = candidates.removable.sort((a, b) => a.age - b.age);
    for (const item of removable) {
      if (total <= maxBytes) break;
      await rm(item.path, { recursive: true, force: true });
      this.#settled.delete(item.path);
      total -= item.bytes;
    }
  }

  async #candidates(countRecent: boolean): Promise<{ total: number; removable: Removable[] }> {
    const { logDirectory, isLogFile, isCurrentFile, payloadDirectory } = this.options;
    const removable: Removable[] = [];
    const seen = new Set<string>();
    let total = 0;
    for (const entry of await entries(logDirectory)) {
      if (!entry.isFile() || !isLogFile(entry.name)) continue;
      const path = resolve(logDirectory, entry.name);
      const current = isCurrentFile(entry.name);
      let file = current ? undefined : this.#settled.get(path);
      if (file === undefined) {
        const info = await stat(path).catch(() => null);
        if (info === null) continue;
        file = { path, age: info.mtimeMs, bytes: info.size };
        if (!current) this.#settled.set(path, file);
      }
      total += file.bytes;
      seen.add(path);
      if (!current) removable.push(file);
    }
    if (payloadDirectory !== null) {
      const currentMinute = Math.floor(Date.now() / 60_000) * 60_000;
      // A transaction that began in a minute may store its bodies a little later.
      const settledBefore = currentMinute - 2 * 60_000;
      for (const day of await entries(payloadDirectory)) {
        if (!day.isDirectory()) continue;
        const dayPath = join(payloadDirectory, day.name);
        const minutes = await entries(dayPath);
        for (const minute of minutes) {
          const path = join(dayPath, minute.name);
          const age = minuteFolderTime(day.name, minute.name);
          const settled = !Number.isNaN(age) && age < settledBefore;
          if (!settled && !countRecent) continue;
          let folder = settled ? this.#settled.get(path) : undefined;
          if (folder === undefined) {
            folder = { path, age, bytes: await folderBytes(path) };
            if (settled) this.#settled.set(path, folder);
          }
          total += folder.bytes;
          seen.add(path);
          if (!Number.isNaN(age) && age < currentMinute) removable.push(folder);
        }
        // An emptied day folder goes with its last minute.
        if (minutes.length === 0 && day.name < new Date().toISOString().slice(0, 10)) {
          removable.push({ path: dayPath, age: 0, bytes: 0 });
        }
      }
    }
    // Forget what others (another instance, a person) deleted since.
    for (const path of this.#settled.keys()) if (!seen.has(path)) this.#settled.delete(path);
    return { total, removable };
  }
}
