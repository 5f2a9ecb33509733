import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { countMarkers } from './files.js';

const MARKER = '"transactionSummary":';
const ABORTED = '"failureReason":"client-aborted-';

describe('countMarkers', () => {
  let dir: string;
  beforeEach(async () => {
    dir = await mkdtemp(join(tmpdir(), 'bench-files-'));
  });
  afterEach(() => rm(dir, { recursive: true, force: true }));

  it('counts markers that straddle two read chunks', async () => {
    // The files are read in 1 MiB chunks: the second summary marker begins 7 bytes before the first
    // seam, an abort marker (the longer one) 3 bytes before the second.
    const seam = 1024 * 1024;
    const first = `${MARKER}${'x'.repeat(seam - 7 - MARKER.length)}${MARKER}`;
    const second = `${'y'.repeat(2 * seam - 3 - first.length)}${ABORTED}request"${MARKER}\n`;
    await writeFile(join(dir, 'a.log'), first + second);
    expect(await countMarkers(dir, '.log', [MARKER, ABORTED])).toEqual([3, 1]);
  });

  it('counts every file with the suffix, in subfolders too, and no other', async () => {
    await mkdir(join(dir, 'rolled'));
    await writeFile(join(dir, 'current.log'), `${MARKER}1\n${MARKER}2\n`);
    await writeFile(join(dir, 'rolled', 'old.log'), `${MARKER}3\n`);
    await writeFile(join(dir, 'notes.txt'), `${MARKER}4\n`);
    await writeFile(join(dir, 'empty.log'), '');
    expect(await countMarkers(dir, '.log', [MARKER])).toEqual([3]);
  });

  it('counts nothing where there is no folder yet', async () => {
    expect(await countMarkers(join(dir, 'missing'), '.log', [MARKER, ABORTED])).toEqual([0, 0]);
  });
});
