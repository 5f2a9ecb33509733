import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { once } from 'node:events';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { jetstreamManager, type JetStreamManager } from '@nats-io/jetstream';
import { connect, type NatsConnection } from '@nats-io/transport-node';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import type { AnalyticsRecord } from '../../analytics/analytics-record.js';
import { analyticsRecord, analyticsRecords } from '../../../test/support/analytics-records.js';
import { eventually } from '../../../test/support/gateway-process.js';
import { TcpProxy } from '../../../test/support/tcp-proxy.js';
import { RetryableError } from '../sink.js';
import { NatsSink, type NatsSinkOptions } from './nats.js';
import { sinkConfigSchema } from './registry.js';
import { describeSinkContract } from './sink-suite.js';

const SERVER = 'nats://127.0.0.1:4222';
/** This run's streams and subjects carry it, so runs never meet; every stream is deleted after. */
const RUN = `t${randomBytes(5).toString('hex')}`;
let streams = 0;

let admin: NatsConnection;
let manager: JetStreamManager;
let proxy: TcpProxy;
let sinks: NatsSink[] = [];

beforeAll(async () => {
  admin = await connect({ servers: SERVER, timeout: 5_000 }).catch((error: Error) => {
    throw new Error(`these tests need a NATS server with JetStream at ${SERVER}: ${error.message}`);
  });
  manager = await jetstreamManager(admin).catch((error: Error) => {
    throw new Error(`these tests need JetStream enabled on the NATS server at ${SERVER}: ${error.message}`);
  });
  proxy = await TcpProxy.start('127.0.0.1', 4222);
});

afterAll(async () => {
  await proxy?.close();
  if (manager) {
    for await (const name of manager.streams.names()) if (name.startsWith(`tollgate_${RUN}`)) await manager.streams.delete(name);
  }
  await admin?.close();
});

afterEach(async () => {
  for (const sink of sinks) await sink.close();
  sinks = [];
});

/** A stream name and a subject of this run's own. */
function fresh(): { stream: string; subject: string } {
  const n = ++streams;
  return { stream: `tollgate_${RUN}_${n}`, subject: `tollgate.${RUN}.${n}.{apiId}` };
}

function newSink(options: Partial<NatsSinkOptions> = {}, notes: string[] = []): NatsSink {
  const sink = new NatsSink(
    { servers: SERVER, ...fresh(), createStream: true, duplicateWindowSec: 120, timeoutMs: 5_000, ...options },
    { name: 'nats', notify: (message) => void notes.push(message) },
  );
  sinks.push(sink);
  return sink;
}

interface Held {
  id: string;
  subject: string;
  msgId: string | undefined;
  record: AnalyticsRecord;
}

/** Every message the stream holds, read by sequence, 200 at a time. */
async function messagesIn(stream: string): Promise<Held[]> {
  const info = await manager.streams.info(stream).catch(() => null);
  if (info === null || info.state.messages === 0) return [];
  const { first_seq: first, last_seq: last } = info.state;
  const held: Held[] = [];
  for (let start = first; start <= last; start += 200) {
    const sequences = Array.from({ length: Math.min(200, last - start + 1) }, (_, i) => start + i);
    for (const message of await Promise.all(sequences.map((seq) => manager.streams.getMessage(stream, { seq })))) {
      if (message === null) continue;
      const record = message.json<AnalyticsRecord>();
      held.push({ id: record.id, subject: message.subject, msgId: message.header.get('Nats-Msg-Id'), record });
    }
  }
  return held;
}

/** A test's own nats-server (JetStream on, user and password required) on a port the OS picks; `stop()` kills it and deletes its store. */
async function startNatsServer(user: string, password: string): Promise<{ url: string; stop: () => Promise<void> }> {
  const store = await mkdtemp(join(tmpdir(), 'tollgate-nats-'));
  const child = spawn('nats-server', ['-a', '127.0.0.1', '-p', '-1', '--user', user, '--pass', password, '-js', '-sd', store], { stdio: ['ignore', 'ignore', 'pipe'] });
  let output = '';
  child.stderr.on('data', (chunk: Buffer) => (output += chunk.toString()));
  const stop = async (): Promise<void> => {
    if (child.exitCode === null && child.signalCode === null) {
      const exited = once(child, 'exit');
      child.kill('SIGKILL');
      await exited;
    }
    await rm(store, { recursive: true, force: true });
  };
  const failed = new Promise<never>((_, reject) => {
    child.once('error', (error) => reject(new Error(`nats-server could not be started (is it installed?): ${error.message}`)));
    child.once('exit', (code) => reject(new Error(`nats-server exited with code ${code}:\n${output}`)));
  });
  failed.catch(() => undefined);
  try {
    const port = await Promise.race([
      failed,
      eventually(async () => /Listening for client connections on 127\.0\.0\.1:(\d+)/.exec(output)?.[1], 10_000, 'nats-server to listen'),
    ]);
    return { url: `nats://127.0.0.1:${port}`, stop };
  } catch (error) {
    await stop();
    throw error;
  }
}

let suiteStream = '';

describeSinkContract({
  name: 'nats',
  config: () => {
    const { stream, subject } = fresh();
    suiteStream = stream;
    return { type: 'nats', servers: `nats://127.0.0.1:${proxy.port}`, stream, subject, createStream: true };
  },
  readBack: async () => (await messagesIn(suiteStream)).map((message) => message.id),
  outage: { cut: () => proxy.cutOff(), restore: () => proxy.restore() },
  // Larger than the server's max_payload (1 MiB here): no NATS server takes it.
  rejectable: () => analyticsRecord({ userAgent: 'x'.repeat(1_100_000) }),
});

describe('the nats sink', () => {
  it('publishes each record as its JSON to the subject of its API, with Nats-Msg-Id = the record id', async () => {
    const sink = newSink();
    await sink.open();
    const records = [
      ...analyticsRecords(3),
      analyticsRecord({ apiId: null }),
      analyticsRecord({ apiId: 'v1.orders' }),
    ];
    expect(await sink.write(records)).toEqual([]);
    const prefix = `tollgate.${RUN}.${streams}`;
    const held = await messagesIn(`tollgate_${RUN}_${streams}`);
    expect(held.map(({ subject, msgId, record }) => ({ subject, msgId, record }))).toEqual([
      ...records.slice(0, 3).map((record) => ({ subject: `${prefix}.petstore`, msgId: record.id, record })),
      { subject: `${prefix}._none`, msgId: records[3]?.id, record: records[3] },
      { subject: `${prefix}.v1_orders`, msgId: records[4]?.id, record: records[4] },
    ]);
  });

  it('adds nothing when the same batch is published again within the duplicate window, one after the other and at once', async () => {
    const sink = newSink();
    await sink.open();
    const records = analyticsRecords(500);
    expect(await sink.write(records)).toEqual([]);
    expect(await sink.write(records)).toEqual([]);
    await Promise.all([sink.write(records.slice(0, 300)), sink.write(records.slice(200))]);
    const held = await messagesIn(`tollgate_${RUN}_${streams}`);
    expect(held).toHaveLength(500);
    expect(new Set(held.map((message) => message.id))).toEqual(new Set(records.map((record) => record.id)));
    const info = await manager.streams.info(`tollgate_${RUN}_${streams}`);
    expect(info.config.duplicate_window).toBe(120 * 1e9);
  });

  it('holds each record once when a batch cut off mid-publish is published again (the stream drops the ids it has seen)', async () => {
    const cutting = await TcpProxy.start('127.0.0.1', 4222);
    try {
      const sink = newSink({ servers: `nats://127.0.0.1:${cutting.port}`, timeoutMs: 10_000 });
      const stream = `tollgate_${RUN}_${streams}`;
      await sink.open();
      // Enough that the cut comes while the batch is being published.
      const records = analyticsRecords(20_000);
      const first = sink.write(records).then(
        () => null,
        (error: unknown) => error,
      );
      await eventually(async () => ((await manager.streams.info(stream)).state.messages > 0 || undefined), 10_000, 'the first messages in the stream');
      await cutting.cutOff();
      expect(await first).toBeInstanceOf(RetryableError);
      const before = (await manager.streams.info(stream)).state.messages;
      expect(before).toBeLessThan(records.length);
      await cutting.restore();
      expect(await sink.write(records)).toEqual([]);
      const held = await messagesIn(stream);
      expect(held).toHaveLength(records.length);
      expect(new Set(held.map((message) => message.id))).toEqual(new Set(records.map((record) => record.id)));
      await sink.close();
    } finally {
      await cutting.close();
    }
  });

  it('returns a record the stream refuses (larger than its max_msg_size), with the reason, and delivers the others', async () => {
    const { stream, subject } = fresh();
    await manager.streams.add({ name: stream, subjects: [subject.replace('{apiId}', '*')], max_msg_size: 4096 });
    const sink = newSink({ stream, subject, createStream: false });
    await sink.open();
    const records = analyticsRecords(6);
    const large = analyticsRecord({ userAgent: 'x'.repeat(8_000) });
    const rejected = await sink.write([...records, large]);
    expect(rejected.map(({ record }) => record.id)).toEqual([large.id]);
    expect(rejected[0]?.reason).toMatch(/JetStream refused the message: .*maximum/i);
    expect(new Set((await messagesIn(stream)).map((message) => message.id))).toEqual(new Set(records.map((record) => record.id)));
  });

  it('without createStream, fails to open, retryably and naming it, while the stream does not exist; with it, adds its subject to a stream that has others', async () => {
    const { stream, subject } = fresh();
    const waiting = newSink({ stream, subject, createStream: false });
    const failure = await waiting.open().then(
      () => null,
      (error: unknown) => error,
    );
    expect(failure).toBeInstanceOf(RetryableError);
    expect((failure as Error).message).toContain(`stream ${stream} does not exist`);

    await manager.streams.add({ name: stream, subjects: [`other.${RUN}.>`] });
    const notes: string[] = [];
    const creating = newSink({ stream, subject, createStream: true }, notes);
    await creating.open();
    expect((await manager.streams.info(stream)).config.subjects).toEqual([`other.${RUN}.>`, subject.replace('{apiId}', '*')]);
    expect(notes).toEqual([`nats: added ${subject.replace('{apiId}', '*')} to the subjects of JetStream stream ${stream}`]);
    const records = analyticsRecords(4);
    expect(await waiting.write(records)).toEqual([]);
    expect(await messagesIn(stream)).toHaveLength(4);
  });

  it('fails retryably at open while NATS is unreachable, without a password in the message, and opens once it is back', async () => {
    const outage = await TcpProxy.start('127.0.0.1', 4222);
    try {
      await outage.cutOff();
      const sink = newSink({ servers: `nats://127.0.0.1:${outage.port}`, user: 'pump', password: 'hunter2-secret', timeoutMs: 1_000 });
      const failure = await sink.open().then(
        () => null,
        (error: unknown) => error,
      );
      expect(failure).toBeInstanceOf(RetryableError);
      expect((failure as Error).message).not.toContain('hunter2-secret');
      await outage.restore();
      await sink.open();
      expect(await sink.write(analyticsRecords(2))).toEqual([]);
    } finally {
      await outage.close();
    }
  });

  it('authenticates with user and password, and a refused password never shows in its messages', async () => {
    const server = await startNatsServer('pump', 'right-secret-password');
    try {
      const refused = newSink({ servers: server.url, user: 'pump', password: 'wrong-secret-password' });
      const failure = await refused.open().then(
        () => null,
        (error: unknown) => error,
      );
      expect(failure).toBeInstanceOf(RetryableError);
      expect((failure as Error).message).toMatch(/Authorization Violation/i);
      expect((failure as Error).message).not.toContain('wrong-secret-password');
      const accepted = newSink({ servers: server.url, user: 'pump', password: 'right-secret-password' });
      await accepted.open();
      expect(await accepted.write(analyticsRecords(3))).toEqual([]);
      await accepted.close();
    } finally {
      await server.stop();
    }
  });

  it('is configured under pump.sinks with its own options, bad ones named', () => {
    expect(sinkConfigSchema.parse({ type: 'nats' })).toMatchObject({
      type: 'nats',
      servers: 'nats://127.0.0.1:4222',
      subject: 'tollgate.records.{apiId}',
      createStream: false,
      duplicateWindowSec: 300,
    });
    const bad = sinkConfigSchema.safeParse({ type: 'nats', servers: ['http://x'], subject: 'a.*.b', stream: 'a.b' });
    expect(bad.error?.issues.map((issue) => `${issue.path.join('.')}: ${issue.message}`)).toEqual([
      'servers.0: expected a nats:// or tls:// URL',
      'subject: expected a NATS subject: tokens separated by ".", without spaces or the wildcards "*" and ">"',
      'stream: expected a stream name: letters, digits, "_" or "-"',
    ]);
    expect(sinkConfigSchema.safeParse({ type: 'nats', subject: 'a.x{apiId}' }).error?.issues[0]?.message).toBe('expected {apiId} as a whole token');
    expect(() => newSink({ stream: undefined, createStream: true })).toThrow('createStream needs stream');
  });
});
