import { randomBytes } from 'node:crypto';
import { connect, type Channel, type ChannelModel, type ConsumeMessage } from 'amqplib';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import type { AnalyticsRecord } from '../../analytics/analytics-record.js';
import { analyticsRecord, analyticsRecords } from '../../../test/support/analytics-records.js';
import { eventually } from '../../../test/support/gateway-process.js';
import { TcpProxy } from '../../../test/support/tcp-proxy.js';
import { RetryableError } from '../sink.js';
import { AmqpSink, type AmqpSinkOptions } from './amqp.js';
import { sinkConfigSchema } from './registry.js';
import { describeSinkContract } from './sink-suite.js';

const SERVER = { host: '127.0.0.1', port: 5672 };
const urlOf = (port = SERVER.port, password = 'guest'): string => `amqp://guest:${password}@${SERVER.host}:${port}`;
/** This run's exchanges and queues carry it, so runs never meet; each is deleted after. */
const RUN = `t${randomBytes(5).toString('hex')}`;
let names = 0;
const exchanges: string[] = [];
const queues: string[] = [];

let admin: ChannelModel;
let channel: Channel;
let proxy: TcpProxy;
let sinks: AmqpSink[] = [];
/** What each queue gave so far: reading a queue takes its messages, so every read adds to this. */
const taken = new Map<string, ConsumeMessage[]>();

beforeAll(async () => {
  admin = await connect(urlOf()).catch((error: Error) => {
    throw new Error(`these tests need RabbitMQ at ${SERVER.host}:${SERVER.port} (user guest, password guest): ${error.message}`);
  });
  channel = await admin.createChannel();
  proxy = await TcpProxy.start(SERVER.host, SERVER.port);
});

afterAll(async () => {
  await proxy?.close();
  for (const queue of queues) await channel.deleteQueue(queue);
  for (const exchange of exchanges) await channel.deleteExchange(exchange);
  await admin?.close();
});

afterEach(async () => {
  for (const sink of sinks) await sink.close();
  sinks = [];
});

/** An exchange and a queue name of this run's own, deleted at the end. */
function fresh(): { exchange: string; queue: string } {
  const n = ++names;
  const exchange = `tollgate_${RUN}_${n}`;
  const queue = `tollgate_${RUN}_${n}`;
  exchanges.push(exchange);
  queues.push(queue);
  return { exchange, queue };
}

function newSink(options: Partial<AmqpSinkOptions>, notes: string[] = []): AmqpSink {
  const sink = new AmqpSink({ url: urlOf(), timeoutMs: 5_000, ...options }, { name: 'amqp', notify: (message) => void notes.push(message) });
  sinks.push(sink);
  return sink;
}

/** Every message the queue has given to this test run: what it holds now is taken (consumed) and added. */
async function messagesIn(queue: string): Promise<ConsumeMessage[]> {
  const messages = taken.get(queue) ?? [];
  taken.set(queue, messages);
  const { messageCount } = await channel.checkQueue(queue);
  if (messageCount === 0) return messages;
  let received = 0;
  let consumerTag = '';
  await new Promise<void>((resolve) => {
    void channel
      .consume(
        queue,
        (message) => {
          if (message !== null) messages.push(message);
          if (message === null || ++received === messageCount) resolve();
        },
        { noAck: true },
      )
      .then((reply) => (consumerTag = reply.consumerTag));
  });
  await channel.cancel(consumerTag);
  return messages;
}

const recordOf = (message: ConsumeMessage): AnalyticsRecord => JSON.parse(message.content.toString('utf8')) as AnalyticsRecord;

let suiteQueue = '';

describeSinkContract({
  name: 'amqp',
  config: () => {
    const { exchange, queue } = fresh();
    suiteQueue = queue;
    // A direct exchange binding only the test records' API: a record of another API routes nowhere.
    return { type: 'amqp', url: urlOf(proxy.port), exchange, exchangeType: 'direct', queue, bindingKey: 'petstore' };
  },
  readBack: async () => (await messagesIn(suiteQueue)).map((message) => recordOf(message).id),
  outage: { cut: () => proxy.cutOff(), restore: () => proxy.restore() },
  rejectable: () => analyticsRecord({ apiId: 'routed-nowhere' }),
});

describe('the amqp sink', () => {
  it('publishes persistent JSON messages, message_id = the record id, routed by API id through the exchange to the bound queue', async () => {
    const { exchange, queue } = fresh();
    const sink = newSink({ exchange, exchangeType: 'topic', queue });
    await sink.open();
    const records = [...analyticsRecords(2), analyticsRecord({ apiId: 'billing' }), analyticsRecord({ apiId: null })];
    expect(await sink.write(records)).toEqual([]);
    const held = await messagesIn(queue);
    expect(
      held.map(({ fields, properties, content }) => ({
        exchange: fields.exchange,
        routingKey: fields.routingKey,
        deliveryMode: properties.deliveryMode,
        messageId: properties.messageId,
        contentType: properties.contentType,
        type: properties.type,
        appId: properties.appId,
        timestamp: properties.timestamp,
        record: JSON.parse(content.toString('utf8')),
      })),
    ).toEqual(
      records.map((record) => ({
        exchange,
        routingKey: record.apiId ?? '_none',
        deliveryMode: 2,
        messageId: record.id,
        contentType: 'application/json',
        type: 'tollgate.analytics-record',
        appId: 'tollgate',
        timestamp: Math.floor(record.timestamp / 1000),
        record,
      })),
    );
    const declared = await channel.checkQueue(queue);
    expect(declared.queue).toBe(queue);
  });

  it('without an exchange, sends the messages straight to the queue through the default exchange', async () => {
    const { queue } = fresh();
    const sink = newSink({ queue, routingKey: 'ignored' });
    await sink.open();
    const records = analyticsRecords(3);
    expect(await sink.write(records)).toEqual([]);
    const held = await messagesIn(queue);
    expect(held.map(({ fields, properties }) => ({ exchange: fields.exchange, routingKey: fields.routingKey, messageId: properties.messageId }))).toEqual(
      records.map((record) => ({ exchange: '', routingKey: queue, messageId: record.id })),
    );
  });

  it('is at least once: a batch cut off mid-publish and written again leaves every record in the queue, a copy twice with the same message_id', async () => {
    const { queue } = fresh();
    const cutting = await TcpProxy.start(SERVER.host, SERVER.port);
    try {
      const sink = newSink({ url: urlOf(cutting.port), queue, timeoutMs: 20_000 });
      await sink.open();
      const records = analyticsRecords(5_000);
      const first = sink.write(records).then(
        () => null,
        (error: unknown) => error,
      );
      await eventually(async () => ((await channel.checkQueue(queue)).messageCount > 0 || undefined), 10_000, 'the first messages in the queue');
      await cutting.cutOff();
      const failure = await first;
      expect(failure).toBeInstanceOf(RetryableError);
      await cutting.restore();
      expect(await sink.write(records)).toEqual([]);
      const held = await messagesIn(queue);
      const copies = new Map<string, number>();
      for (const message of held) {
        const id = recordOf(message).id;
        expect(message.properties.messageId).toBe(id);
        copies.set(id, (copies.get(id) ?? 0) + 1);
      }
      expect(records.filter((record) => !copies.has(record.id))).toEqual([]);
      expect(held.length).toBeGreaterThan(records.length);
      await sink.close();
    } finally {
      await cutting.close();
    }
  });

  it('fails the write retryably when the broker refuses messages (nack), and succeeds once they fit', async () => {
    const { exchange, queue } = fresh();
    await channel.assertExchange(exchange, 'direct', { durable: false });
    await channel.assertQueue(queue, { durable: true, maxLength: 5, arguments: { 'x-overflow': 'reject-publish' } });
    await channel.bindQueue(queue, exchange, 'records');
    const sink = newSink({ exchange, routingKey: 'records' });
    await sink.open();
    const failure = await sink.write(analyticsRecords(10)).then(
      () => null,
      (error: unknown) => error,
    );
    expect(failure).toBeInstanceOf(RetryableError);
    expect((failure as Error).message).toMatch(/nack/);
    await channel.purgeQueue(queue);
    expect(await sink.write(analyticsRecords(5))).toEqual([]);
    expect(await messagesIn(queue)).toHaveLength(5);
  });

  it('fails to open, retryably, naming an exchange that does not exist or refused credentials, never showing the password', async () => {
    const { exchange } = fresh();
    const missing = newSink({ exchange });
    const notFound = await missing.open().then(
      () => null,
      (error: unknown) => error,
    );
    expect(notFound).toBeInstanceOf(RetryableError);
    expect((notFound as Error).message).toMatch(new RegExp(`NOT_FOUND - no exchange '${exchange}'`));

    const refused = newSink({ url: urlOf(SERVER.port, 'wrong-secret-password'), queue: fresh().queue });
    const denied = await refused.open().then(
      () => null,
      (error: unknown) => error,
    );
    expect(denied).toBeInstanceOf(RetryableError);
    expect((denied as Error).message).toMatch(/ACCESS_REFUSED/);
    expect((denied as Error).message).toContain('amqp://guest:***@127.0.0.1:5672');
    expect((denied as Error).message).not.toContain('wrong-secret-password');
  });

  it('is configured under pump.sinks with its own options, bad ones named', () => {
    expect(sinkConfigSchema.parse({ type: 'amqp', queue: 'records' })).toMatchObject({ type: 'amqp', url: 'amqp://guest:guest@127.0.0.1:5672', queue: 'records' });
    const bad = sinkConfigSchema.safeParse({ type: 'amqp', url: 'http://x', exchangeType: 'random', queue: '' });
    expect(bad.error?.issues.map((issue) => `${issue.path.join('.')}: ${issue.message}`)).toEqual([
      'url: expected an amqp:// or amqps:// URL',
      'exchangeType: Invalid option: expected one of "direct"|"topic"|"fanout"|"headers"',
      'queue: Too small: expected string to have >=1 characters',
    ]);
  });
});
