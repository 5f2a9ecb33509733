import { existsSync } from 'node:fs';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { performance } from 'node:perf_hooks';
import { afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { PayloadWriter, type FileJob, type JobFailure } from './payload-writer.js';

/** The real thread as built: a thread runs plain JavaScript (`npm test` builds before it tests). */
const REAL_THREAD = new URL('../../dist/recording/payload-writer-thread.js', import.meta.url);
/** PayloadWriter's bound on close(). */
const CLOSE_TIMEOUT_MS = 5_000;

type Misbehaviour = 'exits' | 'throws' | 'loops forever';

const MISBEHAVING: Record<Misbehaviour, string> = {
  exits: 'process.exit(3);',
  throws: "throw new Error('a bug in the writer thread');",
  'loops forever': 'for (;;);',
};

function moduleUrl(source: string): string {
  return `data:text/javascript,${encodeURIComponent(source)}`;
}

/**
 * The real thread, except for a batch with a job whose path ends in `.misbehave`: it writes the
 * jobs before that one, then misbehaves without answering. A module imported before the real
 * thread wraps the message listener the real thread adds.
 */
function misbehavingThread(how: Misbehaviour): URL {
  const wrapper = `
import { writeFileSync } from 'node:fs';
import { parentPort } from 'node:worker_threads';
const on = parentPort.on.bind(parentPort);
parentPort.on = (event, listener) => on(event, event !== 'message' ? listener : (batch) => {
  const at = batch.paths.findIndex((path) => path.endsWith('.misbehave'));
  if (at < 0) return listener(batch);
  const bytes = new Uint8Array(batch.data);
  let offset = 0;
  for (let index = 0; index < at; index++) {
    const length = batch.lengths[index];
    if (length >= 0) writeFileSync(batch.paths[index], bytes.subarray(offset, (offset += length)));
  }
  ${MISBEHAVING[how]}
});
`;
  return new URL(moduleUrl(`import ${JSON.stringify(moduleUrl(wrapper))};\nimport ${JSON.stringify(REAL_THREAD.href)};`));
}

let directory: string;
let errors: Error[];

beforeAll(() => {
  if (!existsSync(REAL_THREAD)) throw new Error(`${fileURLToPath(REAL_THREAD)} is missing: run \`npm run build\` first (\`npm test\` does)`);
});

beforeEach(async () => {
  directory = await mkdtemp(join(tmpdir(), 'tollgate-writer-'));
  errors = [];
});

afterEach(async () => {
  await rm(directory, { recursive: true, force: true });
});

function writerWith(how: Misbehaviour): PayloadWriter {
  return new PayloadWriter({ maxDelayMs: 60_000, maxQueuedBytes: 1024 * 1024, onError: (error) => errors.push(error), threadScript: misbehavingThread(how) });
}

function job(name: string, data: string): FileJob {
  return { path: join(directory, name), data: Buffer.from(data), sameAs: null, movedFrom: null };
}

/** Hands `jobs` over; resolves with what `done` learns of them. */
function write(writer: PayloadWriter, jobs: FileJob[]): Promise<(JobFailure | null)[]> {
  return new Promise((resolve) => expect(writer.write(jobs, resolve)).toBe(true));
}

const writerDied = { code: 'EWRITERDIED', message: expect.any(String) };

describe('a payload writer thread that dies', () => {
  it.each(['exits', 'throws'] as const)('fails every job it held with EWRITERDIED when it %s mid-batch; the next write starts a new thread and succeeds', async (how) => {
    const writer = writerWith(how);
    // Asked for in one turn: one batch.
    const first = write(writer, [job('a', 'A'), job('b.misbehave', 'B')]);
    const second = write(writer, [{ path: join(directory, 'c'), data: null, sameAs: join(directory, 'a'), movedFrom: null }]);
    expect(await first).toEqual([writerDied, writerDied]);
    expect(await second).toEqual([writerDied]);
    // Written before the thread died, yet reported not stored: no answer came for it.
    expect(await readFile(join(directory, 'a'), 'utf8')).toBe('A');
    expect(errors.map((error) => (error as NodeJS.ErrnoException).code)).toEqual(['EWRITERDIED']);
    expect(errors[0]!.message).toMatch(how === 'exits' ? /exited \(code 3\); its files are reported as not stored/ : /a bug in the writer thread; its files are reported as not stored/);

    expect(await write(writer, [job('d', 'D'), { path: join(directory, 'e'), data: null, sameAs: join(directory, 'd'), movedFrom: null }])).toEqual([null, null]);
    expect(await readFile(join(directory, 'd'), 'utf8')).toBe('D');
    expect(await readFile(join(directory, 'e'), 'utf8')).toBe('D');
    await writer.close();
    expect(errors).toHaveLength(1);
  });

  it(`close() stops a thread that never answers after ${CLOSE_TIMEOUT_MS} ms and fails what it held`, async () => {
    const writer = writerWith('loops forever');
    const held = write(writer, [job('a.misbehave', 'A')]);
    const started = performance.now();
    await writer.close();
    const elapsed = performance.now() - started;
    expect(await held).toEqual([writerDied]);
    expect(elapsed).toBeGreaterThanOrEqual(CLOSE_TIMEOUT_MS - 50);
    expect(elapsed).toBeLessThan(CLOSE_TIMEOUT_MS + 2_000);
    expect(errors.map((error) => (error as NodeJS.ErrnoException).code)).toEqual(['EWRITERDIED']);
    expect(writer.write([job('b', 'B')], () => undefined)).toBe(false);
  });
});
