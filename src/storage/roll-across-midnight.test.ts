import { existsSync, readdirSync } from 'node:fs';
import { readdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { request } from 'undici';
import { describe, expect, it } from 'vitest';
import { baseConfig } from '../../test/support/backends.js';
import { assertTrafficLogContract, checkTrafficLines } from '../../test/support/event-log-contract.js';
import { useGatewayFixture } from '../../test/support/fixture.js';
import { byTransaction, delay, eventually, type GatewayProcess, type LogLine } from '../../test/support/gateway-process.js';

const fixture = useGatewayFixture({ demo: true });

/**
 * The gateway's clock starts here (libfaketime): 5 s before midnight UTC, as starting the gateway
 * takes up to about a second on a loaded machine and a request must be answered before midnight.
 */
const FAKE_START = '2026-11-22 23:59:55';
const MIDNIGHT = Date.parse('2026-11-23T00:00:00Z');

/** libfaketime.so.1 of the Debian package `faketime`, under any architecture's library directory. */
function libfaketime(): string {
  const libraries = readdirSync('/usr/lib').map((triplet) => join('/usr/lib', triplet, 'faketime', 'libfaketime.so.1'));
  const found = libraries.find((library) => existsSync(library));
  if (found === undefined) throw new Error('libfaketime is missing (/usr/lib/<arch>/faketime/libfaketime.so.1): install the Debian package faketime (apt-get install -y faketime), as .ci/run does');
  return found;
}

async function linesOf(name: string): Promise<LogLine[]> {
  const path = join(fixture.workspace.logDir, name);
  const { lines, problems } = checkTrafficLines(await readFile(path, 'utf8'), path);
  assertTrafficLogContract(problems);
  return lines as LogLine[];
}

async function get(gw: GatewayProcess, path: string): Promise<string> {
  const response = await request(`${gw.url}${path}`);
  await response.body.text();
  expect(response.statusCode).toBe(200);
  return response.headers['x-correlation-id'] as string;
}

describe('rolling the traffic log across midnight', () => {
  it('names each rolled file for the UTC day of its roll, numbering from 1 again on the new day', async () => {
    // About 8 KB per file: a transaction with a 6 KB query rolls the file before it; a plain one
    // and the shutdown's trace lines fit after it.
    const gw = await fixture.start(baseConfig(fixture.workspace, fixture.demo.url, { trafficLog: { maxFileSizeMb: 8 / 1024 } }), {
      LD_PRELOAD: libfaketime(),
      FAKETIME: `@${FAKE_START}`,
      TZ: 'UTC',
    });
    const listeningSeenAt = Date.now();
    const started = await eventually(async () => (await linesOf('test_gw_traffic.log').catch(() => []))[0], 5_000, 'the start trace line');
    expect(started.trace?.data, 'the first line: the start trace').toMatch(/^gateway gw started/);
    const startedAt = started.timestamp;
    expect(startedAt, `the gateway's clock (libfaketime) at start: ${new Date(startedAt).toISOString()}`).toBeGreaterThanOrEqual(Date.parse(`${FAKE_START.replace(' ', 'T')}Z`));
    expect(startedAt, `the gateway started ${startedAt - MIDNIGHT} ms after midnight`).toBeLessThan(MIDNIGHT);

    const beforeMidnight = await get(gw, `/api/pets/1?pad=${'a'.repeat(6000)}`);
    // The gateway's clock runs at the real pace from a start it stamped before we saw it listen:
    // once this much real time has passed, its clock is past midnight.
    await delay(Math.max(0, MIDNIGHT - startedAt - (Date.now() - listeningSeenAt)) + 100);
    const afterMidnight = await get(gw, '/api/pets/2');
    expect(await gw.stop()).toBe(0);

    const names = (await readdir(fixture.workspace.logDir)).sort();
    expect(names).toEqual(['test_gw_traffic.log', 'test_gw_traffic_2026-11-22-1.log', 'test_gw_traffic_2026-11-23-1.log']);
    const [current, beforeRoll, afterRoll] = await Promise.all(names.map(linesOf));
    const first = byTransaction(afterRoll!).get(beforeMidnight);
    expect(first?.summary, 'the transaction before midnight').toBeDefined();
    expect(first!.lines[0]!.timestamp, 'the first transaction was answered before midnight').toBeLessThan(MIDNIGHT);
    expect(byTransaction(current!).get(afterMidnight)!.lines[0]!.timestamp).toBeGreaterThanOrEqual(MIDNIGHT);
    // The roll before midnight moved the start trace away; the one after midnight, the first transaction.
    expect(beforeRoll!.filter((line) => line.trace === undefined)).toEqual([]);
    expect([...byTransaction(afterRoll!).keys()]).toEqual([beforeMidnight]);
    expect([...byTransaction(current!).keys()]).toEqual([afterMidnight]);
  });
});
