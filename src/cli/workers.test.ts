import { readdir, readFile } from 'node:fs/promises';
import { request } from 'undici';
import { describe, expect, it } from 'vitest';
import { baseConfig } from '../../test/support/backends.js';
import { useGatewayFixture } from '../../test/support/fixture.js';
import { eventually, type GatewayProcess, type LogLine } from '../../test/support/gateway-process.js';

const fixture = useGatewayFixture();

async function startWorkers(count: number): Promise<GatewayProcess> {
  const echo = await fixture.backend((_, response) => response.end('ok'));
  return fixture.start(baseConfig(fixture.workspace, echo.url, { gateway: { workers: count } }));
}

/** The primary's child processes by worker index (from the environment the primary gave each). */
async function workerPids(primary: number): Promise<Map<number, number>> {
  const workers = new Map<number, number>();
  for (const name of await readdir('/proc')) {
    if (!/^\d+$/.test(name)) continue;
    // A process may end while it is read.
    const stat = await readFile(`/proc/${name}/stat`, 'utf8').catch(() => '');
    // The parent pid is the second field after the command name, which may hold spaces.
    const parent = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
    if (parent !== primary) continue;
    const environment = await readFile(`/proc/${name}/environ`, 'utf8').catch(() => '');
    const index = /(?:^|\0)TOLLGATE_WORKER_INDEX=(\d+)\0/.exec(environment)?.[1];
    if (index !== undefined) workers.set(Number(index), Number(name));
  }
  return workers;
}

function isRunning(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

/** Each worker log file's lines, parsed, by file name. */
async function linesByFile(): Promise<Map<string, LogLine[]>> {
  const files = new Map<string, LogLine[]>();
  for (const name of (await readdir(fixture.workspace.logDir).catch(() => [] as string[])).sort()) {
    const text = await readFile(fixture.workspace.path('logs', name), 'utf8');
    files.set(
      name,
      text
        .split('\n')
        .filter((line) => line !== '')
        .map((line) => JSON.parse(line) as LogLine),
    );
  }
  return files;
}

function summaryIds(lines: LogLine[] | undefined): string[] {
  return (lines ?? []).filter((line) => line.transactionSummary !== undefined).map((line) => line.correlationId);
}

/** A GET on a new connection, so that the primary hands it to the next worker. */
async function getOnNewConnection(gw: GatewayProcess): Promise<string> {
  const response = await request(`${gw.url}/api/x`, { reset: true });
  expect(await response.body.text()).toBe('ok');
  expect(response.statusCode).toBe(200);
  return response.headers['x-correlation-id'] as string;
}

describe('workers', () => {
  it('spreads connections over the workers, each with its own log file, and stops them all on SIGTERM', async () => {
    const gw = await startWorkers(2);
    const pids = await eventually(async () => {
      const found = await workerPids(gw.pid);
      return found.size === 2 ? found : undefined;
    }, 5_000, 'two workers');
    const ids: string[] = [];
    for (let i = 0; i < 40; i++) ids.push(await getOnNewConnection(gw));
    expect(await gw.stop()).toBe(0);
    expect([...pids.values()].filter(isRunning)).toEqual([]);

    const files = await linesByFile();
    expect([...files.keys()]).toEqual(['test_gw-1_traffic.log', 'test_gw-2_traffic.log']);
    const logged: string[] = [];
    for (const [index, lines] of [...files.values()].entries()) {
      const summaries = summaryIds(lines);
      expect(summaries.length).toBeGreaterThan(0);
      expect(new Set(lines.map((line) => line.processInfo.serviceId))).toEqual(new Set([`gw-${index + 1}`]));
      logged.push(...summaries);
    }
    expect(logged.sort()).toEqual([...ids].sort());
    expect(new Set(ids).size).toBe(40);
  });

  it('starts a new worker in place of one that was killed, keeps serving and recording, and still exits 0 on SIGTERM', async () => {
    const gw = await startWorkers(2);
    const before = await eventually(async () => {
      const found = await workerPids(gw.pid);
      return found.size === 2 ? found : undefined;
    }, 5_000, 'two workers');
    const killed = before.get(1)!;

    process.kill(killed, 'SIGKILL');
    await eventually(async () => (gw.stderr.includes('worker gw-1 exited (SIGKILL); starting a new one') ? true : undefined), 5_000, 'the primary to notice');
    const replacement = await eventually(async () => {
      const pid = (await workerPids(gw.pid)).get(1);
      return pid !== undefined && pid !== killed ? pid : undefined;
    }, 5_000, 'a new worker gw-1');
    expect(isRunning(killed)).toBe(false);
    expect((await workerPids(gw.pid)).get(2)).toBe(before.get(2));

    // Every request is served; the new worker takes its share once it listens, into gw-1's log.
    const ids: string[] = [];
    await eventually(
      async () => {
        ids.push(await getOnNewConnection(gw));
        return summaryIds((await linesByFile()).get('test_gw-1_traffic.log')).length > 0 ? true : undefined;
      },
      10_000,
      'a transaction recorded by the new worker',
    );
    for (let i = 0; i < 4; i++) ids.push(await getOnNewConnection(gw));

    expect(await gw.stop()).toBe(0);
    expect([replacement, before.get(2)!].filter(isRunning)).toEqual([]);
    expect(gw.stderr).not.toMatch(/failed to start/);
    const files = await linesByFile();
    const logged = [...files.values()].flatMap(summaryIds);
    expect(logged.sort()).toEqual([...ids].sort());
    expect(summaryIds(files.get('test_gw-1_traffic.log')).length).toBeGreaterThan(0);
    expect(summaryIds(files.get('test_gw-2_traffic.log')).length).toBeGreaterThan(0);
  });
});
