import { mkdir, open, readdir, readFile, stat, utimes, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { request } from 'undici';
import { describe, expect, it } from 'vitest';
import { baseConfig } from '../../test/support/backends.js';
import { useGatewayFixture } from '../../test/support/fixture.js';
import { byTransaction, eventually, type GatewayProcess } from '../../test/support/gateway-process.js';
import { payloadFolder } from '../recording/payload-store.js';
import { utcDay } from './file-naming.js';

const fixture = useGatewayFixture({ demo: true });

const KB = 1024;
const MB = 1024 * KB;
const OLD_BYTES = Buffer.alloc(10 * KB, 0x62);

/** Payloads on, the traffic log on standard output: the quota covers the payloads alone. */
function start(payloads: Record<string, any>, maxDiskSpaceMb: number): Promise<GatewayProcess> {
  return fixture.start(
    baseConfig(fixture.workspace, fixture.demo.url, {
      trafficLog: { output: 'stdout', maxDiskSpaceMb, diskCheckIntervalSec: 1, payloads: { enabled: true, ...payloads } },
    }),
  );
}

/** POSTs an 8 KB body of its own to the echo back end: 16 KB of payloads (each body is stored once). */
async function post(gw: GatewayProcess, n: number): Promise<{ id: string; body: string }> {
  const body = `${String(n).padStart(6, '0')}:`.repeat(Math.ceil((8 * KB) / 7)).slice(0, 8 * KB);
  const response = await request(`${gw.url}/api/echo`, { method: 'POST', body, headers: { 'content-type': 'application/octet-stream' } });
  expect(await response.body.text()).toBe(body);
  expect(response.statusCode).toBe(200);
  return { id: response.headers['x-correlation-id'] as string, body };
}

async function exists(path: string): Promise<boolean> {
  return stat(path).then(
    () => true,
    () => false,
  );
}

/** Bytes below the payload directory as the quota counts them: a body stored under two names (hard links) once. */
async function payloadBytes(): Promise<number> {
  const seen = new Set<number>();
  let total = 0;
  for (const entry of await readdir(fixture.workspace.payloadDir, { recursive: true, withFileTypes: true })) {
    if (!entry.isFile()) continue;
    // The quota may delete a file while it is being summed.
    const info = await stat(join(entry.parentPath, entry.name)).catch(() => null);
    if (info === null || seen.has(info.ino)) continue;
    seen.add(info.ino);
    total += info.size;
  }
  return total;
}

function untilUnderQuota(maxBytes: number): Promise<true> {
  // The quota may delete a folder while it is read.
  return eventually(async () => ((await payloadBytes().catch(() => Infinity)) <= maxBytes ? true : undefined), 5_000, `the payloads to be under ${maxBytes} bytes`);
}

function untilLogged(gw: GatewayProcess, sent: { id: string }[]): Promise<true> {
  return eventually(
    async () => {
      const logged = byTransaction(gw.stdoutLines());
      return sent.every(({ id }) => logged.get(id)?.summary.httpStatus !== undefined) ? true : undefined;
    },
    5_000,
    'the transactions on standard output',
  );
}

/** `path`, relative to the payload directory, holds `bytes` and was last written at `time`. */
async function createOld(path: string, time: number): Promise<void> {
  const file = fixture.workspace.path('payloads', path);
  await mkdir(join(file, '..'), { recursive: true });
  await writeFile(file, OLD_BYTES);
  await utimes(file, time / 1000, time / 1000);
}

/** Which of `paths` (relative to the payload directory) are still there. */
function survivors(paths: string[]): Promise<boolean[]> {
  return Promise.all(paths.map((path) => exists(fixture.workspace.path('payloads', path))));
}

/** The bytes a packed link (`file:///...bin#offset=N&length=M`) points to. */
async function readPackedLink(link: string): Promise<string> {
  const url = new URL(link);
  const offset = Number(url.hash.match(/offset=(\d+)/)?.[1]);
  const length = Number(url.hash.match(/length=(\d+)/)?.[1]);
  const file = await open(fileURLToPath(url.href.replace(url.hash, '')));
  try {
    const buffer = Buffer.alloc(length);
    await file.read(buffer, 0, length, offset);
    return buffer.toString('utf8');
  } finally {
    await file.close();
  }
}

describe('the disk quota with the traffic log on standard output', () => {
  it('deletes the oldest payload minute folders first until the payloads are under maxDiskSpaceMb, never the current minute', async () => {
    const maxBytes = 0.06 * MB;
    // Oldest first.
    const old = ['2020-01-01/00.00', '2020-01-01/12.00', '2020-01-02/00.00', '2020-01-03/00.00', payloadFolder(Date.now() - 3_600_000)];
    for (const folder of old) await createOld(`${folder}/000000000000000000000000-1-received`, Date.now());
    expect(await payloadBytes()).toBeLessThan(maxBytes);

    const gw = await start({}, 0.06);
    const sent = [await post(gw, 1), await post(gw, 2)];
    // A transaction's line is written once its payload files are complete.
    await untilLogged(gw, sent);
    await untilUnderQuota(maxBytes);
    expect(await gw.stop()).toBe(0);

    const kept = await survivors(old);
    const deleted = kept.filter((there) => !there).length;
    expect(deleted).toBeGreaterThanOrEqual(1);
    expect(deleted).toBeLessThan(old.length);
    // Oldest first: everything deleted is older than everything kept.
    expect(kept).toEqual(old.map((_, index) => index >= deleted));
    expect(await payloadBytes()).toBeLessThanOrEqual(maxBytes);

    const transactions = byTransaction(gw.stdoutLines());
    for (const { id, body } of sent) {
      const { legs } = transactions.get(id)!;
      for (const [leg, field] of [
        [0, 'recvPayload'],
        [1, 'sentPayload'],
        [1, 'recvPayload'],
        [0, 'sentPayload'],
      ] as const) {
        const link = legs[leg]!.protocolInfo[field];
        expect(typeof link, `${id} leg ${leg} ${field}`).toBe('string');
        expect((await readFile(fileURLToPath(link), 'utf8')) === body, `${id} leg ${leg} ${field} is whole`).toBe(true);
      }
    }
  });

  it('deletes finished packed payload files oldest first, never the one being written', async () => {
    const maxBytes = 0.03 * MB;
    // Oldest first. The newest file of another instance is the one it writes: kept, as its
    // current traffic log file would be.
    const old: [name: string, time: number, finished: boolean][] = [
      ['test_gw_payloads_2020-01-01-1.bin', Date.parse('2020-01-01T10:00:00Z'), true],
      ['test_other_payloads_2020-01-01-1.bin', Date.parse('2020-01-01T20:00:00Z'), true],
      ['test_gw_payloads_2020-01-02-1.bin', Date.parse('2020-01-02T10:00:00Z'), true],
      ['test_gw_payloads_2020-01-02-2.bin', Date.parse('2020-01-02T11:00:00Z'), true],
      ['test_other_payloads_2020-01-02-1.bin', Date.parse('2020-01-02T12:00:00Z'), false],
    ];
    for (const [name, time] of old) await createOld(name, time);

    // Files of 20 KB: each transaction's 16 KB of bodies goes to a file of its own.
    const gw = await start({ layout: 'packed', maxFileSizeMb: 0.02 }, 0.03);
    const sent: { id: string; body: string }[] = [];
    for (let n = 0; n < 6; n++) sent.push(await post(gw, n));
    await untilLogged(gw, sent);
    await untilUnderQuota(maxBytes);
    expect(await gw.stop()).toBe(0);

    expect(await survivors(old.map(([name]) => name))).toEqual(old.map(([, , finished]) => !finished));
    expect(await payloadBytes()).toBeLessThanOrEqual(maxBytes);
    // This run's files in the order written, from the links: the newest survive, the last (being written) among them.
    const transactions = byTransaction(gw.stdoutLines());
    const links = sent.map(({ id }) => transactions.get(id)!.legs[0]!.protocolInfo.recvPayload as string);
    const files = [...new Set(links.map((link) => fileURLToPath(link.replace(/#.*/, ''))))];
    expect(files.length).toBeGreaterThanOrEqual(3);
    const kept = await Promise.all(files.map(exists));
    const deleted = kept.filter((there) => !there).length;
    expect(deleted).toBeGreaterThanOrEqual(1);
    expect(kept).toEqual(files.map((_, index) => index >= deleted));
    // The last transaction's bodies, whole, in the file that was being written.
    const last = sent.at(-1)!;
    const client = transactions.get(last.id)!.legs[0]!.protocolInfo;
    for (const link of [client.recvPayload, client.sentPayload]) expect(await readPackedLink(link)).toBe(last.body);
  });

  it('never deletes the packed file being written, even when it alone is over the quota', async () => {
    const day = utcDay();
    const maxBytes = 0.03 * MB;
    await createOld('test_gw_payloads_2020-01-01-1.bin', Date.parse('2020-01-01T10:00:00Z'));
    const gw = await start({ layout: 'packed' }, 0.03);
    const current = `test_gw_payloads_${day}-1.bin`;
    const sent: { id: string; body: string }[] = [];
    for (let n = 0; n < 4; n++) sent.push(await post(gw, n));
    await untilLogged(gw, sent);
    await eventually(async () => ((await exists(fixture.workspace.path('payloads', 'test_gw_payloads_2020-01-01-1.bin'))) ? undefined : true), 5_000, 'the old file to go');
    // Two more checks with the current file alone over the quota once they have deleted an old
    // file put there for each: their deleting it shows they ran.
    for (const name of ['test_gw_payloads_2020-01-02-1.bin', 'test_gw_payloads_2020-01-03-1.bin']) {
      await createOld(name, Date.parse('2020-01-02T00:00:00Z'));
      await eventually(async () => ((await exists(fixture.workspace.path('payloads', name))) ? undefined : true), 5_000, `the check deleting ${name}`);
    }
    expect(await readdir(fixture.workspace.payloadDir)).toEqual([current]);
    expect(await payloadBytes()).toBeGreaterThan(maxBytes);
    expect(await gw.stop()).toBe(0);

    const transactions = byTransaction(gw.stdoutLines());
    for (const { id, body } of sent) {
      const client = transactions.get(id)!.legs[0]!.protocolInfo;
      for (const link of [client.recvPayload, client.sentPayload]) expect(await readPackedLink(link)).toBe(body);
    }
  });
});
