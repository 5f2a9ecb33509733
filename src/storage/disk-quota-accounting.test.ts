import { closeSync, openSync } from 'node:fs';
import { mkdtemp, readdir, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { AppendFile, type AppendFileEvents } from './append-file.js';
import { DiskQuota } from './disk-quota.js';
import { rollingNames } from './file-naming.js';

let dir: string;
beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), 'tollgate-quota-'));
});
afterEach(() => rm(dir, { recursive: true, force: true }));

function quotaOver(logDirectory: string, maxBytes: number): DiskQuota {
  return new DiskQuota({ maxBytes, logDirectory, payloadDirectory: null, events: { error: (error) => expect.fail(error.message), info: () => undefined } });
}

function countedBy(quota: DiskQuota): AppendFileEvents {
  return {
    written: (path, bytes) => quota.fileWritten(path, bytes),
    finished: (path, renamedFrom) => quota.fileFinished(path, renamedFrom),
    error: (error) => expect.fail(error.message),
    info: () => undefined,
  };
}

async function bytesOnDisk(): Promise<number> {
  let total = 0;
  for (const name of await readdir(dir)) total += (await stat(join(dir, name))).size;
  return total;
}

/** `count` lines of 100 bytes, one append each. */
function appendLines(file: AppendFile, count: number): void {
  for (let i = 0; i < count; i++) file.append(Buffer.from(`${'x'.repeat(99)}\n`), { cuts: [100] });
}

describe('the disk quota counting bytes as they are written', () => {
  it('keeps counting a rolled file under its new name, before and after a walk, and deletes only what is needed', async () => {
    const quota = quotaOver(dir, 1_000_000);
    const file = new AppendFile({ target: { naming: rollingNames(dir, 'gw_traffic', '.log'), maxBytes: 1000 }, maxPendingBytes: 10_000, events: countedBy(quota) });
    appendLines(file, 35);
    expect(quota.total).toBe(3500);
    expect(await bytesOnDisk()).toBe(3500);
    await quota.rescan();
    expect(quota.total).toBe(3500);

    // A walk that finds 900 bytes too many deletes the oldest rolled file (1000 bytes), which is enough.
    const tight = quotaOver(dir, 2600);
    await tight.rescan();
    expect((await readdir(dir)).sort()).toEqual(['gw_traffic.log', expect.stringMatching(/-2\.log$/), expect.stringMatching(/-3\.log$/)]);
    expect(tight.total).toBe(2500);
    await file.close();
  });

  it('does not count what goes to an open descriptor such as standard output', async () => {
    const quota = quotaOver(dir, 1_000);
    const fd = openSync('/dev/null', 'w');
    const output = new AppendFile({ target: { fd, name: 'standard output' }, maxPendingBytes: 10_000, events: countedBy(quota) });
    appendLines(output, 50);
    expect(quota.total).toBe(0);
    await output.close();
    closeSync(fd);
  });
});
