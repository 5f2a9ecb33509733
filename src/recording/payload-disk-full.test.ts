import { readdir, readFile } from 'node:fs/promises';
import { basename, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Agent, request } from 'undici';
import { describe, expect, it } from 'vitest';
import { baseConfig } from '../../test/support/backends.js';
import { useGatewayFixture } from '../../test/support/fixture.js';
import { byTransaction } from '../../test/support/gateway-process.js';
import { useMounts } from '../../test/support/mounts.js';

const fixture = useGatewayFixture({ demo: true });
const mounts = useMounts();

const REQUESTS = 300;
const CONCURRENCY = 10;

/**
 * A body of its own for request `n`, so every stored file can be matched to what passed. The
 * first 20 are 100 KB, streamed to their files as they pass: they fill the disk, one of them in
 * the middle of a write. The rest are 8 KB, held and then written by the payload writer.
 */
function bodyOf(n: number): string {
  const bytes = n < 20 ? 100 * 1024 : 8 * 1024;
  return `${String(n).padStart(6, '0')}:`.repeat(Math.ceil(bytes / 7)).slice(0, bytes);
}

/** 'the same', or how a stored body differs from the one that passed (short, unlike a diff of two 100 KB strings). */
function sameBytes(stored: string, passed: string | undefined): string {
  return stored === passed ? 'the same' : `${stored.length} bytes stored of ${passed?.length} that passed`;
}

const PLACES = [
  [0, 'recvPayload'],
  [1, 'sentPayload'],
  [1, 'recvPayload'],
  [0, 'sentPayload'],
] as const;

const disks = [
  { disk: 'a 1 MB disk that fills up', options: 'size=1m' },
  { disk: 'a disk out of inodes', options: 'size=10m,nr_inodes=64' },
];

describe('payload files on a full disk', () => {
  it.each(disks)('on $disk: answers every request, logs write-failed for bodies not stored and links to whole files for those stored, reports in a few lines, stops cleanly', async ({ options }) => {
    const payloadDisk = fixture.workspace.path('payload-disk');
    mounts.tmpfs(payloadDisk, options);
    const gw = await fixture.start(baseConfig(fixture.workspace, fixture.demo.url, { trafficLog: { payloads: { enabled: true, directory: payloadDisk } } }));

    const agent = new Agent({ connections: CONCURRENCY });
    const sentBodies = new Map<string, string>();
    const statuses: number[] = [];
    for (let sent = 0; sent < REQUESTS; sent += CONCURRENCY) {
      await Promise.all(
        Array.from({ length: CONCURRENCY }, async (_, i) => {
          const body = bodyOf(sent + i);
          const response = await request(`${gw.url}/api/echo`, { method: 'POST', body, headers: { 'content-type': 'application/octet-stream' }, dispatcher: agent });
          expect(await response.body.text()).toBe(body);
          statuses.push(response.statusCode);
          sentBodies.set(response.headers['x-correlation-id'] as string, body);
        }),
      );
    }
    await agent.close();
    expect(statuses.filter((status) => status !== 200)).toEqual([]);
    expect(await gw.stop()).toBe(0);

    const transactions = byTransaction(await fixture.workspace.logLines());
    expect(transactions.size).toBe(REQUESTS);
    let stored = 0;
    const notStored = new Map<string, number>();
    for (const [id, { legs }] of transactions) {
      for (const [leg, field] of PLACES) {
        const info = legs[leg]!.protocolInfo;
        const where = `${id} leg ${leg} ${field}`;
        if (info[field] === null) {
          // write-failed; or queue-full when the writer fell more than maxWriteDelayMs behind (a loaded machine).
          const reason = info[`${field}NotStored`] as string;
          expect(['write-failed', 'queue-full'], where).toContain(reason);
          notStored.set(reason, (notStored.get(reason) ?? 0) + 1);
          continue;
        }
        // A link is only ever given to a whole file.
        expect(sameBytes(await readFile(fileURLToPath(info[field]), 'utf8'), sentBodies.get(id)), where).toBe('the same');
        expect(info[`${field}NotStored`] ?? null, where).toBeNull();
        stored++;
      }
    }
    expect(stored).toBeGreaterThan(0);
    expect(notStored.get('write-failed')).toBeGreaterThan(0);
    // No file is left behind under a body's name that holds less than the body.
    const files = (await readdir(payloadDisk, { recursive: true, withFileTypes: true })).filter((entry) => entry.isFile());
    for (const file of files) {
      const id = basename(file.name).split('-')[0] as string;
      expect(sameBytes(await readFile(join(file.parentPath, file.name), 'utf8'), sentBodies.get(id)), file.name).toBe('the same');
    }

    // One report when the disk filled, one count at shutdown: never a line per file.
    const stderrLines = gw.stderr.split('\n').filter((line) => line !== '');
    const diskLines = stderrLines.filter((line) => line.includes('ENOSPC'));
    expect(diskLines[0]).toMatch(/payload store: .*ENOSPC: no space left on device/);
    expect(diskLines.length).toBeLessThanOrEqual(3);
    expect(stderrLines.filter((line) => line.includes('payload store') && !line.includes('ENOSPC'))).toEqual([]);
    expect(stderrLines.length).toBeLessThanOrEqual(8);
  });
});
