import { mkdir, readFile, rename, rm, rmdir, unlink } from 'node:fs/promises';
import { performance } from 'node:perf_hooks';
import { request } from 'undici';
import { describe, expect, it } from 'vitest';
import { baseConfig } from '../../test/support/backends.js';
import { assertTrafficLogContract, checkTrafficLines } from '../../test/support/event-log-contract.js';
import { useGatewayFixture } from '../../test/support/fixture.js';
import { eventually, type GatewayProcess, type LogLine } from '../../test/support/gateway-process.js';
import { useMounts } from '../../test/support/mounts.js';

const fixture = useGatewayFixture({ demo: true });
const mounts = useMounts();

/** How often the gateway checks that its file is still where it belongs (append-file.ts). */
const CHECK_PATH_MS = 100;

function currentFile(instance = 'gw'): string {
  return fixture.workspace.path('logs', `test_${instance}_traffic.log`);
}

function start(overrides: Record<string, any> = {}): Promise<GatewayProcess> {
  return fixture.start(baseConfig(fixture.workspace, fixture.demo.url, overrides));
}

/** One GET, answered 200, on a new connection when `newConnection` (workers take turns per connection); returns its correlation id. */
async function get(gw: GatewayProcess, newConnection = false): Promise<string> {
  const response = await request(`${gw.url}/api/pets/1`, { reset: newConnection });
  await response.body.text();
  expect(response.statusCode).toBe(200);
  return response.headers['x-correlation-id'] as string;
}

async function getMany(gw: GatewayProcess, count: number, newConnection = false): Promise<string[]> {
  const ids: string[] = [];
  for (let i = 0; i < count; i++) ids.push(await get(gw, newConnection));
  return ids;
}

/** The lines of a log file, checked against the schema; none when it cannot be read. */
async function linesOf(path: string): Promise<LogLine[]> {
  const text = await readFile(path, 'utf8').catch(() => '');
  const { lines, problems } = checkTrafficLines(text, path);
  assertTrafficLogContract(problems);
  return lines as LogLine[];
}

function summaryIds(lines: LogLine[]): string[] {
  return lines.filter((line) => line.transactionSummary !== undefined).map((line) => line.correlationId);
}

function traces(lines: LogLine[]): string[] {
  return lines.flatMap((line) => (line.trace === undefined ? [] : [`${line.trace.level} ${line.trace.data}`]));
}

/** Waits until the file at `path` holds the summaries of all `ids`; returns its lines. */
function untilLogged(path: string, ids: string[], timeoutMs = 5_000): Promise<LogLine[]> {
  return eventually(
    async () => {
      const lines = await linesOf(path);
      const logged = new Set(summaryIds(lines));
      return ids.every((id) => logged.has(id)) ? lines : undefined;
    },
    timeoutMs,
    `${ids.length} transaction(s) in ${path}`,
  );
}

function untilStderr(gw: GatewayProcess, pattern: RegExp): Promise<true> {
  return eventually(async () => (pattern.test(gw.stderr) ? true : undefined), 5_000, `standard error to match ${pattern}`);
}

function countMatches(text: string, pattern: RegExp): number {
  return text.split('\n').filter((line) => pattern.test(line)).length;
}

function sorted(ids: string[]): string[] {
  return [...ids].sort();
}

describe('a traffic log file that cannot be opened', () => {
  it('keeps proxying while a directory stands where the log file belongs, and writes every waiting line once it is gone', async () => {
    const current = currentFile();
    await mkdir(current, { recursive: true });
    const gw = await start();
    await untilStderr(gw, /EISDIR/);
    const duringOutage = await getMany(gw, 30);
    expect(gw.stderr).toContain(`traffic log: EISDIR: illegal operation on a directory, open '${current}'`);

    await rmdir(current);
    // Opening is retried every second.
    const lines = await untilLogged(current, duringOutage, 3_000);
    expect(traces(lines)).toContain(`INFO gateway gw started (pid ${gw.pid}), serving ${gw.url}`);
    const afterwards = await getMany(gw, 5);
    expect(await gw.stop()).toBe(0);

    expect(sorted(summaryIds(await linesOf(current)))).toEqual(sorted([...duringOutage, ...afterwards]));
    // Once when it began, once more with the count of the retries that failed like it at shutdown.
    expect(countMatches(gw.stderr, /EISDIR/)).toBeLessThanOrEqual(2);
    expect(gw.stderr).toMatch(/EISDIR.*: \d+ more like it/);
  });

  it('keeps proxying while the log directory becomes read-only, and writes every waiting line once it is writable again', async () => {
    const current = currentFile();
    const gw = await start();
    const beforeOutage = await getMany(gw, 5);
    await untilLogged(current, beforeOutage);

    // A read-only file system over the log directory. (Remounting the disk the gateway writes
    // read-only is refused while it has a file open for writing: "mount point is busy".)
    mounts.tmpfs(fixture.workspace.logDir, 'ro,size=1m');
    const untilRefused: string[] = [];
    await eventually(
      async () => {
        untilRefused.push(await get(gw));
        return /EROFS/.test(gw.stderr) ? true : undefined;
      },
      5_000,
      'the gateway to report EROFS',
    );
    const duringOutage = await getMany(gw, 30);
    expect(gw.stderr).toContain(`${current} was deleted or moved away; writing to a new file`);
    expect(gw.stderr).toContain(`traffic log: EROFS: read-only file system, open '${current}'`);

    mounts.remount(fixture.workspace.logDir, 'rw');
    await untilLogged(current, duringOutage, 3_000);
    const afterwards = await getMany(gw, 5);
    expect(await gw.stop()).toBe(0);

    // Lines written before the gateway noticed stayed in the file beneath the read-only mount;
    // the rest, during the outage included, went to the new file once it could be made.
    const onNewDisk = summaryIds(await linesOf(current));
    mounts.unmount(fixture.workspace.logDir);
    const onOldDisk = summaryIds(await linesOf(current));
    expect(sorted([...onOldDisk, ...onNewDisk])).toEqual(sorted([...beforeOutage, ...untilRefused, ...duringOutage, ...afterwards]));
    for (const id of [...duringOutage, ...afterwards]) expect(onNewDisk).toContain(id);
    expect(countMatches(gw.stderr, /EROFS/)).toBeLessThanOrEqual(2);
  });
});

interface MovedAway {
  how: string;
  /** Moves the current file away; returns where its lines can still be read, or null when they are gone. */
  move(current: string): Promise<string | null>;
}

const movedAway: MovedAway[] = [
  {
    how: 'the current file is deleted',
    move: async (current) => {
      await unlink(current);
      return null;
    },
  },
  {
    how: 'the current file is renamed',
    move: async (current) => {
      await rename(current, `${current}.moved`);
      return `${current}.moved`;
    },
  },
  {
    how: 'the whole log directory is deleted',
    move: async () => {
      await rm(fixture.workspace.logDir, { recursive: true });
      return null;
    },
  },
];

describe('a traffic log file moved away under the gateway', () => {
  it.each(movedAway)('writes to a new file at the configured path within 100 ms when $how', async ({ move }) => {
    const current = currentFile();
    const gw = await start();
    const before = await getMany(gw, 5);
    await untilLogged(current, before);

    const oldFile = await move(current);
    const movedAt = performance.now();
    const sent: { id: string; at: number }[] = [];
    while (performance.now() - movedAt < 4 * CHECK_PATH_MS) {
      const at = performance.now();
      sent.push({ id: await get(gw), at });
    }
    // Appended after the next path check at the latest: in the new file, none in the old one.
    const later = sent.filter(({ at }) => at - movedAt > CHECK_PATH_MS).map(({ id }) => id);
    expect(later.length).toBeGreaterThan(0);
    const lines = await untilLogged(current, later);
    expect(traces(lines)).toContain(`INFO ${current} was deleted or moved away; writing to a new file`);
    expect(gw.stderr).toContain(`${current} was deleted or moved away; writing to a new file`);
    expect(await gw.stop()).toBe(0);

    const inNewFile = summaryIds(await linesOf(current));
    expect(inNewFile.filter((id) => before.includes(id))).toEqual([]);
    if (oldFile !== null) {
      // Nothing is lost: every transaction is in exactly one of the two files.
      const inOldFile = summaryIds(await linesOf(oldFile));
      expect(sorted([...inOldFile, ...inNewFile])).toEqual(sorted([...before, ...sent.map(({ id }) => id)]));
      expect(inOldFile.filter((id) => later.includes(id))).toEqual([]);
    }
  });
});

describe('SIGHUP', () => {
  it('reopens the log at its configured path after a rotator renamed it, losing nothing, and the gateway keeps running', async () => {
    const current = currentFile();
    const gw = await start();
    const before = await getMany(gw, 10);
    await untilLogged(current, before);

    await rename(current, `${current}.1`);
    process.kill(gw.pid, 'SIGHUP');
    await untilStderr(gw, /reopening the traffic log and payload files \(SIGHUP\)/);
    const after = await getMany(gw, 10);
    const lines = await untilLogged(current, after);
    expect(traces(lines)).toContain('INFO reopening the traffic log and payload files (SIGHUP)');
    expect(gw.child.exitCode).toBeNull();
    expect(await gw.stop()).toBe(0);

    expect(sorted(summaryIds(await linesOf(`${current}.1`)))).toEqual(sorted(before));
    expect(sorted(summaryIds(await linesOf(current)))).toEqual(sorted(after));
    // The signal reopened the file, not the check for a file moved away.
    expect(gw.stderr).not.toContain('moved away');
  });

  it('reaches every worker through the primary, each reopening its own file', async () => {
    const gw = await start({ gateway: { workers: 2 } });
    const files = [currentFile('gw-1'), currentFile('gw-2')];
    const before: string[] = [];
    await eventually(
      async () => {
        before.push(await get(gw, true));
        const logged = await Promise.all(files.map(async (file) => summaryIds(await linesOf(file)).length));
        return logged.every((count) => count > 0) && logged.reduce((a, b) => a + b) === before.length ? true : undefined;
      },
      10_000,
      'a transaction in each worker file',
    );

    for (const file of files) await rename(file, `${file}.1`);
    process.kill(gw.pid, 'SIGHUP');
    await untilStderr(gw, /\[gw-1\] reopening the traffic log/);
    await untilStderr(gw, /\[gw-2\] reopening the traffic log/);
    const after: string[] = [];
    await eventually(
      async () => {
        after.push(await get(gw, true));
        const logged = await Promise.all(files.map(async (file) => summaryIds(await linesOf(file)).length));
        return logged.every((count) => count > 0) && logged.reduce((a, b) => a + b) === after.length ? true : undefined;
      },
      10_000,
      'a transaction in each new worker file',
    );
    expect(gw.stderr).not.toMatch(/exited|moved away/);
    expect(await gw.stop()).toBe(0);

    const rotated = (await Promise.all(files.map((file) => linesOf(`${file}.1`)))).map(summaryIds);
    const fresh = (await Promise.all(files.map((file) => linesOf(file)))).map(summaryIds);
    expect(sorted(rotated.flat())).toEqual(sorted(before));
    expect(sorted(fresh.flat())).toEqual(sorted(after));
    for (const [index, file] of files.entries()) {
      const worker = `gw-${index + 1}`;
      expect(traces(await linesOf(file)), file).toContain('INFO reopening the traffic log and payload files (SIGHUP)');
      for (const line of [...(await linesOf(`${file}.1`)), ...(await linesOf(file))]) expect(line.processInfo.serviceId).toBe(worker);
    }
  });
});
