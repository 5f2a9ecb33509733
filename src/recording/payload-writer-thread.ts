import { copyFileSync, linkSync, mkdirSync, readlinkSync, renameSync, unlinkSync, writeFileSync } from 'node:fs';
import { setPriority } from 'node:os';
import { dirname } from 'node:path';
import { performance } from 'node:perf_hooks';
import { parentPort } from 'node:worker_threads';
import type { JobFailure, WriteBatch, WriteResult } from './payload-writer.js';

// Creating small files costs tens of microseconds each in the kernel; done here, that cost can
// run on another core while the gateway serves.
let knownFolder = '';

function ensureFolder(path: string): void {
  const folder = dirname(path);
  if (folder === knownFolder) return;
  mkdirSync(folder, { recursive: true });
  knownFolder = folder;
}

/** Makes the file at `path` with `make`; one cut short (a full disk) must not stay behind under its name. */
function whole(path: string, make: () => void): void {
  try {
    make();
  } catch (error) {
    try {
      unlinkSync(path);
    } catch {
      // It was never made.
    }
    throw error;
  }
}

/** What a job makes its file from: bytes, another name of a file, or a file to move into place. */
interface Source {
  data: Uint8Array | null;
  sameAs: string | null;
  movedFrom: string | null;
}

function perform(path: string, { data, sameAs, movedFrom }: Source): void {
  ensureFolder(path);
  if (data !== null) {
    whole(path, () => writeFileSync(path, data));
    return;
  }
  if (movedFrom !== null) {
    renameSync(movedFrom, path);
    return;
  }
  try {
    linkSync(sameAs as string, path);
  } catch (error) {
    // A file system without hard links (or across devices) still gets its own copy.
    if ((error as NodeJS.ErrnoException).code === 'EEXIST') throw error;
    whole(path, () => copyFileSync(sameAs as string, path));
  }
}

function failure(error: unknown): JobFailure {
  return { code: (error as NodeJS.ErrnoException).code ?? 'EUNKNOWN', message: (error as Error).message };
}

function run(path: string, source: Source): JobFailure | null {
  try {
    perform(path, source);
    return null;
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== 'ENOENT') return failure(error);
    // The disk quota may have removed the folder since it was made: make it again, once.
    knownFolder = '';
    try {
      perform(path, source);
      return null;
    } catch (retryError) {
      return failure(retryError);
    }
  }
}

/**
 * Requests come first: on a busy core this thread takes the time the gateway leaves, rather
 * than half of it. Linux lets one thread of a process lower its priority (by its thread id);
 * elsewhere this thread simply keeps the process's.
 */
function yieldToRequests(): void {
  try {
    const threadId = Number(readlinkSync('/proc/thread-self').split('/').pop());
    setPriority(threadId, 10);
  } catch {
    // Not Linux, or not allowed: the writer runs at the gateway's priority.
  }
}

yieldToRequests();

parentPort?.on('message', (batch: WriteBatch) => {
  const started = performance.now();
  const bytes = new Uint8Array(batch.data);
  let at = 0;
  const failed = new Map<string, JobFailure>();
  const failures = batch.paths.map((path, index) => {
    const length = batch.lengths[index] as number;
    const data = length < 0 ? null : bytes.subarray(at, at + length);
    if (length > 0) at += length;
    const sameAs = batch.sameAs[index] ?? null;
    // Another name of a body that could not be written fails as that write did.
    const failure = (sameAs === null ? undefined : failed.get(sameAs)) ?? run(path, { data, sameAs, movedFrom: batch.movedFrom[index] ?? null });
    if (failure !== null) failed.set(path, failure);
    return failure;
  });
  const result: WriteResult = { id: batch.id, failures, busyMs: performance.now() - started };
  parentPort?.postMessage(result);
});
