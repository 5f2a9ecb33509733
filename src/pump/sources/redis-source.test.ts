import { randomUUID } from 'node:crypto';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import type { AnalyticsRecord } from '../../analytics/analytics-record.js';
import { encodeBatch } from '../../analytics/codec.js';
import { openRedis, type RedisConnection } from '../../buffer/redis-stream.js';
import { RedisSource, type RedisSourceOptions } from './redis-source.js';
import { eventually } from '../../../test/support/gateway-process.js';
import { RedisServer } from '../../../test/support/redis-server.js';

const GROUP = 'test-pumps';
let redis: RedisServer;
let producer: RedisConnection;
let stream: string;
let sources: RedisSource[];
let errors: string[];

beforeEach(async () => {
  redis = await RedisServer.start();
  producer = openRedis(redis.url, () => undefined);
  await eventually(async () => (producer.isReady ? true : undefined), 5_000, 'the producer to connect');
  stream = `tollgate-test-${randomUUID()}`;
  sources = [];
  errors = [];
});

afterEach(async () => {
  try {
    for (const source of sources) await source.close();
    producer.destroy();
  } finally {
    await redis.kill();
  }
});

function source(options: Partial<RedisSourceOptions> & { undecodable?: RedisSourceOptions['undecodable'] } = {}): RedisSource {
  const created = new RedisSource({
    url: redis.url,
    stream,
    group: GROUP,
    claimIdleMs: 30_000,
    undecodable: { putEncoded: () => 0 },
    onError: (error) => errors.push(error.message),
    ...options,
  });
  sources.push(created);
  return created;
}

function records(batch: number, count: number): AnalyticsRecord[] {
  return Array.from({ length: count }, (_, n) => ({ id: `b${batch}-r${n}` }) as AnalyticsRecord);
}

/** Adds `batches` entries as a gateway does; returns every record id. */
async function produce(batches: number, perBatch = 10, first = 0): Promise<string[]> {
  const ids: string[] = [];
  for (let batch = first; batch < first + batches; batch++) {
    const batchRecords = records(batch, perBatch);
    await producer.sendCommand(['XADD', stream, '*', 'data', encodeBatch(batchRecords), 'records', String(perBatch), 'instance', 'test']);
    ids.push(...batchRecords.map((record) => record.id));
  }
  return ids;
}

/** Reads and acknowledges until `until` holds; returns the record ids acknowledged. */
async function drain(from: RedisSource, acked: string[], until: () => boolean, timeoutMs = 10_000): Promise<void> {
  await eventually(
    async () => {
      for (const batch of await from.read(8, 100)) {
        await from.ack(batch);
        acked.push(...batch.records.map((record) => record.id));
      }
      return until() ? true : undefined;
    },
    timeoutMs,
    'the source to deliver the records',
  );
}

function counts(ids: readonly string[]): Map<string, number> {
  const seen = new Map<string, number>();
  for (const id of ids) seen.set(id, (seen.get(id) ?? 0) + 1);
  return seen;
}

async function streamLength(): Promise<number> {
  return producer.sendCommand<number>(['XLEN', stream]);
}

describe('the Redis stream as a pump source', () => {
  it('two consumers share the stream; what a crashed one took and never acknowledged is claimed by the other, and every record is acknowledged once', async () => {
    const produced = await produce(40);
    const crashing = source({ consumer: 'pump-a', claimIdleMs: 500 });
    const surviving = source({ consumer: 'pump-b', claimIdleMs: 500 });

    // pump-a takes batches, acknowledges some, then dies with the rest pending.
    const acked: string[] = [];
    const taken = await crashing.read(10, 1_000);
    expect(taken.length).toBe(10);
    for (const batch of taken.slice(0, 4)) {
      await crashing.ack(batch);
      acked.push(...batch.records.map((record) => record.id));
    }
    await crashing.close();

    await drain(surviving, acked, () => acked.length >= produced.length);
    const seen = counts(acked);
    expect([...seen].filter(([, times]) => times !== 1)).toEqual([]);
    expect(seen.size).toBe(produced.length);
    expect(await streamLength()).toBe(0);
    const [pending] = await producer.sendCommand<[number]>(['XPENDING', stream, GROUP]);
    expect(pending).toBe(0);
  });

  it('a restarted consumer takes again first what it had taken and not acknowledged', async () => {
    const produced = await produce(6);
    const before = source({ consumer: 'pump-a' });
    expect((await before.read(3, 1_000)).length).toBe(3);
    await before.close();

    const after = source({ consumer: 'pump-a' });
    const first = await after.read(10, 1_000);
    expect(first.map((batch) => batch.records[0]?.id)).toEqual(['b0-r0', 'b1-r0', 'b2-r0']);
    const acked: string[] = [];
    for (const batch of first) {
      await after.ack(batch);
      acked.push(...batch.records.map((record) => record.id));
    }
    await drain(after, acked, () => acked.length >= produced.length);
    expect(counts(acked).size).toBe(produced.length);
    expect(acked.length).toBe(produced.length);
  });

  it('keeps a consumer that is slow but alive from having its batches claimed by the others', async () => {
    await produce(2);
    const slow = source({ consumer: 'pump-slow', claimIdleMs: 400 });
    const other = source({ consumer: 'pump-other', claimIdleMs: 400 });
    const held = await slow.read(2, 1_000);
    expect(held.length).toBe(2);
    const deadline = Date.now() + 1_500;
    while (Date.now() < deadline) {
      // The slow pump keeps reading (its sinks still busy with what it holds); the other finds nothing to claim.
      await slow.read(1, 50);
      expect(await other.read(8, 50)).toEqual([]);
    }
    for (const batch of held) await slow.ack(batch);
    expect(await streamLength()).toBe(0);
  });

  it('an undecodable entry goes to the dead letter, is acknowledged, and does not hold the others back', async () => {
    await produce(1, 5, 0);
    await producer.sendCommand(['XADD', stream, '*', 'data', Buffer.from([0xc1, 0xff, 0x00]), 'records', '7', 'instance', 'test']);
    await produce(1, 5, 1);
    const dead: { data: Buffer; records: number }[] = [];
    const reader = source({ undecodable: { putEncoded: (data, count) => dead.push({ data, records: count }) } });
    const acked: string[] = [];
    await drain(reader, acked, () => acked.length >= 10);
    expect(acked.length).toBe(10);
    expect(dead.map(({ data, records: count }) => ({ data: data.toString('hex'), records: count }))).toEqual([{ data: 'c1ff00', records: 7 }]);
    expect(errors.some((message) => /could not be decoded.*kept as dead letter/.test(message))).toBe(true);
    expect(await streamLength()).toBe(0);
  });

  it('creates the group again from the first entry when it vanished, and carries on when Redis comes back empty', async () => {
    const reader = source();
    const acked: string[] = [];
    const firstIds = await produce(3);
    await drain(reader, acked, () => acked.length >= firstIds.length);

    await producer.sendCommand(['XGROUP', 'DESTROY', stream, GROUP]);
    const afterDestroy = await produce(2, 10, 3);
    await drain(reader, acked, () => afterDestroy.every((id) => acked.includes(id)));

    await redis.kill();
    expect(await reader.read(8, 200)).toEqual([]);
    await redis.start();
    await eventually(async () => (producer.isReady ? true : undefined), 10_000, 'the producer to reconnect');
    const afterRestart = await produce(2, 10, 5);
    await drain(reader, acked, () => afterRestart.every((id) => acked.includes(id)), 15_000);
    expect([...counts(acked)].filter(([, times]) => times !== 1)).toEqual([]);
    expect(errors.some((message) => /retrying/.test(message) || /ECONNREFUSED|closed/i.test(message))).toBe(true);
  });

  it('reports its depth: entries not yet acknowledged and the age of the oldest', async () => {
    await produce(3, 4);
    const reader = source();
    const depth = await reader.depth();
    expect(depth.batches).toBe(3);
    expect(depth.oldestAgeMs).toBeGreaterThanOrEqual(0);
    expect(depth.oldestAgeMs).toBeLessThan(10_000);
    for (const batch of await reader.read(8, 500)) await reader.ack(batch);
    expect(await reader.depth()).toMatchObject({ batches: 0, records: 0, oldestAgeMs: 0 });
  });
});
