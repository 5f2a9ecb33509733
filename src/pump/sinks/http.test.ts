import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import type { AnalyticsRecord } from '../../analytics/analytics-record.js';
import { analyticsRecord, analyticsRecords } from '../../../test/support/analytics-records.js';
import { builtRecords } from '../../../test/support/built-records.js';
import { eventually } from '../../../test/support/gateway-process.js';
import {
  attribute,
  BUSY_ONCE_API,
  elasticsearchReceiver,
  lokiReceiver,
  otlpReceiver,
  REFUSED_API,
  splunkHecReceiver,
} from '../../../test/support/http-format-receivers.js';
import { HttpReceiver, type ReceiverAnswer } from '../../../test/support/http-receiver.js';
import { DeadLetter } from '../dead-letter.js';
import { PumpMetrics } from '../pump-metrics.js';
import { RejectedError, RetryableError, type Sink } from '../sink.js';
import { SinkRunner } from '../sink-runner.js';
import { createSink, type SinkConfig } from './create-sink.js';
import { retryAfterMs } from './http.js';
import { sinkConfigSchema } from './registry.js';

let receivers: HttpReceiver[] = [];
let sinks: Sink[] = [];
let runners: SinkRunner[] = [];
let scratch: string[] = [];

afterEach(async () => {
  for (const runner of runners) await runner.stop();
  for (const sink of sinks) await sink.close();
  for (const receiver of receivers) await receiver.close();
  for (const directory of scratch) await rm(directory, { recursive: true, force: true });
  [receivers, sinks, runners, scratch] = [[], [], [], []];
});

function configOf(options: Record<string, unknown>): SinkConfig {
  return sinkConfigSchema.parse({ type: 'http', timeoutMs: 2_000, ...options }) as SinkConfig;
}

async function openSink(options: Record<string, unknown>, notes: string[] = []): Promise<Sink> {
  const sink = createSink(configOf(options), (message) => void notes.push(message));
  sinks.push(sink);
  await sink.open();
  return sink;
}

async function receiving(handler: (request: { body: string; headers: Record<string, unknown> }) => ReceiverAnswer): Promise<HttpReceiver> {
  const receiver = await HttpReceiver.start(handler);
  receivers.push(receiver);
  return receiver;
}

/** A runner as the pump makes one, its operational messages kept in `notes`. */
async function runnerFor(options: Record<string, unknown>, notes: string[]): Promise<{ runner: SinkRunner; deadLetter: DeadLetter }> {
  const directory = await mkdtemp(join(tmpdir(), 'tollgate-http-sink-'));
  scratch.push(directory);
  const config = configOf({ batchSize: 50, maxDelayMs: 10, ...options });
  const notify = (message: string): void => void notes.push(message);
  const deadLetter = new DeadLetter(join(directory, 'dead-letter'), 'http');
  const sink = createSink(config, notify);
  const runner = new SinkRunner('http', sink, config, deadLetter, new PumpMetrics().sink('http'), notify);
  runners.push(runner);
  return { runner, deadLetter };
}

async function failure(promise: Promise<unknown>): Promise<Error> {
  try {
    await promise;
  } catch (error) {
    return error as Error;
  }
  throw new Error('expected the write to fail');
}

describe('the http sink, elasticsearch format', () => {
  it('reads each _bulk item: a 409 counts as delivered, an item-level 429 is resent alone, an item 400 is refused', async () => {
    const es = await elasticsearchReceiver();
    receivers.push(es.receiver);
    const sink = await openSink({ url: es.receiver.url, format: { type: 'elasticsearch', index: 'tollgate-{yyyy}.{MM}.{dd}' } });
    const busy = analyticsRecord({ apiId: BUSY_ONCE_API });
    const refused = analyticsRecord({ apiId: REFUSED_API });
    const records = [...analyticsRecords(5), busy, refused, ...analyticsRecords(3)];

    const rejected = await sink.write(records);
    expect(rejected.map(({ record }) => record.id)).toEqual([refused.id]);
    expect(rejected[0]?.reason).toMatch(/Elasticsearch item 400: mapper_parsing_exception/);
    // The second request carried the one item the receiver asked again for, nothing it had taken.
    expect(es.receiver.requests.map((request) => request.body.split('\n').length - 1)).toEqual([20, 2]);
    expect(es.receiver.requests[1]?.body).toContain(`"_id":"${busy.id}"`);
    expect([...es.documents.keys()].sort()).toEqual(
      records.filter((record) => record !== refused).map((record) => `tollgate-2026.11.22/${record.id}`).sort(),
    );

    // Delivered again (a redelivery after a crash): every item a 409, nothing stored twice, still not an error.
    const before = es.itemStatuses.length;
    expect((await sink.write(records)).map(({ record }) => record.id)).toEqual([refused.id]);
    expect(es.itemStatuses.slice(before).filter((status) => status === 409)).toHaveLength(9);
    expect(es.held()).toHaveLength(9);
    expect(es.receiver.problems).toEqual([]);
  });

  it('does not take a 200 whose items keep failing for success, and its retry resends only the items not taken', async () => {
    const es = await elasticsearchReceiver();
    receivers.push(es.receiver);
    const sink = await openSink({ url: es.receiver.url, format: 'elasticsearch' });
    const records = analyticsRecords(6);
    const stuck = records[2] as AnalyticsRecord;
    es.busy.add(stuck.id);

    const error = await failure(sink.write(records));
    expect(error).toBeInstanceOf(RetryableError);
    expect(error.message).toMatch(/1 of 6 records not taken yet \(first: Elasticsearch item 429: es_rejected_execution_exception/);
    expect(es.held()).toHaveLength(5);
    const sent = es.receiver.requests.length;

    es.busy.delete(stuck.id);
    expect(await sink.write(records)).toEqual([]);
    expect(es.receiver.requests.slice(sent).map((request) => request.body)).toEqual([expect.stringContaining(stuck.id)]);
    expect(es.receiver.requests.at(-1)?.body.split('\n')).toHaveLength(3);
    expect(new Set(es.held())).toEqual(new Set(records.map((record) => record.id)));
  });

  it('refuses only the records still pending when a resend is refused as a whole, not those taken before', async () => {
    let requests = 0;
    const receiver = await receiving((request) => {
      if (++requests > 1) return { status: 400, body: '{"error":"illegal_argument_exception"}' };
      const ids = request.body.split('\n').flatMap((line) => (line.startsWith('{"create"') ? [(JSON.parse(line) as { create: { _id: string } }).create._id] : []));
      const items = ids.map((id, i) => ({ create: { _id: id, status: i === 1 ? 503 : 201, ...(i === 1 ? { error: { type: 'unavailable_shards_exception', reason: 'primary shard is not active' } } : {}) } }));
      return { status: 200, body: JSON.stringify({ took: 1, errors: true, items }) };
    });
    const sink = await openSink({ url: receiver.url, format: 'elasticsearch' });
    const records = analyticsRecords(4);
    const rejected = await sink.write(records);
    expect(rejected.map(({ record }) => record.id)).toEqual([records[1]?.id]);
    expect(rejected[0]?.reason).toMatch(/answered 400: \{"error":"illegal_argument_exception"\}/);
  });

  it('fails retryably on a _bulk answer that does not account for every item', async () => {
    const receiver = await receiving(() => ({ status: 200, body: JSON.stringify({ took: 1, errors: false, items: [] }) }));
    const sink = await openSink({ url: receiver.url, format: 'elasticsearch' });
    const error = await failure(sink.write(analyticsRecords(3)));
    expect(error).toBeInstanceOf(RetryableError);
    expect(error.message).toMatch(/names 0 items for 3 records/);
  });
});

describe('the http sink answers', () => {
  it.each([
    [400, 'RejectedError', RejectedError],
    [401, 'RejectedError', RejectedError],
    [403, 'RejectedError', RejectedError],
    [404, 'RejectedError', RejectedError],
    [408, 'RetryableError', RetryableError],
    [429, 'RetryableError', RetryableError],
    [500, 'RetryableError', RetryableError],
    [502, 'RetryableError', RetryableError],
    [503, 'RetryableError', RetryableError],
    [504, 'RetryableError', RetryableError],
  ])('%i with a %s', async (status, _name, kind) => {
    const receiver = await receiving(() => ({ status, body: `{"error":"status ${status}"}` }));
    const sink = await openSink({ url: receiver.url });
    const error = await failure(sink.write(analyticsRecords(2)));
    expect(error).toBeInstanceOf(kind);
    expect(error.message).toContain(`answered ${status}: {"error":"status ${status}"}`);
  });

  it('413 by sending the batch in halves until each body fits, refusing only a record too large alone', async () => {
    const LIMIT = 6_000;
    const receiver = await receiving((request) => (request.body.length > LIMIT ? { status: 413, body: '{"error":"too large"}' } : { status: 200, body: '{}' }));
    const notes: string[] = [];
    const sink = await openSink({ url: receiver.url }, notes);
    const huge = analyticsRecord({ userAgent: 'x'.repeat(LIMIT) });
    const records = [...analyticsRecords(12), huge, ...analyticsRecords(3)];
    const rejected = await sink.write(records);
    expect(rejected.map(({ record }) => record.id)).toEqual([huge.id]);
    expect(rejected[0]?.reason).toMatch(/answered 413/);
    const taken = receiver.requests.filter((request) => request.body.length <= LIMIT).flatMap((request) => request.body.trimEnd().split('\n'));
    expect(taken.map((line) => (JSON.parse(line) as AnalyticsRecord).id).sort()).toEqual(records.filter((record) => record !== huge).map((record) => record.id).sort());
    expect(notes).toHaveLength(1);
    expect(notes[0]).toMatch(/refused a body of \d+ bytes as too large \(413\); batches go in halves/);
  });

  it('413 in halves: a failing second half does not send the first again', async () => {
    let down = true;
    const taken: string[] = [];
    const receiver = await receiving((request) => {
      const ids = request.body
        .trimEnd()
        .split('\n')
        .map((line) => (JSON.parse(line) as AnalyticsRecord).id);
      if (ids.length > 4) return { status: 413, body: '{}' };
      if (down && taken.length >= 4) return { status: 503, body: '{}' };
      taken.push(...ids);
      return { status: 200, body: '{}' };
    });
    const sink = await openSink({ url: receiver.url, timeoutMs: 60_000 });
    const records = analyticsRecords(8);
    expect(await failure(sink.write(records))).toBeInstanceOf(RetryableError);
    expect(taken).toEqual(records.slice(0, 4).map((record) => record.id));
    down = false;
    expect(await sink.write(records)).toEqual([]);
    expect(taken.sort()).toEqual(records.map((record) => record.id).sort());
  });

  it('fails retryably when nothing listens, and when no answer comes within timeoutMs', async () => {
    const receiver = await receiving(() => ({ status: 200 }));
    const url = receiver.url;
    await receiver.cut();
    const refused = await openSink({ url });
    expect(await failure(refused.write(analyticsRecords(1)))).toBeInstanceOf(RetryableError);

    const silent = await HttpReceiver.start(() => new Promise<ReceiverAnswer>(() => undefined));
    receivers.push(silent);
    const sink = await openSink({ url: silent.url, timeoutMs: 300 });
    const started = Date.now();
    const error = await failure(sink.write(analyticsRecords(1)));
    expect(error).toBeInstanceOf(RetryableError);
    expect(error.message).toMatch(/timeout/i);
    expect(Date.now() - started).toBeLessThan(2_000);
  });

  it('reads Retry-After as seconds or as an HTTP date', async () => {
    const now = Date.UTC(2026, 10, 22, 6, 0, 0);
    expect(retryAfterMs('7', now)).toBe(7_000);
    expect(retryAfterMs(new Date(now + 12_000).toUTCString(), now)).toBe(12_000);
    expect(retryAfterMs(new Date(now - 5_000).toUTCString(), now)).toBe(0);
    expect(retryAfterMs('soon', now)).toBeNull();
    expect(retryAfterMs(undefined, now)).toBeNull();

    const receiver = await receiving(() => ({ status: 429, headers: { 'retry-after': '3' }, body: '{}' }));
    const sink = await openSink({ url: receiver.url });
    const error = await failure(sink.write(analyticsRecords(1)));
    expect(error).toBeInstanceOf(RetryableError);
    expect((error as RetryableError).retryAfterMs).toBe(3_000);
  });

  it('waits as long as Retry-After asks before the runner tries again', async () => {
    const arrivals: number[] = [];
    const receiver = await receiving(() => {
      arrivals.push(Date.now());
      return arrivals.length === 1 ? { status: 503, headers: { 'retry-after': '1' }, body: '{}' } : { status: 200, body: '{}' };
    });
    const { runner } = await runnerFor({ url: receiver.url }, []);
    await runner.deliver(analyticsRecords(3));
    expect(arrivals).toHaveLength(2);
    // Without Retry-After the first backoff is at most 200 ms.
    expect((arrivals[1] as number) - (arrivals[0] as number)).toBeGreaterThanOrEqual(950);
  });
});

describe('the http sink keeps its secrets', () => {
  const PASSWORD = 'p4ssw0rd-very-secret';
  const BEARER = 'bearer-token-very-secret';
  const TOKEN = 'splunk-token-very-secret';
  const HEADER = 'header-key-very-secret';

  /** A receiver that echoes the headers it got in its error answer, as some proxies do. */
  const echoing = (status: number) => (request: { headers: Record<string, unknown> }) => ({
    status,
    body: JSON.stringify({ error: 'nope', headers: request.headers }),
  });

  it.each([
    ['basic auth and a header', { auth: { basic: { user: 'pump', password: PASSWORD } }, headers: { 'X-Api-Key': HEADER } }],
    ['a bearer token', { auth: { bearer: BEARER } }],
    ['a Splunk token', { format: { type: 'splunk-hec', token: TOKEN } }],
  ])('out of every message with %s, retrying and refused', async (_what, options) => {
    const secrets = [PASSWORD, BEARER, TOKEN, HEADER, Buffer.from(`pump:${PASSWORD}`).toString('base64')];
    let status = 503;
    const receiver = await receiving((request) => echoing(status)(request));
    const notes: string[] = [];
    const { runner, deadLetter } = await runnerFor({ url: `${receiver.url}/in?key=${HEADER}`, ...options }, notes);
    const delivery = runner.deliver(analyticsRecords(2));
    await eventually(async () => (notes.some((note) => note.includes('answered 503')) ? true : undefined), 10_000, 'the retry to be reported');
    status = 401;
    await delivery;
    expect(deadLetter.totals().records).toBe(2);
    expect(notes.some((note) => note.includes('answered 401'))).toBe(true);
    // The receiver did get the secret (it echoed it): the sink kept it out of what it said.
    expect(receiver.requests.length).toBeGreaterThan(0);
    for (const note of notes) for (const secret of secrets) expect(note).not.toContain(secret);
    expect(notes.join('\n')).toContain('[REDACTED]');
  });
});

describe('the http sink, splunk-hec format', () => {
  it('sends one event per record with time in epoch seconds, host, source, sourcetype and index', async () => {
    const splunk = await splunkHecReceiver('hec-token');
    receivers.push(splunk.receiver);
    const sink = await openSink({ url: splunk.receiver.url, format: { type: 'splunk-hec', token: 'hec-token' } });
    const record = analyticsRecord({ timestamp: 1_763_789_400_123 });
    expect(await sink.write([record])).toEqual([]);
    expect(splunk.events).toEqual([{ time: 1_763_789_400.123, host: 'test-1', source: 'tollgate', sourcetype: '_json', event: record }]);
    expect(splunk.receiver.requests[0]?.headers.authorization).toBe('Splunk hec-token');
    expect(splunk.receiver.problems).toEqual([]);
  });
});

describe('the http sink, loki format', () => {
  it('groups records in streams by the bounded labels, each stream in time order, and a redelivery is kept once', async () => {
    const loki = await lokiReceiver(['job', 'api', 'status_class']);
    receivers.push(loki.receiver);
    const sink = await openSink({ url: `${loki.receiver.url}/`, format: 'loki' });
    const base = Date.UTC(2026, 10, 22, 6, 0, 0);
    const records = [
      ...[3, 1, 2].map((i) => analyticsRecord({ apiId: 'orders', status: 200, timestamp: base + i })),
      analyticsRecord({ apiId: 'orders', status: 503, timestamp: base }),
      analyticsRecord({ apiId: 'billing', status: 404, timestamp: base + 0.25 }),
    ];
    expect(await sink.write(records)).toEqual([]);
    const push = JSON.parse(loki.receiver.requests[0]?.body ?? '') as { streams: { stream: Record<string, string>; values: [string, string][] }[] };
    expect(push.streams.map(({ stream }) => stream)).toEqual([
      { job: 'tollgate', api: 'orders', status_class: '2xx' },
      { job: 'tollgate', api: 'orders', status_class: '5xx' },
      { job: 'tollgate', api: 'billing', status_class: '4xx' },
    ]);
    expect(push.streams[0]?.values.map(([ns]) => ns)).toEqual([1, 2, 3].map((i) => `${BigInt(base + i) * 1_000_000n}`));
    expect(push.streams[2]?.values[0]?.[0]).toBe(`${BigInt(base) * 1_000_000n + 250_000n}`);
    expect(JSON.parse(push.streams[1]?.values[0]?.[1] ?? '')).toEqual(records[3]);

    expect(await sink.write(records)).toEqual([]);
    expect(loki.duplicatesDropped).toBe(5);
    expect(loki.held().sort()).toEqual(records.map((record) => record.id).sort());
    expect(loki.receiver.problems).toEqual([]);
  });

  it('takes labels only from the bounded set', () => {
    const bad = sinkConfigSchema.safeParse({ type: 'http', url: 'http://127.0.0.1:3100', format: { type: 'loki', labels: ['api', 'id'], staticLabels: { 'a-b': 'x' } } });
    expect(bad.error?.issues.map((issue) => `${issue.path.join('.')}: ${issue.message}`)).toEqual([
      'format.labels.1: Invalid option: expected one of "api"|"status_class"|"method"|"outcome"|"instance"',
      'format.staticLabels.a-b: expected a Loki label name: a letter or "_", then letters, digits or "_"',
    ]);
  });
});

describe('the http sink, otlp format', () => {
  const TRACE = '4bf92f3577b34da6a3ce929d0e0e4736';
  const SPAN = '00f067aa0ba902b7';

  it('sends one LogRecord per transaction named by the HTTP semantic conventions, with the trace context of the request', async () => {
    const otlp = await otlpReceiver();
    receivers.push(otlp.receiver);
    const sink = await openSink({ url: `${otlp.receiver.url}/v1/logs`, format: { type: 'otlp', serviceName: 'edge-gateway' } });
    const [traced, failed, plain] = [
      ...builtRecords(1, {
        tweak: (transaction) => {
          const request = transaction.clientLeg.recvHeader as { startLine: string; fields: readonly string[] };
          transaction.clientLeg.recvHeader = { ...request, fields: [...request.fields, 'Traceparent', `00-${TRACE}-${SPAN}-01`] };
        },
      }),
      ...builtRecords(1, { status: 502 }),
      ...builtRecords(1, { headers: false, tweak: (transaction) => (transaction.method = 'purge') }),
    ] as [AnalyticsRecord, AnalyticsRecord, AnalyticsRecord];
    expect(await sink.write([traced, failed, plain])).toEqual([]);
    expect(otlp.receiver.problems).toEqual([]);
    expect(otlp.receiver.requests[0]?.url).toBe('/v1/logs');

    const [first, second, third] = otlp.logRecords as [Record<string, unknown>, Record<string, unknown>, Record<string, unknown>];
    expect(first).toMatchObject({ traceId: TRACE, spanId: SPAN, flags: 1, severityNumber: 9, severityText: 'INFO', timeUnixNano: `${BigInt(traced.timestamp) * 1_000_000n}` });
    expect(second).toMatchObject({ severityNumber: 17, severityText: 'ERROR' });
    expect(second.traceId).toBeUndefined();
    expect(third.traceId).toBeUndefined();
    expect(attribute(third.attributes, 'http.request.method')).toEqual({ stringValue: '_OTHER' });
    expect(attribute(third.attributes, 'http.request.method_original')).toEqual({ stringValue: 'purge' });
    const value = (key: string): unknown => attribute(first.attributes, key);
    expect(value('http.request.method')).toEqual({ stringValue: traced.method });
    expect(value('http.response.status_code')).toEqual({ intValue: '200' });
    expect(value('url.path')).toEqual({ stringValue: traced.path });
    expect(value('url.query')).toEqual({ stringValue: traced.uri.split('?')[1] });
    expect(value('url.full')).toEqual({ stringValue: `http://api.example.com${traced.uri}` });
    expect(value('http.route')).toEqual({ stringValue: traced.normalisedPath });
    expect(value('client.address')).toEqual({ stringValue: traced.clientAddr });
    expect(value('server.address')).toEqual({ stringValue: 'api.example.com' });
    expect(value('user_agent.original')).toEqual({ stringValue: traced.userAgent });
    expect(value('log.record.uid')).toEqual({ stringValue: traced.id });
    expect(value('tollgate.api.id')).toEqual({ stringValue: 'orders' });
    expect(value('tollgate.latency.total_ms')).toEqual({ doubleValue: traced.latencyTotal });
    expect(value('tollgate.tags')).toEqual({ arrayValue: { values: traced.tags.map((tag) => ({ stringValue: tag })) } });
    expect(attribute(otlp.resources[0]?.attributes, 'service.name')).toEqual({ stringValue: 'edge-gateway' });
    expect(attribute(otlp.resources[0]?.attributes, 'service.instance.id')).toEqual({ stringValue: 'gw-1' });
  });

  it('tells of records a collector dropped in a partial success', async () => {
    const receiver = await receiving(() => ({ status: 200, body: JSON.stringify({ partialSuccess: { rejectedLogRecords: '2', errorMessage: 'too old' } }) }));
    const notes: string[] = [];
    const sink = await openSink({ url: receiver.url, format: 'otlp' }, notes);
    expect(await sink.write(analyticsRecords(3))).toEqual([]);
    expect(notes).toEqual(['http: the collector dropped 2 log records: too old']);
  });
});

describe('the http sink is configured', () => {
  it('with its own options under pump.sinks, bad ones named by their path', () => {
    expect(sinkConfigSchema.parse({ type: 'http', url: 'https://logs.example.com/ingest' })).toMatchObject({ format: { type: 'ndjson' }, gzip: false, headers: {} });
    const bad = sinkConfigSchema.safeParse({
      type: 'http',
      url: 'https://user:pw@logs.example.com/',
      auth: { basic: { user: 'u', password: 'p' }, bearer: 't' },
      headers: { 'bad header': 'x' },
    });
    expect(bad.error?.issues.map((issue) => `${issue.path.join('.')}: ${issue.message}`)).toEqual([
      'url: put credentials in auth, not in the url',
      'headers.bad header: expected an HTTP header name',
      'auth: expected either basic or bearer',
    ]);
    const splunk = sinkConfigSchema.safeParse({ type: 'http', url: 'https://hec.example.com:8088', format: 'splunk-hec' });
    expect(splunk.error?.issues.map((issue) => issue.path.join('.'))).toEqual(['format.token']);
    const es = sinkConfigSchema.safeParse({ type: 'http', url: 'http://es:9200', format: { type: 'elasticsearch', index: 'Logs' } });
    expect(es.error?.issues.map((issue) => issue.path.join('.'))).toEqual(['format.index']);
  });

  it('with the format endpoint appended to the url path, unless the url names it already', async () => {
    const receiver = await receiving(() => ({ status: 200, body: '{}' }));
    for (const url of [`${receiver.url}/logs/`, `${receiver.url}/logs/v1/logs`, `${receiver.url}/hook?tenant=a`]) {
      const sink = await openSink({ url, format: url.includes('hook') ? 'ndjson' : 'otlp' });
      expect(await sink.write(analyticsRecords(1))).toEqual([]);
    }
    expect(receiver.requests.map((request) => request.url)).toEqual(['/logs/v1/logs', '/logs/v1/logs', '/hook?tenant=a']);
  });
});
