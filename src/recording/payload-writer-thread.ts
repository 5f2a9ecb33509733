import { linkSync, copyFileSync, mkdirSync, writeFileSync } from 'node:fs';
import { dirname } from 'node:path';
import { parentPort } from 'node:worker_threads';
import type { FileJob, WriteBatch, WriteResult } from './payload-writer.js';

// Creating small files costs tens of microseconds each in the kernel; done here, that cost stays
// off the gateway's event loop and runs on another core.
let knownFolder = '';

function ensureFolder(path: string): void {
  const folder = dirname(path);
  if (folder === knownFolder) return;
  mkdirSync(folder, { recursive: true });
  knownFolder = folder;
}

function perform(job: FileJob): void {
  ensureFolder(job.path);
  if (job.data !== null) {
    writeFileSync(job.path, job.data);
    return;
  }
  try {
    linkSync(job.sameAs as string, job.path);
  } catch (error) {
    // A file system without hard links (or across devices) still gets its own copy.
    if ((error as NodeJS.ErrnoException).code === 'EEXIST') throw error;
    copyFileSync(job.sameAs as string, job.path);
  }
}

function run(job: FileJob): string | null {
  try {
    perform(job);
    return null;
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== 'ENOENT') return (error as Error).message;
    // The disk quota may have removed the folder since it was made: make it again, once.
    knownFolder = '';
    try {
      perform(job);
      return null;
    } catch (retryError) {
      return (retryError as Error).message;
    }
  }
}

parentPort?.on('message', (batch: WriteBatch) => {
  const result: WriteResult = { id: batch.id, errors: batch.jobs.map(run) };
  parentPort?.postMessage(result);
});
