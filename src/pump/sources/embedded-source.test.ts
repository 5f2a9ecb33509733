import { spawn } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import type { AnalyticsRecord } from '../../analytics/analytics-record.js';
import { decodeBatch, encodeBatch } from '../../analytics/codec.js';
import { Spool } from '../../buffer/spool.js';
import { analyticsRecords } from '../../../test/support/analytics-records.js';
import { DeadLetter } from '../dead-letter.js';
import type { SourceBatch } from '../source.js';
import { EmbeddedSource } from './embedded-source.js';

const WRITER = fileURLToPath(new URL('../../../test/support/spool-writer.ts', import.meta.url));

let scratch = '';
const closers: (() => Promise<void> | void)[] = [];

beforeEach(async () => {
  scratch = await mkdtemp(join(tmpdir(), 'tollgate-embedded-source-'));
});

afterEach(async () => {
  for (const close of closers.splice(0).reverse()) await close();
  await rm(scratch, { recursive: true, force: true });
});

function spool(name: string): Spool {
  const opened = new Spool(join(scratch, 'spool', name));
  closers.push(() => opened.close());
  return opened;
}

function append(to: Spool, count: number): AnalyticsRecord[] {
  const records = analyticsRecords(count);
  to.append([{ data: encodeBatch(records), records: count }]);
  return records;
}

function source(): { source: EmbeddedSource; undecodable: DeadLetter; undecodableCount: () => number; notes: string[] } {
  const undecodable = new DeadLetter(join(scratch, 'dead-letter'), 'undecodable');
  let count = 0;
  const notes: string[] = [];
  const opened = new EmbeddedSource({ directory: join(scratch, 'spool'), undecodable, onUndecodable: () => count++, notify: (note) => notes.push(note) });
  closers.push(
    () => undecodable.close(),
    () => opened.close(),
  );
  return { source: opened, undecodable, undecodableCount: () => count, notes };
}

const ids = (batches: SourceBatch[]): string[] => batches.flatMap((batch) => batch.records.map((record) => record.id));

describe('the embedded source', () => {
  it("hands out every spool's batches oldest first, each once, and acknowledging one deletes it", async () => {
    const first = spool('gw_1.spool');
    const second = spool('gw_2.spool');
    const written = [append(first, 3), append(first, 2), append(second, 4)];
    const { source: reader } = source();
    const read = await reader.read(10, 100);
    expect(read.map((batch) => batch.records.length).sort()).toEqual([2, 3, 4]);
    expect(ids(read.filter((batch) => batch.key.startsWith('gw_1')))).toEqual([...written[0]!, ...written[1]!].map((record) => record.id));
    expect(await reader.read(10, 50)).toEqual([]);
    expect(await reader.depth()).toMatchObject({ batches: 3, records: 9 });
    for (const batch of read) await reader.ack(batch);
    expect(first.totals().batches + second.totals().batches).toBe(0);
    expect(await reader.depth()).toEqual({ batches: 0, records: 0, oldestAgeMs: 0 });
  });

  it('takes at most the number of batches asked for, and the rest on the next read', async () => {
    const gateway = spool('gw_1.spool');
    for (let i = 0; i < 5; i++) append(gateway, 1);
    const { source: reader } = source();
    expect((await reader.read(2, 100)).length).toBe(2);
    expect((await reader.read(10, 100)).length).toBe(3);
  });

  it('finds a spool that appears while it runs, and waits for batches up to the time given', async () => {
    const { source: reader } = source();
    expect(await reader.read(10, 50)).toEqual([]);
    const late = spool('gw_late.spool');
    const records = append(late, 2);
    const read = await reader.read(10, 3_000);
    expect(ids(read)).toEqual(records.map((record) => record.id));
  });

  it('hands out again, once restarted, every batch not acknowledged', async () => {
    const gateway = spool('gw_1.spool');
    const written = [append(gateway, 1), append(gateway, 1), append(gateway, 1)];
    const before = source();
    const read = await before.source.read(10, 100);
    await before.source.ack(read[1]!);
    await before.source.close();
    const after = source();
    expect(ids(await after.source.read(10, 100))).toEqual([written[0]![0]!.id, written[2]![0]!.id]);
  });

  it('moves a batch that cannot be decoded to the dead letter, whole, counts it, and goes on', async () => {
    const gateway = spool('gw_1.spool');
    const before = append(gateway, 2);
    const garbage = Buffer.from([0xc1, 0xff, 0x00]);
    gateway.append([{ data: garbage, records: 7 }]);
    const after = append(gateway, 2);
    const { source: reader, undecodable, undecodableCount, notes } = source();
    const read = await reader.read(10, 100);
    expect(ids(read)).toEqual([...before, ...after].map((record) => record.id));
    expect(undecodableCount()).toBe(1);
    const [kept] = undecodable.read(0, 10);
    expect(kept).toMatchObject({ records: 7, data: garbage });
    expect(gateway.totals()).toMatchObject({ batches: 2, records: 4 });
    expect(notes.join('\n')).toMatch(/gw_1\.spool#2: cannot be decoded/);
  });

  it('reads and deletes while a gateway process appends to the same spool: every batch once', async () => {
    const path = join(scratch, 'spool', 'gw_1.spool');
    new Spool(path).close();
    const child = spawn(process.execPath, ['--import', 'tsx', WRITER, path, '400', '5'], { stdio: ['ignore', 'pipe', 'inherit'] });
    let output = '';
    child.stdout.on('data', (chunk: Buffer) => (output += chunk.toString()));
    const exited = new Promise<number | null>((resolve) => child.once('exit', resolve));
    const { source: reader } = source();
    const seen: string[] = [];
    let writerDone = false;
    void exited.then(() => (writerDone = true));
    for (;;) {
      const read = await reader.read(16, 50);
      for (const batch of read) {
        seen.push(...batch.records.map((record) => record.id));
        await reader.ack(batch);
      }
      if (writerDone && read.length === 0 && (await reader.depth()).batches === 0) break;
    }
    expect(await exited).toBe(0);
    const written = JSON.parse(output) as string[];
    expect(seen.length).toBe(written.length);
    expect(new Set(seen)).toEqual(new Set(written));
  });

  it('says how deep the buffer is and how old its oldest batch', async () => {
    const gateway = spool('gw_1.spool');
    append(gateway, 3);
    append(gateway, 4);
    const { source: reader } = source();
    const depth = await reader.depth();
    expect(depth).toMatchObject({ batches: 2, records: 7 });
    expect(depth.oldestAgeMs).toBeGreaterThanOrEqual(0);
    expect(depth.oldestAgeMs).toBeLessThan(60_000);
    expect(decodeBatch(gateway.read(0, 1)[0]!.data)).toHaveLength(3);
  });
});
