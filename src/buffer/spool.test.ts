import { copyFileSync, mkdtempSync, rmSync, statSync, truncateSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { Spool } from './spool.js';

let directory: string;
afterEach(() => rmSync(directory, { recursive: true, force: true }));

function batch(n: number): { data: Buffer; records: number } {
  return { data: Buffer.alloc(3000, n), records: 1 };
}

describe('the spool', () => {
  it('a batch cut mid-write by a crash vanishes whole; every batch committed before it is read back intact', () => {
    directory = mkdtempSync(join(tmpdir(), 'tollgate-spool-'));
    const spool = new Spool(join(directory, 'written.spool'));
    for (let n = 1; n <= 5; n++) spool.append([batch(n)]);
    // What a crash mid-commit leaves: the database and its write-ahead log, the last frame cut short.
    copyFileSync(join(directory, 'written.spool'), join(directory, 'crashed.spool'));
    copyFileSync(join(directory, 'written.spool-wal'), join(directory, 'crashed.spool-wal'));
    spool.close();
    const wal = join(directory, 'crashed.spool-wal');
    truncateSync(wal, statSync(wal).size - 1000);

    const crashed = new Spool(join(directory, 'crashed.spool'));
    const read = crashed.read(0, 100);
    expect(read.map((found) => found.data[0])).toEqual([1, 2, 3, 4]);
    expect(read.every((found) => found.data.equals(batch(found.data[0] as number).data))).toBe(true);
    expect(crashed.totals()).toEqual({ batches: 4, records: 4, bytes: 12_000 });
    crashed.append([batch(6)]);
    expect(crashed.read(0, 100).map((found) => found.data[0])).toEqual([1, 2, 3, 4, 6]);
    crashed.close();
  });
});
