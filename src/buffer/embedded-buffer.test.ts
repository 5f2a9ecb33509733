import { createHash } from 'node:crypto';
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { decodeBatch } from '../analytics/codec.js';
import { Spool, SPOOL_FILE } from './spool.js';
import { analyticsRecordProblems, idCounts, spooledRecords } from '../../test/support/analytics-contract.js';
import { baseConfig } from '../../test/support/backends.js';
import { useGatewayFixture } from '../../test/support/fixture.js';
import { eventually } from '../../test/support/gateway-process.js';
import { useMounts } from '../../test/support/mounts.js';

const fixture = useGatewayFixture();
const mounts = useMounts();

async function bufferConfig(buffer: Record<string, unknown>, analytics: Record<string, unknown> = {}): Promise<Record<string, any>> {
  const { workspace } = fixture;
  const backend = await fixture.backend((_request, response) => response.end('ok'));
  return baseConfig(workspace, backend.url, { analytics: { ...analytics, buffer: { type: 'embedded', directory: workspace.path('spool'), ...buffer } } });
}

async function get(url: string, headers: Record<string, string> = {}): Promise<{ status: number; id: string; body: string }> {
  const response = await fetch(url, { headers });
  return { status: response.status, id: response.headers.get('x-correlation-id') ?? '', body: await response.text() };
}

function droppedAtStop(stderr: string): number {
  return Number(/(\d+) analytics record\(s\) dropped by the analytics buffer/.exec(stderr)?.[1] ?? 0);
}

describe('the embedded analytics buffer', () => {
  it('keeps every answered transaction once, as records of the published schema, with the caller key only as its hash', async () => {
    const key = 'key-that-must-never-be-stored';
    const keyHash = createHash('sha256').update(key).digest('hex');
    const gateway = await fixture.start(await bufferConfig({}, { apiKeyHeader: 'X-Api-Key', keyAliases: { [keyHash]: 'mobile-app' } }));
    const answered = await Promise.all(Array.from({ length: 300 }, (_, n) => get(`${gateway.url}/api/items/${n}`, { 'X-Api-Key': key })));
    expect(answered.every((answer) => answer.status === 200)).toBe(true);
    expect(await gateway.stop()).toBe(0);

    const directory = fixture.workspace.path('spool');
    const records = spooledRecords(directory);
    expect(analyticsRecordProblems(records)).toEqual([]);
    const counts = idCounts(records);
    expect(counts.size).toBe(300);
    expect(answered.filter((answer) => counts.get(answer.id) !== 1)).toEqual([]);
    expect(records.every((record) => record.apiKeyHash === keyHash && record.apiKeyAlias === 'mobile-app')).toBe(true);
    expect(records.find((record) => record.path === '/api/items/7')?.normalisedPath).toBe('/api/items/{id}');
    for (const file of readdirSync(directory)) expect(readFileSync(join(directory, file)).includes(key)).toBe(false);
  });

  it('whenFull dropNewest: keeps serving, keeps the first records, and counts the rest as dropped', async () => {
    const gateway = await fixture.start(await bufferConfig({ maxSizeMb: 0.004, batchSize: 1, fsyncIntervalMs: 5 }));
    const answered = [];
    for (let n = 0; n < 40; n++) answered.push(await get(`${gateway.url}/api/items/${n}`));
    expect(answered.every((answer) => answer.status === 200)).toBe(true);
    expect(await gateway.stop()).toBe(0);

    const kept = spooledRecords(fixture.workspace.path('spool')).map((record) => record.id);
    expect(kept.length).toBeGreaterThan(0);
    expect(kept.length).toBeLessThan(40);
    const ids = answered.map((answer) => answer.id);
    expect(kept).toEqual(ids.filter((id) => kept.includes(id)));
    expect(kept[0]).toBe(ids[0]);
    expect(kept).not.toContain(ids.at(-1));
    expect(gateway.stderr).toMatch(/analytics buffer: \d+ record\(s\) dropped \(\d+ so far\): the analytics buffer is full/);
    expect(kept.length + droppedAtStop(gateway.stderr)).toBe(40);
  });

  it('whenFull dropOldest: keeps the newest records and counts the oldest it removed', async () => {
    const gateway = await fixture.start(await bufferConfig({ maxSizeMb: 0.004, batchSize: 1, fsyncIntervalMs: 5, whenFull: 'dropOldest' }));
    const answered = [];
    for (let n = 0; n < 40; n++) answered.push(await get(`${gateway.url}/api/items/${n}`));
    expect(answered.every((answer) => answer.status === 200)).toBe(true);
    expect(await gateway.stop()).toBe(0);

    const kept = spooledRecords(fixture.workspace.path('spool')).map((record) => record.id);
    expect(kept.length).toBeGreaterThan(0);
    expect(kept, gateway.stderr).toEqual(answered.slice(40 - kept.length).map((answer) => answer.id));
    expect(kept.length + droppedAtStop(gateway.stderr)).toBe(40);
  });

  it('whenFull reject: refuses new requests with a 503 naming the reason while full, loses no answered transaction, and serves again once a pump made room', async () => {
    const directory = fixture.workspace.path('spool');
    const gateway = await fixture.start(await bufferConfig({ maxSizeMb: 0.004, batchSize: 1, fsyncIntervalMs: 5, whenFull: 'reject' }));
    const answered = [];
    let refused: { status: number; body: string } | undefined;
    for (let n = 0; n < 200 && refused === undefined; n++) {
      const answer = await get(`${gateway.url}/api/items/${n}`);
      if (answer.status === 503) refused = answer;
      else answered.push(answer);
    }
    expect(refused?.status).toBe(503);
    expect(JSON.parse(refused?.body ?? '{}').error).toMatch(/analytics buffer is full.*whenFull: reject/);

    // A pump takes what is spooled, again and again.
    const taken: string[] = [];
    const [file] = readdirSync(directory).filter((name) => SPOOL_FILE.test(name));
    const spool = new Spool(join(directory, file as string));
    const drain = (): void => {
      const batches = spool.read(0, 1000);
      for (const batch of batches) taken.push(...decodeBatch(batch.data).map((record) => record.id));
      spool.delete(batches.map((batch) => batch.id));
    };
    const served = await eventually(async () => {
      drain();
      const answer = await get(`${gateway.url}/api/again`);
      return answer.status === 200 ? answer : undefined;
    }, 5_000, 'the gateway to serve again');
    answered.push(served);
    expect(await gateway.stop()).toBe(0);
    drain();
    spool.close();

    expect(droppedAtStop(gateway.stderr)).toBe(0);
    const counts = idCounts(taken.map((id) => ({ id })));
    expect(answered.filter((answer) => counts.get(answer.id) !== 1)).toEqual([]);
  });

  it('a full disk: keeps serving, reports it, keeps the records in memory (bounded) and stores them once there is room, counting any it had to drop', async () => {
    const directory = fixture.workspace.path('spool');
    mounts.tmpfs(directory, 'size=256k');
    const gateway = await fixture.start(await bufferConfig({ batchSize: 20, fsyncIntervalMs: 20 }));
    const answered = [];
    for (let round = 0; round < 60 && !gateway.stderr.includes('SQLITE_FULL'); round++) {
      answered.push(...(await Promise.all(Array.from({ length: 20 }, (_, n) => get(`${gateway.url}/api/round/${round}/${n}`)))));
    }
    expect(gateway.stderr).toMatch(/analytics buffer: .*database or disk is full/);
    mounts.remount(directory, 'size=8m');
    const sentAfterRoom: string[] = [];
    const afterRoom = await eventually(
      async () => {
        const answer = await get(`${gateway.url}/api/after-room`);
        answered.push(answer);
        sentAfterRoom.push(answer.id);
        const kept = new Set(spooledRecords(directory).map((record) => record.id));
        return sentAfterRoom.some((id) => kept.has(id)) ? answer : undefined;
      },
      10_000,
      'a record stored after the disk had room again',
    );
    expect(afterRoom.status).toBe(200);
    expect(answered.every((answer) => answer.status === 200)).toBe(true);
    expect(await gateway.stop()).toBe(0);

    const kept = idCounts(spooledRecords(directory));
    expect([...kept.values()].every((count) => count === 1)).toBe(true);
    expect(kept.size + droppedAtStop(gateway.stderr)).toBe(answered.length);
  });
});
