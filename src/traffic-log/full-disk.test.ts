import { execFileSync } from 'node:child_process';
import { mkdirSync } from 'node:fs';
import { Agent, request } from 'undici';
import { afterEach, describe, expect, it } from 'vitest';
import { baseConfig } from '../../test/support/backends.js';
import { useGatewayFixture } from '../../test/support/fixture.js';

const fixture = useGatewayFixture({ demo: true });
let mounted: string | undefined;

/** A 1 MB file system of its own, so the disk can really fill up. */
function tinyDisk(): string {
  const path = fixture.workspace.path('tiny');
  mkdirSync(path);
  try {
    execFileSync('mount', ['-t', 'tmpfs', '-o', 'size=1m', 'tmpfs', path], { stdio: 'pipe' });
  } catch (error) {
    throw new Error(`this test mounts a 1 MB tmpfs to fill a disk and needs root for it: ${(error as Error).message}`);
  }
  mounted = path;
  return path;
}

afterEach(() => {
  // Lazily: a gateway left running by a failed test may still hold files there.
  if (mounted !== undefined) execFileSync('umount', ['-l', mounted]);
  mounted = undefined;
});

describe('a full disk under the traffic log', () => {
  it('keeps proxying, reports the failure once per interval, and still shuts down cleanly', async () => {
    const disk = tinyDisk();
    const gateway = await fixture.start(baseConfig(fixture.workspace, fixture.demo.url, { trafficLog: { directory: `${disk}/logs` } }));
    const agent = new Agent({ connections: 8 });
    const statuses = new Map<number, number>();
    // About 3 KB of log lines each: far more than the disk holds.
    for (let batch = 0; batch < 40; batch++) {
      await Promise.all(
        Array.from({ length: 25 }, async () => {
          const response = await request(`${gateway.url}/api/hello`, { dispatcher: agent });
          await response.body.text();
          statuses.set(response.statusCode, (statuses.get(response.statusCode) ?? 0) + 1);
        }),
      );
    }
    await agent.close();

    expect([...statuses]).toEqual([[200, 1000]]);
    expect(gateway.stderr).toMatch(/traffic log: ENOSPC/);
    expect(gateway.stderr.match(/ENOSPC/g)?.length ?? 0).toBeLessThan(5);
    expect(await gateway.stop()).toBe(0);
  });
});
