import { mkdir, mkdtemp, readdir, readFile, rm, rmdir, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { eventually } from '../../test/support/gateway-process.js';
import { AppendFile, type AppendFileEvents, type Landing } from './append-file.js';
import { numberedNames, rollingNames } from './file-naming.js';

let dir: string;
let errors: string[];
const events: AppendFileEvents = {
  written: () => undefined,
  finished: () => undefined,
  error: (error) => errors.push((error as NodeJS.ErrnoException).code ?? error.message),
  info: () => undefined,
};

beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), 'tollgate-append-'));
  errors = [];
});
afterEach(() => rm(dir, { recursive: true, force: true }));

/** Ten records of ten bytes: `0000000000`, `1111111111`, ... with the offsets where each ends. */
function records(count = 10): { data: Buffer; cuts: number[] } {
  const data = Buffer.from(Array.from({ length: count }, (_, index) => String(index % 10).repeat(10)).join(''));
  return { data, cuts: Array.from({ length: count }, (_, index) => (index + 1) * 10) };
}

/** Every file of the directory and its content, oldest first: rolled files by number, the current one last. */
async function filesIn(): Promise<Map<string, string>> {
  const number = (name: string): number => Number(/-(\d+)\.\w+$/.exec(name)?.[1] ?? Number.POSITIVE_INFINITY);
  const names = (await readdir(dir)).sort((a, b) => number(a) - number(b));
  return new Map(await Promise.all(names.map(async (name) => [name, await readFile(join(dir, name), 'utf8')] as const)));
}

describe('an append-only file', () => {
  it('rolls only at the cuts the writer allows, so no record spans two files', async () => {
    const file = new AppendFile({ target: { naming: numberedNames(dir, 'x', '.bin'), maxBytes: 35 }, maxPendingBytes: 1024, events });
    const { data, cuts } = records();
    expect(file.append(data, { cuts })).toBe(true);
    await file.close();
    const contents = [...(await filesIn()).values()];
    expect(contents).toEqual(['000000000011111111112222222222', '333333333344444444445555555555', '666666666677777777778888888888', '9999999999']);
  });

  it('with durable, tells where appends landed only after the file is synced, once for all appended in the same turn', async () => {
    const naming = rollingNames(dir, 'log', '.log');
    const durable = new AppendFile({ target: { naming, maxBytes: 1024 }, maxPendingBytes: 1024, durable: true, events });
    const landings: (Landing | null)[] = [];
    for (const line of ['a\n', 'bb\n', 'ccc\n']) expect(durable.append(Buffer.from(line), { landed: (landing) => landings.push(landing) })).toBe(true);
    // Written to the kernel already, not yet synced: nobody is told.
    expect(landings).toEqual([]);
    await eventually(async () => (landings.length === 3 ? true : undefined), 5_000, 'the sync');
    const path = join(dir, 'log.log');
    expect(landings).toEqual([
      { path, offset: 0 },
      { path, offset: 2 },
      { path, offset: 5 },
    ]);
    expect(errors).toEqual([]);
    await durable.close();
    expect(await readFile(path, 'utf8')).toBe('a\nbb\nccc\n');

    // Without durable (the traffic log), an append that is written is told at once.
    const plain = new AppendFile({ target: { naming: numberedNames(dir, 'plain', '.log'), maxBytes: 1024 }, maxPendingBytes: 1024, events });
    const told: (Landing | null)[] = [];
    plain.append(Buffer.from('x\n'), { landed: (landing) => told.push(landing) });
    expect(told).toHaveLength(1);
    await plain.close();
  });

  it('with durable, tells appends to a file that rolls once that file is synced, before it closes', async () => {
    const durable = new AppendFile({ target: { naming: numberedNames(dir, 'x', '.bin'), maxBytes: 35 }, maxPendingBytes: 1024, durable: true, events });
    const { data, cuts } = records();
    const landings: (Landing | null)[] = [];
    for (let i = 0; i < 10; i++) durable.append(data.subarray(i * 10, cuts[i]), { cuts: [10], landed: (landing) => landings.push(landing) });
    await eventually(async () => (landings.length === 10 ? true : undefined), 5_000, 'every append to be told');
    expect(landings.every((landing) => landing !== null)).toBe(true);
    await durable.close();
    expect([...(await filesIn()).values()].join('')).toBe(data.toString());
  });

  it('keeps what it cannot write yet in order, then writes it with the same cuts and tells where each append landed', async () => {
    const naming = rollingNames(dir, 'log', '.log');
    // A directory where the file should be: it cannot be opened until that is removed.
    await mkdir(join(dir, 'log.log'));
    const file = new AppendFile({ target: { naming, maxBytes: 35 }, maxPendingBytes: 1024, events });
    const { data, cuts } = records();
    expect(file.append(data, { cuts })).toBe(true);
    const landings: (Landing | null)[] = [];
    expect(file.append(Buffer.from('tail'), { landed: (landing) => landings.push(landing) })).toBe(true);
    expect(errors).toContain('EISDIR');
    await rmdir(join(dir, 'log.log'));
    await eventually(async () => (landings.length === 1 ? true : undefined), 5_000, 'the queued bytes to be written');
    await file.close();
    const files = await filesIn();
    expect([...files.values()].join('')).toBe(`${data.toString()}tail`);
    for (const content of files.values()) expect(content.length).toBeLessThanOrEqual(35);
    // Each rolled file ends at a record boundary.
    for (const [name, content] of files) if (name !== 'log.log') expect(content.length % 10, name).toBe(0);
    expect(landings).toEqual([{ path: join(dir, 'log.log'), offset: (files.get('log.log') as string).length - 4 }]);
  });

  it('refuses an append once more than maxPendingBytes wait for the disk, and takes appends again once they are written', async () => {
    await mkdir(join(dir, 'log.log'));
    const file = new AppendFile({ target: { naming: rollingNames(dir, 'log', '.log'), maxBytes: 1024 }, maxPendingBytes: 25, events });
    expect(file.append(Buffer.from('a'.repeat(20)))).toBe(true);
    expect(file.append(Buffer.from('b'.repeat(10)))).toBe(false);
    await rmdir(join(dir, 'log.log'));
    await eventually(async () => ((await filesIn()).get('log.log') === 'a'.repeat(20) ? true : undefined), 5_000, 'the waiting bytes');
    expect(file.append(Buffer.from('c'))).toBe(true);
    await file.close();
    expect((await filesIn()).get('log.log')).toBe(`${'a'.repeat(20)}c`);
  });
});

describe('a file of lines', () => {
  it('ends a line a crash cut short before it appends, so the next line starts whole', async () => {
    await writeFile(join(dir, 'log.log'), '{"whole":1}\n{"cut');
    const file = new AppendFile({ target: { naming: rollingNames(dir, 'log', '.log'), maxBytes: 1024 }, maxPendingBytes: 1024, lines: true, events });
    file.append(Buffer.from('{"next":2}\n'));
    await file.close();
    expect((await filesIn()).get('log.log')).toBe('{"whole":1}\n{"cut\n{"next":2}\n');
  });
});
