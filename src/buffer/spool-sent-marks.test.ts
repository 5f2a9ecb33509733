import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { Spool } from './spool.js';

let directory: string;
let spool: Spool;

beforeEach(() => {
  directory = mkdtempSync(join(tmpdir(), 'tollgate-spool-marks-'));
  spool = new Spool(join(directory, 'test_gw.spool'));
});

afterEach(() => {
  spool.close();
  rmSync(directory, { recursive: true, force: true });
});

function append(count: number): number[] {
  return spool.append(Array.from({ length: count }, (_, n) => ({ data: Buffer.from(`batch ${n}`), records: 1 })));
}

describe('the spool as the redis buffer\'s local copy', () => {
  it('tells which batches a Redis run has not seen, a page at a time, oldest first', () => {
    const ids = append(5);
    spool.markSent([{ id: ids[1] as number, entry: '1-0' }, { id: ids[3] as number, entry: '2-0' }], 'run-a');
    expect(spool.unsent('run-a', 0, 2).map((batch) => batch.id)).toEqual([ids[0], ids[2]]);
    expect(spool.unsent('run-a', ids[2] as number, 2).map((batch) => batch.id)).toEqual([ids[4]]);
    // Another run (Redis restarted) has seen none of them.
    expect(spool.unsent('run-b', 0, 10).map((batch) => batch.id)).toEqual(ids);
    expect(spool.sentEntries('run-a')).toEqual([
      { id: ids[1], entry: '1-0' },
      { id: ids[3], entry: '2-0' },
    ]);
    expect(spool.read(0, 10).map((batch) => [batch.streamEntry, batch.redisRun])).toEqual([
      [null, null],
      ['1-0', 'run-a'],
      [null, null],
      ['2-0', 'run-a'],
      [null, null],
    ]);
  });

  it('forgets the marks of a run whose stream vanished, and of batches deleted or never kept', () => {
    const ids = append(3);
    spool.markSent(ids.map((id, n) => ({ id, entry: `${n}-0` })), 'run-a');
    spool.delete([ids[0] as number]);
    expect(spool.sentEntries('run-a').map(({ id }) => id)).toEqual([ids[1], ids[2]]);
    // A batch removed (dropOldest) before its mark came leaves no mark behind.
    spool.markSent([{ id: 999, entry: '9-0' }], 'run-a');
    expect(spool.sentEntries('run-a').map(({ id }) => id)).toEqual([ids[1], ids[2]]);
    spool.forgetSent('run-a');
    expect(spool.sentEntries('run-a')).toEqual([]);
    expect(spool.unsent('run-a', 0, 10).map((batch) => batch.id)).toEqual([ids[1], ids[2]]);
  });
});
