import mysql, { type RowDataPacket } from 'mysql2/promise';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import type { AnalyticsRecord } from '../../analytics/analytics-record.js';
import { builtRecords } from '../../../test/support/built-records.js';
import { eventually } from '../../../test/support/gateway-process.js';
import { MARIADB, useTestDatabases } from '../../../test/support/mysql.js';
import { writeUntilIn } from '../../../test/support/sink-writes.js';
import { TcpProxy } from '../../../test/support/tcp-proxy.js';
import { RetryableError } from '../sink.js';
import { MysqlSink, type MysqlSinkOptions } from './mysql.js';
import { lockName } from './mysql-schema.js';
import { sinkConfigSchema } from './registry.js';
import { describeSinkContract } from './sink-suite.js';

const urlOf = (database: string, port = MARIADB.port): string => `mysql://${MARIADB.user}@${MARIADB.host}:${port}/${database}`;

const databases = useTestDatabases();
let database = '';
let db: mysql.Connection;
let sinks: MysqlSink[] = [];
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
  const proxy = await TcpProxy.start(MARIADB.host, MARIADB.port);
  proxies.push(proxy);
  return proxy;
}

function newSink(options: Partial<MysqlSinkOptions> = {}, notes: string[] = []): MysqlSink {
  const sink = new MysqlSink(
    { url: urlOf(database), table: `records_${++tables}`, connections: 3, timeoutMs: 5_000, expireIntervalSec: 60, expireChunkRows: 10_000, ...options },
    { name: 'mysql', notify: (message) => void notes.push(message) },
  );
  sinks.push(sink);
  return sink;
}

async function rowsOf(sql: string, values: unknown[] = [], on: mysql.Connection = db): Promise<RowDataPacket[]> {
  return (await on.query<RowDataPacket[]>(sql, values))[0];
}

async function idsIn(table: string): Promise<string[]> {
  return (await rowsOf(`SELECT id FROM ${table}`)).map((row) => row.id as string);
}

/** A DATETIME(3) as MariaDB gives it back with `dateStrings`, from epoch ms. */
const datetimeOf = (ms: number): string => new Date(ms).toISOString().slice(0, 23).replace('T', ' ');

describe('the mysql sink', () => {
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

    const types = await rowsOf('SELECT column_name AS name, column_type AS type FROM information_schema.columns WHERE table_schema = ? AND table_name = ?', [
      database,
      `records_${tables}`,
    ]);
    const typeOf = Object.fromEntries(types.map((row) => [row.name, row.type]));
    expect(typeOf).toMatchObject({
      id: 'varchar(255)',
      time: 'datetime(3)',
      expire_at: 'datetime(3)',
      api_id: 'varchar(255)',
      status: 'smallint(6)',
      uri: 'text',
      latency_total: 'double',
      bytes_in: 'bigint(20)',
      upgraded: 'tinyint(1)',
      // MariaDB's JSON: text checked by JSON_VALID, given back parsed.
      legs: 'longtext',
      tags: 'longtext',
    });
    const keys = await rowsOf('SELECT index_name AS name, column_name AS columnName FROM information_schema.statistics WHERE table_schema = ? AND table_name = ?', [
      database,
      `records_${tables}`,
    ]);
    expect(keys.map((key) => `${key.name}:${key.columnName}`).sort()).toEqual([`PRIMARY:id`, `records_${tables}_expire_at:expire_at`, `records_${tables}_time:time`]);

    const reader = await mysql.createConnection({ ...MARIADB, database, dateStrings: true, timezone: 'Z' });
    const rows = await rowsOf(`SELECT * FROM records_${tables} ORDER BY id`, [], reader).finally(() => reader.end());
    const byId = new Map(rows.map((row) => [row.id, { ...row }]));
    for (const record of [plain, failed]) {
      expect(byId.get(record.id)).toEqual({
        id: record.id,
        time: datetimeOf(record.timestamp),
        expire_at: datetimeOf(record.expireAt),
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
        bytes_in: record.bytesIn,
        bytes_out: record.bytesOut,
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
        upgraded: record.upgraded ? 1 : 0,
        instance: record.instance,
        version: record.version,
        tags: record.tags,
        legs: record.legs,
        extra: null,
      });
    }
    expect(byId.get(failed.id)).toMatchObject({ status: 502, outcome: 'exception', failure_reason: 'upstream-reset', api_id: 'billing' });
    expect(plain.legs).toHaveLength(2);
    expect(plain.legs[0]?.received.headers).toContain('X-Api-Key: [REDACTED]');
    // A field the record gained after this table was made is kept, not lost.
    expect(byId.get(withNewField.id)).toMatchObject({ extra: { region: 'eu-west' } });
    // The JSON columns are JSON to the server too.
    const [fromJson] = await rowsOf(`SELECT JSON_VALUE(legs, '$[1].remoteHost') AS backend FROM records_${tables} WHERE id = ?`, [plain.id]);
    expect(fromJson?.backend).toBe(plain.legs[1]?.remoteHost);
  });

  it('keeps each id once when the same batch is written twice, one after the other and at once', async () => {
    const sink = newSink();
    await sink.open();
    const records = builtRecords(1500);
    expect(await sink.write(records)).toEqual([]);
    expect(await sink.write(records)).toEqual([]);
    const fresh = builtRecords(1500);
    await Promise.all([sink.write(fresh.slice(0, 900)), sink.write(fresh.slice(400)), sink.write(fresh)]);
    const ids = await idsIn(`records_${tables}`);
    expect(ids).toHaveLength(3000);
    expect(new Set(ids)).toEqual(new Set([...records, ...fresh].map((record) => record.id)));
  });

  it('fails retryably while MariaDB is cut off mid-write, then writes each record exactly once once it is back', async () => {
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
    await eventually(async () => (((await rowsOf(`SELECT count(*) AS n FROM ${table}`))[0]?.n as number) >= 3000 ? true : undefined), 15_000, 'the first rows');
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

  it('fails retryably at open while MariaDB is unreachable, and opens once it is back', async () => {
    const proxy = await startProxy();
    await proxy.cutOff();
    const sink = newSink({ url: urlOf(database, proxy.port), timeoutMs: 2_000 });
    await expect(sink.open()).rejects.toBeInstanceOf(RetryableError);
    await proxy.restore();
    await sink.open();
    expect(await sink.write(builtRecords(3))).toEqual([]);
  });

  it('fails retryably when MariaDB does not answer within timeoutMs, and writes the batch once when it answers again', async () => {
    const sink = newSink({ timeoutMs: 1_000 });
    await sink.open();
    const table = `records_${tables}`;
    const records = builtRecords(500);
    const locker = await mysql.createConnection({ ...MARIADB, database });
    try {
      await locker.query(`LOCK TABLES ${table} WRITE`);
      const started = Date.now();
      const failure = await sink.write(records).catch((error: unknown) => error);
      expect(failure).toBeInstanceOf(RetryableError);
      expect((failure as Error).message).toMatch(/did not answer within 1000 ms/);
      expect(Date.now() - started).toBeLessThan(5_000);
      await locker.query('UNLOCK TABLES');
    } finally {
      await locker.end();
    }
    expect(await sink.write(records)).toEqual([]);
    const ids = await idsIn(table);
    expect(ids).toHaveLength(500);
    expect(new Set(ids)).toEqual(new Set(records.map((record) => record.id)));
  });

  it('makes the schema once when several pumps open at once against an empty database', async () => {
    const empty = await databases.create();
    const notes: string[] = [];
    const many = Array.from({ length: 6 }, () => newSink({ url: empty.url, table: 'tollgate_records' }, notes));
    await Promise.all(many.map((sink) => sink.open()));
    expect(notes.filter((note) => note.includes('migrated from schema version 0 to 1'))).toHaveLength(1);
    await Promise.all(many.map((sink, i) => sink.write(builtRecords(10 + i))));
    expect(await rowsOf('SELECT table_name, version FROM tollgate_schema_versions', [], empty.client)).toEqual([{ table_name: 'tollgate_records', version: 1 }]);
    expect((await rowsOf('SELECT count(*) AS n FROM tollgate_records', [], empty.client))[0]?.n).toBe(10 + 11 + 12 + 13 + 14 + 15);
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

  it("leaves the expiry to the pump that holds the table's expiry lock", async () => {
    const sink = newSink();
    const table = `records_${tables}`;
    await sink.open();
    const now = Date.now();
    expect(await sink.write(builtRecords(5).map((record) => ({ ...record, expireAt: now - 1_000 })))).toEqual([]);
    const otherPump = await mysql.createConnection({ ...MARIADB, database });
    try {
      expect((await rowsOf(`SELECT GET_LOCK(${lockName(`expiry ${table}`)}, 0) AS held`, [], otherPump))[0]?.held).toBe(1);
      expect(await sink.expire(now)).toBe(0);
      expect(await idsIn(table)).toHaveLength(5);
      await otherPump.query(`DO RELEASE_LOCK(${lockName(`expiry ${table}`)})`);
    } finally {
      await otherPump.end();
    }
    expect(await sink.expire(now)).toBe(5);
  });

  it('keeps text holding U+0000 as it is, and the rest of the batch with it', async () => {
    const sink = newSink();
    await sink.open();
    const records = builtRecords(10, {
      tweak: (transaction, i) => {
        if (i !== 3) return;
        transaction.failureMessage = 'bad\0byte';
        transaction.userAgent = "agent\0'); DROP TABLE x; --";
        transaction.clientLeg.error = 'nul \0 in a leg';
      },
    });
    expect(await sink.write(records)).toEqual([]);
    expect(await idsIn(`records_${tables}`)).toHaveLength(10);
    const [row] = await rowsOf(`SELECT failure_message, user_agent, legs FROM records_${tables} WHERE id = ?`, [records[3]?.id]);
    expect(row?.failure_message).toBe('bad\0byte');
    expect(row?.user_agent).toBe("agent\0'); DROP TABLE x; --");
    expect(row?.legs[0].error).toBe('nul \0 in a leg');
  });

  it('returns the records MariaDB refuses, with its reason, and writes every other record of the batch', async () => {
    const sink = newSink();
    await sink.open();
    const records = builtRecords(300);
    const outOfRange = { ...records[10], status: 70_000 } as AnalyticsRecord;
    const noTime = { ...records[131], timestamp: 1e17 } as AnalyticsRecord;
    const notANumber = { ...records[250], latencyTotal: Number.NaN } as AnalyticsRecord;
    const tooLong = { ...records[251], apiId: 'x'.repeat(256) } as AnalyticsRecord;
    const refused = [outOfRange, noTime, notANumber, tooLong];
    records[10] = outOfRange;
    records[131] = noTime;
    records[250] = notANumber;
    records[251] = tooLong;
    const rejected = await sink.write(records);
    expect(rejected.map((reject) => reject.record.id).sort()).toEqual(refused.map((record) => record.id).sort());
    expect(rejected.find((reject) => reject.record === outOfRange)?.reason).toMatch(/Out of range value for column 'status'/);
    expect(rejected.find((reject) => reject.record === tooLong)?.reason).toMatch(/Data too long for column 'api_id'/);
    expect(new Set(await idsIn(`records_${tables}`))).toEqual(new Set(records.filter((record) => !refused.includes(record)).map((record) => record.id)));
  });

  it('refuses a record whose row exceeds max_allowed_packet without sending it, and writes the rest of the batch', async () => {
    const sink = newSink();
    await sink.open();
    const [[server]] = await db.query<RowDataPacket[]>('SELECT @@max_allowed_packet AS bytes');
    const records = builtRecords(5);
    const huge = { ...records[2], failureMessage: 'x'.repeat(Number(server?.bytes)) } as AnalyticsRecord;
    records[2] = huge;
    const rejected = await sink.write(records);
    expect(rejected.map((reject) => reject.record)).toEqual([huge]);
    expect(rejected[0]?.reason).toMatch(/more than the server's max_allowed_packet allows/);
    expect(new Set(await idsIn(`records_${tables}`))).toEqual(new Set(records.filter((record) => record !== huge).map((record) => record.id)));
  });

  it('is configured under pump.sinks with its own options, bad ones named', () => {
    const parsed = sinkConfigSchema.parse({ type: 'mysql', url: 'mysql://root@127.0.0.1:3306/tollgate' });
    expect(parsed).toMatchObject({ type: 'mysql', table: 'tollgate_records', connections: 3 });
    const bad = sinkConfigSchema.safeParse({ type: 'mysql', url: 'postgres://127.0.0.1/', table: 'Robert"; DROP' });
    expect(bad.success).toBe(false);
    expect(bad.error?.issues.map((issue) => `${issue.path.join('.')}: ${issue.message}`)).toEqual([
      'url: expected a mysql:// or mariadb:// URL',
      'table: expected a lower-case SQL name: a letter or "_", then letters, digits or "_" (at most 50)',
    ]);
    const noDatabase = sinkConfigSchema.safeParse({ type: 'mysql', url: 'mariadb://root@127.0.0.1:3306' });
    expect(noDatabase.error?.issues.map((issue) => `${issue.path.join('.')}: ${issue.message}`)).toEqual([
      'url: expected the database in the URL path: mysql://user@host:3306/database',
    ]);
  });
});

let contractProxy: TcpProxy;
let contractTable = '';
beforeAll(async () => {
  contractProxy = await TcpProxy.start(MARIADB.host, MARIADB.port);
});
afterAll(async () => {
  await contractProxy.close();
});

describeSinkContract({
  name: 'mysql',
  config: () => {
    contractTable = `contract_${++tables}`;
    return { type: 'mysql', url: urlOf(database, contractProxy.port), table: contractTable };
  },
  readBack: async (ids) => (await rowsOf(`SELECT id FROM ${contractTable} WHERE id IN (?)`, [ids])).map((row) => row.id as string),
  outage: { cut: () => contractProxy.cutOff(), restore: () => contractProxy.restore() },
  rejectable: () => ({ ...(builtRecords(1)[0] as AnalyticsRecord), status: 70_000 }),
});
