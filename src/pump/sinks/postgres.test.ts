import pg from 'pg';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import type { AnalyticsRecord } from '../../analytics/analytics-record.js';
import { builtRecords } from '../../../test/support/built-records.js';
import { eventually } from '../../../test/support/gateway-process.js';
import { POSTGRES, useTestDatabases } from '../../../test/support/postgres.js';
import { writeUntilIn } from '../../../test/support/sink-writes.js';
import { TcpProxy } from '../../../test/support/tcp-proxy.js';
import { RetryableError } from '../sink.js';
import { PostgresSink, type PostgresSinkOptions } from './postgres.js';
import { sinkConfigSchema } from './registry.js';
import { describeSinkContract } from './sink-suite.js';

const urlOf = (database: string, port = POSTGRES.port): string => `postgres://${POSTGRES.user}@${POSTGRES.host}:${port}/${database}`;

const databases = useTestDatabases();
let database = '';
let db: pg.Client;
let sinks: PostgresSink[] = [];
let proxies: TcpProxy[] = [];
let tables = 0;

beforeAll(async () => {
  ({ name: database, client: db } = await databases.create());
});

afterEach(async () => {
  for (const sink of sinks) await sink.close();
  for (const proxy of proxies) await proxy.close();
  sinks = [];
  proxies = [];
});

async function startProxy(): Promise<TcpProxy> {
  const proxy = await TcpProxy.start(POSTGRES.host, POSTGRES.port);
  proxies.push(proxy);
  return proxy;
}

function newSink(options: Partial<PostgresSinkOptions> = {}, notes: string[] = []): PostgresSink {
  const sink = new PostgresSink(
    { url: urlOf(database), table: `records_${++tables}`, connections: 3, timeoutMs: 5_000, expireIntervalSec: 60, expireChunkRows: 10_000, ...options },
    { name: 'postgres', notify: (message) => void notes.push(message) },
  );
  sinks.push(sink);
  return sink;
}

async function idsIn(table: string): Promise<string[]> {
  return (await db.query<{ id: string }>(`SELECT id FROM ${table}`)).rows.map((row) => row.id);
}

describe('the postgres sink', () => {
  it('writes one row per record, the filtered fields in typed columns and the rest as JSON', async () => {
    const sink = newSink();
    await sink.open();
    const [plain, failed] = [
      ...builtRecords(1),
      ...builtRecords(1, {
        status: 502,
        apiId: 'billing',
        tweak: (transaction) => transaction.fail('upstream-reset', 'socket hang up'),
      }),
    ] as [AnalyticsRecord, AnalyticsRecord];
    const withNewField = { ...plain, id: `${plain.id}-next`, region: 'eu-west' } as AnalyticsRecord;
    expect(await sink.write([plain, failed, withNewField])).toEqual([]);

    const types = await db.query<{ column_name: string; data_type: string }>(
      `SELECT column_name, data_type FROM information_schema.columns WHERE table_name = 'records_${tables}'`,
    );
    const typeOf = Object.fromEntries(types.rows.map((row) => [row.column_name, row.data_type]));
    expect(typeOf).toMatchObject({
      id: 'text',
      time: 'timestamp with time zone',
      expire_at: 'timestamp with time zone',
      status: 'smallint',
      latency_total: 'double precision',
      bytes_in: 'bigint',
      legs: 'json',
      tags: 'jsonb',
    });

    const rows = await db.query(`SELECT * FROM records_${tables} ORDER BY id`);
    const byId = new Map(rows.rows.map((row: Record<string, unknown>) => [row.id, row]));
    for (const record of [plain, failed]) {
      expect(byId.get(record.id)).toEqual({
        id: record.id,
        time: new Date(record.timestamp),
        expire_at: new Date(record.expireAt),
        api_id: record.apiId,
        method: record.method,
        status: record.status,
        normalised_path: record.normalisedPath,
        client_addr: record.clientAddr,
        api_key_hash: record.apiKeyHash,
        api_key_alias: record.apiKeyAlias,
        latency_total: record.latencyTotal,
        latency_upstream: record.latencyUpstream,
        latency_gateway: record.latencyGateway,
        // node-postgres gives bigint as text: it may not fit a number.
        bytes_in: String(record.bytesIn),
        bytes_out: String(record.bytesOut),
        outcome: record.outcome,
        failure_reason: record.failureReason,
        failure_message: record.failureMessage,
        api_name: record.apiName,
        api_version: record.apiVersion,
        org_id: record.orgId,
        listen_path: record.listenPath,
        tracked_endpoint: record.trackedEndpoint,
        host: record.host,
        uri: record.uri,
        path: record.path,
        protocol: record.protocol,
        user_agent: record.userAgent,
        upgraded: record.upgraded,
        instance: record.instance,
        version: record.version,
        tags: record.tags,
        legs: record.legs,
        extra: null,
      });
    }
    // The fixture went through the real builder: redacted, normalised, keyed by hash, with both legs' header blocks.
    expect(byId.get(failed.id)).toMatchObject({ status: 502, outcome: 'exception', failure_reason: 'upstream-reset', api_id: 'billing' });
    expect(plain.uri).toContain('token=[REDACTED]');
    expect(plain.apiKeyHash).toMatch(/^[0-9a-f]{64}$/);
    expect(plain.legs).toHaveLength(2);
    expect(plain.legs[0]?.received.headers).toContain('X-Api-Key: [REDACTED]');
    // A field the record gained after this table was made is kept, not lost.
    expect(byId.get(withNewField.id)).toMatchObject({ extra: { region: 'eu-west' } });
  });

  it('keeps each id once when a batch is written again, whole or in part, one after the other and at once', async () => {
    const sink = newSink();
    await sink.open();
    const records = builtRecords(1500);
    expect(await sink.write(records.slice(0, 900))).toEqual([]);
    expect(await sink.write(records)).toEqual([]);
    expect(await sink.write(records)).toEqual([]);
    await Promise.all([sink.write(records.slice(0, 900)), sink.write(records.slice(400))]);
    const ids = await idsIn(`records_${tables}`);
    expect(ids).toHaveLength(1500);
    expect(new Set(ids)).toEqual(new Set(records.map((record) => record.id)));
  });

  it('fails retryably while PostgreSQL is cut off mid-write, then writes each record exactly once once it is back', async () => {
    const proxy = await startProxy();
    const sink = newSink({ url: urlOf(database, proxy.port), timeoutMs: 3_000 });
    await sink.open();
    const table = `records_${tables}`;
    const batches = Array.from({ length: 30 }, () => builtRecords(1000));
    const retried: Error[] = [];
    const writing = (async () => {
      for (const batch of batches) await writeUntilIn(sink, batch, retried);
    })();
    // Cut while batches are flowing, so that some write is in flight.
    await eventually(async () => ((await db.query(`SELECT count(*)::int AS n FROM ${table}`)).rows[0].n >= 3000 ? true : undefined), 15_000, 'the first rows');
    await proxy.cutOff();
    await eventually(async () => (retried.length >= 3 ? true : undefined), 15_000, 'writes failing during the outage');
    await proxy.restore();
    await writing;

    const ids = await idsIn(table);
    const expected = batches.flat().map((record) => record.id);
    expect(ids).toHaveLength(expected.length);
    expect(new Set(ids)).toEqual(new Set(expected));
    expect(retried.every((error) => error instanceof RetryableError)).toBe(true);
  });

  it('gives up on a write that gets no answer after timeoutMs, retryably, and writes each record once when answers come again', async () => {
    const proxy = await startProxy();
    const sink = newSink({ url: urlOf(database, proxy.port), timeoutMs: 1_000 });
    await sink.open();
    const records = builtRecords(300);
    proxy.blackHole();
    const started = Date.now();
    await expect(sink.write(records)).rejects.toThrow(RetryableError);
    expect(Date.now() - started).toBeLessThan(4_000);
    await proxy.restore();
    expect(await sink.write(records)).toEqual([]);
    expect(new Set(await idsIn(`records_${tables}`))).toEqual(new Set(records.map((record) => record.id)));
  });

  it('fails retryably at open while PostgreSQL is unreachable, and opens once it is back', async () => {
    const proxy = await startProxy();
    await proxy.cutOff();
    const sink = newSink({ url: urlOf(database, proxy.port), timeoutMs: 2_000 });
    await expect(sink.open()).rejects.toBeInstanceOf(RetryableError);
    await proxy.restore();
    await sink.open();
    expect(await sink.write(builtRecords(3))).toEqual([]);
  });

  it('makes the schema once when several pumps open at once against an empty database', async () => {
    const empty = await databases.create();
    const notes: string[] = [];
    const many = Array.from({ length: 6 }, () => newSink({ url: empty.url, table: 'tollgate_records' }, notes));
    await Promise.all(many.map((sink) => sink.open()));
    expect(notes.filter((note) => note.includes('migrated from schema version 0 to 1'))).toHaveLength(1);
    await Promise.all(many.map((sink, i) => sink.write(builtRecords(10 + i))));
    expect((await empty.client.query('SELECT table_name, version FROM tollgate_schema_versions')).rows).toEqual([{ table_name: 'tollgate_records', version: 1 }]);
    expect((await empty.client.query('SELECT count(*)::int AS n FROM tollgate_records')).rows[0].n).toBe(10 + 11 + 12 + 13 + 14 + 15);
  });

  it('makes a table dropped behind its back again', async () => {
    const sink = newSink();
    await sink.open();
    await db.query(`DROP TABLE records_${tables}`);
    const records = builtRecords(5);
    await expect(sink.write(records)).rejects.toBeInstanceOf(RetryableError);
    expect(await sink.write(records)).toEqual([]);
    expect(await idsIn(`records_${tables}`)).toHaveLength(5);
  });

  it('deletes only the rows past their expireAt, in chunks, and on its schedule', async () => {
    const sink = newSink({ expireChunkRows: 7 });
    const table = `records_${tables}`;
    await sink.open();
    const now = Date.now();
    const expired = builtRecords(20).map((record) => ({ ...record, expireAt: now - 60_000 }));
    const kept = builtRecords(20).map((record) => ({ ...record, expireAt: now + 3_600_000 }));
    expect(await sink.write([...expired, ...kept])).toEqual([]);
    expect(await sink.expire(now)).toBe(20);
    expect(new Set(await idsIn(table))).toEqual(new Set(kept.map((record) => record.id)));

    const scheduled = newSink({ table, expireIntervalSec: 0.2 });
    const soon = builtRecords(5).map((record) => ({ ...record, expireAt: Date.now() + 300 }));
    expect(await sink.write(soon)).toEqual([]);
    await scheduled.open();
    await eventually(async () => ((await idsIn(table)).length === kept.length ? true : undefined), 15_000, 'the scheduled expiry');
    expect(new Set(await idsIn(table))).toEqual(new Set(kept.map((record) => record.id)));
  });

  it('writes text holding U+0000 with the NUL as the characters \\u0000, and the rest of the batch with it', async () => {
    const sink = newSink();
    await sink.open();
    const records = builtRecords(10, {
      tweak: (transaction, i) => {
        if (i !== 3) return;
        transaction.failureMessage = 'bad\0byte';
        transaction.userAgent = 'agent\0';
        transaction.clientLeg.error = 'nul \0 in a leg';
      },
    });
    expect(await sink.write(records)).toEqual([]);
    expect(await idsIn(`records_${tables}`)).toHaveLength(10);
    const row = (await db.query(`SELECT failure_message, user_agent, legs FROM records_${tables} WHERE id = $1`, [records[3]?.id])).rows[0];
    expect(row.failure_message).toBe('bad\\u0000byte');
    expect(row.user_agent).toBe('agent\\u0000');
    expect(row.legs[0].error).toBe('nul \\u0000 in a leg');
  });

  it('writes chunks of large records (bodies kept in the record) in several pieces of COPY text', async () => {
    const sink = newSink({ connections: 1 });
    await sink.open();
    const body = `{"items":"${'x'.repeat(200_000)}"}`;
    const records = builtRecords(30, { tweak: (transaction) => void (transaction.clientLeg.sentBody = { bytes: Buffer.from(body), truncated: false }) });
    expect(await sink.write(records)).toEqual([]);
    const rows = await db.query<{ length: number }>(`SELECT length(legs->0->'sent'->>'body') AS length FROM records_${tables}`);
    expect(rows.rows.map((row) => row.length)).toEqual(records.map(() => body.length));
  });

  it('returns the records PostgreSQL refuses, with its reason, and writes every other record of the batch', async () => {
    const sink = newSink();
    await sink.open();
    const records = builtRecords(50);
    const outOfRange = { ...records[10], status: 70_000 } as AnalyticsRecord;
    const noTime = { ...records[31], timestamp: 1e17 } as AnalyticsRecord;
    records[10] = outOfRange;
    records[31] = noTime;
    const rejected = await sink.write(records);
    expect(rejected.map((reject) => reject.record.id).sort()).toEqual([outOfRange.id, noTime.id].sort());
    expect(rejected.find((reject) => reject.record === outOfRange)?.reason).toMatch(/out of range for type smallint/);
    expect(new Set(await idsIn(`records_${tables}`))).toEqual(new Set(records.filter((record) => record !== outOfRange && record !== noTime).map((record) => record.id)));
  });

  it('is configured under pump.sinks with its own options, bad ones named', () => {
    const parsed = sinkConfigSchema.parse({ type: 'postgres', url: 'postgres://postgres@127.0.0.1:5432/test' });
    expect(parsed).toMatchObject({ type: 'postgres', table: 'tollgate_records', connections: 3 });
    const bad = sinkConfigSchema.safeParse({ type: 'postgres', url: 'http://127.0.0.1/', table: 'Robert"; DROP' });
    expect(bad.success).toBe(false);
    expect(bad.error?.issues.map((issue) => `${issue.path.join('.')}: ${issue.message}`)).toEqual([
      'url: expected a postgres:// or postgresql:// URL',
      'table: expected a lower-case SQL name: a letter or "_", then letters, digits or "_" (at most 50)',
    ]);
  });
});

let contractProxy: TcpProxy;
let contractTable = '';
beforeAll(async () => {
  contractProxy = await TcpProxy.start(POSTGRES.host, POSTGRES.port);
});
afterAll(async () => {
  await contractProxy.close();
});

describeSinkContract({
  name: 'postgres',
  config: () => {
    contractTable = `contract_${++tables}`;
    return { type: 'postgres', url: urlOf(database, contractProxy.port), table: contractTable };
  },
  readBack: async (ids) => (await db.query<{ id: string }>(`SELECT id FROM ${contractTable} WHERE id = ANY($1)`, [ids])).rows.map((row) => row.id),
  outage: { cut: () => contractProxy.cutOff(), restore: () => contractProxy.restore() },
  rejectable: () => ({ ...(builtRecords(1)[0] as AnalyticsRecord), status: 70_000 }),
});
