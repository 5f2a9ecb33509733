import { mkdir, readdir, readFile, stat, utimes, writeFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { request } from 'undici';
import { describe, expect, it } from 'vitest';
import { baseConfig } from '../../test/support/backends.js';
import { useGatewayFixture } from '../../test/support/fixture.js';
import { byTransaction, eventually, type GatewayProcess, type LogLine } from '../../test/support/gateway-process.js';

const MB = 1024 * 1024;
const CURRENT = 'test_gw_traffic.log';

const fixture = useGatewayFixture({ demo: true });

function utcDay(epochMs = Date.now()): string {
  return new Date(epochMs).toISOString().slice(0, 10);
}

function start(overrides: Record<string, any>): Promise<GatewayProcess> {
  return fixture.start(baseConfig(fixture.workspace, fixture.demo.url, overrides));
}

/** `count` GETs, `concurrency` at a time; returns the correlation ids. */
async function sendRequests(gw: GatewayProcess, count: number, concurrency: number): Promise<string[]> {
  const ids: string[] = [];
  for (let sent = 0; sent < count; sent += concurrency) {
    const batch = Array.from({ length: Math.min(concurrency, count - sent) }, async (_, i) => {
      const response = await request(`${gw.url}/api/pets/${((sent + i) % 3) + 1}?n=${sent + i}`);
      expect(response.statusCode).toBe(200);
      await response.body.text();
      return response.headers['x-correlation-id'] as string;
    });
    ids.push(...(await Promise.all(batch)));
  }
  return ids;
}

/** The log files, each with its lines parsed; fails on any line that is not a whole JSON object. */
async function readLogFiles(): Promise<Map<string, LogLine[]>> {
  const files = new Map<string, LogLine[]>();
  for (const name of (await readdir(fixture.workspace.logDir)).sort()) {
    const text = await readFile(join(fixture.workspace.logDir, name), 'utf8');
    expect(text === '' || text.endsWith('\n'), `${name} ends with a whole line`).toBe(true);
    const lines = text.split('\n').slice(0, -1);
    files.set(
      name,
      lines.map((line, index) => {
        try {
          return JSON.parse(line) as LogLine;
        } catch {
          throw new Error(`${name} line ${index + 1} is not complete JSON: ${line.slice(0, 80)}...`);
        }
      }),
    );
  }
  return files;
}

/** The lines of the file being written, parsed. */
async function currentLines(): Promise<LogLine[]> {
  const text = await readFile(join(fixture.workspace.logDir, CURRENT), 'utf8').catch(() => '');
  return text
    .split('\n')
    .filter((line) => line !== '')
    .map((line) => JSON.parse(line) as LogLine);
}

/** A line as an earlier run would have left it: a schema-valid trace line (the suite checks every line in the log directory). */
function earlierRunLine(data: string): string {
  const processInfo = { hostname: 'earlier', domainId: 'default', groupId: 'test', groupName: 'test', serviceId: 'gw', serviceName: 'gw', version: '0.0.0' };
  return `${JSON.stringify({ timestamp: 0, correlationId: '0'.repeat(24), processInfo, trace: { level: 'INFO', thread: 'main', data } })}\n`;
}

/** Rolled file numbers for `day`, in order, from the names in the log directory. */
function rolledNumbers(names: string[], day: string): number[] {
  const pattern = new RegExp(`^test_gw_traffic_${day}-(\\d+)\\.log$`);
  return names
    .map((name) => pattern.exec(name)?.[1])
    .filter((n): n is string => n !== undefined)
    .map(Number)
    .sort((a, b) => a - b);
}

describe('rolling the traffic log', () => {
  it('rolls into numbered files of about maxFileSizeMb, with every line whole and none lost', async () => {
    const maxBytes = 0.02 * MB;
    const gw = await start({ trafficLog: { maxFileSizeMb: 0.02 }, api: { detailedRecording: 'headers' } });
    const day = utcDay();
    const ids = await sendRequests(gw, 150, 15);
    expect(await gw.stop()).toBe(0);
    expect(gw.stderr).not.toContain('] traffic log:');

    const files = await readLogFiles();
    const names = [...files.keys()];
    const rolled = rolledNumbers(names, day);
    expect(rolled.length).toBeGreaterThanOrEqual(3);
    expect(rolled).toEqual(rolled.map((_, index) => index + 1));
    expect(names.sort()).toEqual([CURRENT, ...rolled.map((n) => `test_gw_traffic_${day}-${n}.log`)].sort());

    const lines = [...files.values()].flat();
    const transactions = byTransaction(lines);
    expect(lines.filter((line) => line.transactionSummary !== undefined)).toHaveLength(ids.length);
    expect(new Set(transactions.keys())).toEqual(new Set(ids));
    for (const id of ids) {
      const transaction = transactions.get(id)!;
      expect(transaction.lines, `all lines of ${id}`).toHaveLength(4);
      expect(transaction.summary.httpStatus).toBe(200);
    }

    // A transaction is never split over files: the roll happens between transactions.
    const transactionBytes = [...transactions.values()].map(({ lines }) => lines.reduce((sum, line) => sum + JSON.stringify(line).length + 1, 0));
    const largestTransaction = Math.max(...transactionBytes);
    for (const [name, fileLines] of files) {
      for (const id of new Set(fileLines.filter((line) => line.trace === undefined).map((line) => line.correlationId))) {
        expect(fileLines.filter((line) => line.correlationId === id), `${id} whole in ${name}`).toHaveLength(4);
      }
      const { size } = await stat(join(fixture.workspace.logDir, name));
      expect(size, `${name} size`).toBeLessThanOrEqual(maxBytes + largestTransaction);
      if (name !== CURRENT) expect(size, `${name} size`).toBeGreaterThan(maxBytes / 2);
    }
  });

  it('keeps counting from the highest rolled file after a restart, never overwriting one', async () => {
    const day = utcDay();
    const earlier = join(fixture.workspace.logDir, `test_gw_traffic_${day}-1.log`);
    await mkdir(fixture.workspace.logDir, { recursive: true });
    const earlierLine = earlierRunLine('an earlier run');
    await writeFile(earlier, earlierLine);

    const first = await start({ trafficLog: { maxFileSizeMb: 0.02 } });
    await sendRequests(first, 20, 5);
    expect(await first.stop()).toBe(0);
    const afterFirst = rolledNumbers(await readdir(fixture.workspace.logDir), day);
    expect(afterFirst.slice(0, 2)).toEqual([1, 2]);
    expect(afterFirst).toEqual(afterFirst.map((_, index) => index + 1));
    const lastOfFirstRun = afterFirst[afterFirst.length - 1] as number;
    const lastFileOfFirstRun = await readFile(join(fixture.workspace.logDir, `test_gw_traffic_${day}-${lastOfFirstRun}.log`), 'utf8');

    const second = await start({ trafficLog: { maxFileSizeMb: 0.02 } });
    await sendRequests(second, 20, 5);
    expect(await second.stop()).toBe(0);
    const afterSecond = rolledNumbers(await readdir(fixture.workspace.logDir), day);
    expect(afterSecond.length).toBeGreaterThan(afterFirst.length);
    expect(afterSecond).toEqual(afterSecond.map((_, index) => index + 1));

    expect(await readFile(earlier, 'utf8')).toBe(earlierLine);
    expect(await readFile(join(fixture.workspace.logDir, `test_gw_traffic_${day}-${lastOfFirstRun}.log`), 'utf8')).toBe(lastFileOfFirstRun);
    const files = await readLogFiles();
    expect([...files.values()].flat().filter((line) => line.transactionSummary !== undefined)).toHaveLength(40);
  });
});

interface OldItem {
  /** Relative to the workspace. */
  path: string;
  /** The time the quota orders by: mtime for a log file, the folder's minute for payloads. */
  time: number;
}

const KB10 = Buffer.alloc(10 * 1024, 0x62);

/** A rolled log file (one line) or a payload minute folder holding 10 KB, dated `time`. */
async function createOld(item: OldItem): Promise<void> {
  const isLog = item.path.startsWith('logs/');
  const file = isLog ? fixture.workspace.path(item.path) : fixture.workspace.path(item.path, `0000000000000000000000${item.path.length}-1-received`);
  await mkdir(dirname(file), { recursive: true });
  await writeFile(file, isLog ? earlierRunLine('b'.repeat(KB10.length - earlierRunLine('').length)) : KB10);
  if (isLog) await utimes(file, item.time / 1000, item.time / 1000);
}

async function exists(path: string): Promise<boolean> {
  return stat(path).then(
    () => true,
    () => false,
  );
}

async function treeBytes(path: string): Promise<number> {
  const info = await stat(path).catch(() => null);
  if (info === null) return 0;
  if (!info.isDirectory()) return info.size;
  let total = 0;
  // The quota may delete a folder while it is being summed.
  for (const name of await readdir(path).catch(() => [])) total += await treeBytes(join(path, name));
  return total;
}

/** What the quota counts: traffic log files in the log directory and everything under the payload directory. */
async function quotaBytes(): Promise<number> {
  const names = (await readdir(fixture.workspace.logDir)).filter((name) => /_traffic(_\d{4}-\d{2}-\d{2}-\d+)?\.log$/.test(name));
  let total = await treeBytes(fixture.workspace.payloadDir);
  for (const name of names) total += await treeBytes(join(fixture.workspace.logDir, name));
  return total;
}

describe('disk quota', () => {
  it('deletes the oldest rolled files and payload folders first until the total is under maxDiskSpaceMb', async () => {
    const maxBytes = 0.05 * MB;
    const hour = 3_600_000;
    // Oldest first; log files and payload folders interleaved, so the order is by age, not by kind.
    const old: OldItem[] = [
      { path: 'payloads/2020-01-01/00.00', time: Date.parse('2020-01-01T00:00:00Z') },
      { path: 'logs/test_gw_traffic_2020-01-01-1.log', time: Date.parse('2020-01-01T06:00:00Z') },
      { path: 'payloads/2020-01-01/12.00', time: Date.parse('2020-01-01T12:00:00Z') },
      { path: 'logs/test_other_traffic_2020-01-02-1.log', time: Date.parse('2020-01-02T00:00:00Z') },
      { path: 'payloads/2020-01-03/00.00', time: Date.parse('2020-01-03T00:00:00Z') },
      { path: `logs/test_gw_traffic_${utcDay(Date.now() - 2 * hour)}-9.log`, time: Date.now() - 2 * hour },
    ];
    for (const item of old) await createOld(item);
    // Not a traffic log file: neither counted nor deleted.
    await writeFile(fixture.workspace.path('logs', 'notes.txt'), KB10);
    expect(await quotaBytes()).toBeGreaterThan(maxBytes);

    const gw = await start({ trafficLog: { maxDiskSpaceMb: 0.05, diskCheckIntervalSec: 1, payloads: { enabled: true } } });
    const ids = await sendRequests(gw, 6, 3);
    await eventually(async () => (byTransaction(await currentLines()).size === ids.length ? true : undefined), 5_000, 'the log lines');
    await eventually(async () => ((await quotaBytes()) <= maxBytes ? true : undefined), 5_000, 'the total to be under the quota');
    expect(await gw.stop()).toBe(0);

    const survived = await Promise.all(old.map((item) => exists(fixture.workspace.path(item.path))));
    const deleted = survived.filter((kept) => !kept).length;
    expect(deleted).toBeGreaterThanOrEqual(3);
    // Oldest first: everything deleted is older than everything kept.
    expect(survived).toEqual(old.map((_, index) => index >= deleted));

    expect(await exists(fixture.workspace.path('logs', 'notes.txt'))).toBe(true);
    const current = byTransaction(await currentLines());
    for (const id of ids) expect(current.get(id)?.lines, `${id} in the current log file`).toHaveLength(4);
    const payloads = await fixture.workspace.payloadFiles();
    for (const id of ids) expect(payloads.filter((file) => file.includes(id))).toHaveLength(2);
    expect(await quotaBytes()).toBeLessThanOrEqual(maxBytes);
  });

  it('never deletes the current log file, even when it alone is over the quota', async () => {
    await createOld({ path: 'logs/test_gw_traffic_2020-01-01-1.log', time: Date.parse('2020-01-01T00:00:00Z') });
    const gw = await start({ trafficLog: { maxDiskSpaceMb: 0.005, diskCheckIntervalSec: 1 } });
    const ids = await sendRequests(gw, 10, 5);
    await eventually(async () => ((await exists(fixture.workspace.path('logs/test_gw_traffic_2020-01-01-1.log'))) ? undefined : true), 5_000, 'the old file to go');
    await eventually(async () => (byTransaction(await currentLines()).size === ids.length ? true : undefined), 5_000, 'the log lines');
    expect(await treeBytes(join(fixture.workspace.logDir, CURRENT))).toBeGreaterThan(0.005 * MB);
    // Two more checks with the current file alone over the quota once they have deleted an old
    // file put there for each: their deleting it shows they ran.
    for (const day of ['2020-01-02', '2020-01-03']) {
      const path = `logs/test_gw_traffic_${day}-1.log`;
      await createOld({ path, time: Date.parse(`${day}T00:00:00Z`) });
      await eventually(async () => ((await exists(fixture.workspace.path(path))) ? undefined : true), 5_000, `the check deleting ${path}`);
      expect(await exists(fixture.workspace.path('logs', CURRENT))).toBe(true);
    }
    expect(await gw.stop()).toBe(0);

    expect(await readdir(fixture.workspace.logDir)).toEqual([CURRENT]);
    expect(await treeBytes(join(fixture.workspace.logDir, CURRENT))).toBeGreaterThan(0.005 * MB);
    expect(byTransaction(await fixture.workspace.logLines()).size).toBe(ids.length);
  });
});
