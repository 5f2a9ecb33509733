import { createServer, type AddressInfo, type Socket } from 'node:net';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import type { AnalyticsRecord } from '../../analytics/analytics-record.js';
import { analyticsRecord, analyticsRecords } from '../../../test/support/analytics-records.js';
import { eventually } from '../../../test/support/gateway-process.js';
import { RsyslogServer, type ReceivedMessage, type SyslogTransport } from '../../../test/support/rsyslog-server.js';
import { freePort } from '../../../test/support/redis-server.js';
import { TcpProxy } from '../../../test/support/tcp-proxy.js';
import { RetryableError } from '../sink.js';
import { createSink, type SinkConfig } from './create-sink.js';
import { sinkConfigSchema } from './registry.js';
import { describeSinkContract } from './sink-suite.js';
import { SyslogSink, type SyslogSinkOptions } from './syslog.js';

interface Rfc5424Message {
  priority: number;
  version: number;
  timestamp: string;
  hostname: string;
  appName: string;
  procid: string;
  msgid: string;
  /** SD-ID to its parameters, values unescaped. */
  structuredData: Record<string, Record<string, string>>;
  msg: string | null;
}

/** Parses an RFC 5424 message strictly (section 6's ABNF); anything else throws. */
function parseRfc5424(text: string): Rfc5424Message {
  const header =
    /^<(\d{1,3})>([1-9]\d{0,2}) (-|\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(?:\.\d{1,6})?(?:Z|[+-]\d{2}:\d{2})) ([\x21-\x7e]{1,255}) ([\x21-\x7e]{1,48}) ([\x21-\x7e]{1,128}) ([\x21-\x7e]{1,32}) /.exec(
      text,
    );
  if (header === null) throw new Error(`not an RFC 5424 header: ${JSON.stringify(text.slice(0, 200))}`);
  const [whole, priority, version, timestamp, hostname, appName, procid, msgid] = header as unknown as string[];
  if (Number(priority) > 191) throw new Error(`PRI out of range: ${priority}`);
  let at = (whole as string).length;
  const structuredData: Rfc5424Message['structuredData'] = {};
  const name = (): string => {
    const match = /^[^= \]"\x00-\x20\x7f-\uffff]{1,32}/.exec(text.slice(at));
    if (match === null) throw new Error(`expected an SD name at ${at}: ${JSON.stringify(text.slice(at, at + 40))}`);
    at += match[0].length;
    return match[0];
  };
  const expectChar = (char: string): void => {
    if (text[at] !== char) throw new Error(`expected ${JSON.stringify(char)} at ${at}, found ${JSON.stringify(text.slice(at, at + 40))}`);
    at++;
  };
  if (text[at] === '-') at++;
  else {
    do {
      expectChar('[');
      const id = name();
      if (id in structuredData) throw new Error(`SD-ID ${id} twice`);
      const params: Record<string, string> = {};
      while (text[at] === ' ') {
        at++;
        const param = name();
        expectChar('=');
        expectChar('"');
        let value = '';
        for (;;) {
          const char = text[at++];
          if (char === undefined) throw new Error('unterminated PARAM-VALUE');
          if (char === '"') break;
          if (char === ']') throw new Error(`an unescaped "]" in ${param}`);
          if (char === '\\' && ['"', '\\', ']'].includes(text[at] as string)) value += text[at++];
          else value += char;
        }
        params[param] = value;
      }
      expectChar(']');
      structuredData[id] = params;
    } while (text[at] === '[');
  }
  if (at === text.length) return { priority: Number(priority), version: Number(version), timestamp, hostname, appName, procid, msgid, structuredData, msg: null } as Rfc5424Message;
  expectChar(' ');
  return { priority: Number(priority), version: Number(version), timestamp, hostname, appName, procid, msgid, structuredData, msg: text.slice(at) } as Rfc5424Message;
}

let rsyslog: RsyslogServer;
let sinks: SyslogSink[] = [];

beforeAll(async () => {
  rsyslog = await RsyslogServer.start();
}, 30_000);

afterAll(async () => {
  await rsyslog?.close();
});

afterEach(async () => {
  for (const sink of sinks) await sink.close();
  sinks = [];
});

function config(transport: SyslogTransport, options: Record<string, unknown> = {}): Record<string, unknown> {
  return { type: 'syslog', transport, port: rsyslog.ports[transport], ...(transport === 'tls' ? { ca: rsyslog.caFile } : {}), ...options };
}

function newSink(transport: SyslogTransport, options: Record<string, unknown> = {}): SyslogSink {
  const sink = createSink(sinkConfigSchema.parse(config(transport, options)) as SinkConfig, () => undefined) as SyslogSink;
  sinks.push(sink);
  return sink;
}

async function openSink(transport: SyslogTransport, options: Record<string, unknown> = {}): Promise<SyslogSink> {
  const sink = newSink(transport, options);
  await sink.open();
  return sink;
}

/** The messages rsyslog received on `transport` that carry one of these records' ids, once there are `count`. */
async function receivedFor(transport: SyslogTransport, records: readonly AnalyticsRecord[], count = records.length): Promise<ReceivedMessage[]> {
  const ids = new Set(records.map((record) => record.id));
  return eventually(
    async () => {
      const mine = (await rsyslog.received(transport)).filter((message) => ids.has(parseRfc5424(message.raw).structuredData['tollgate@32473']?.id ?? ''));
      return mine.length >= count ? mine : undefined;
    },
    10_000,
    `${count} messages over ${transport}`,
  );
}

describe('the syslog sink', () => {
  it.each(['udp', 'tcp', 'tls'] as const)('sends RFC 5424 messages with the key fields as structured data and the record as JSON, over %s', async (transport) => {
    const sink = await openSink(transport, { hostname: 'gw-1.example', appName: 'tollgate-test' });
    const records = [
      analyticsRecord({ status: 200, apiId: 'pets', path: '/pets/1', latencyTotal: 12.5 }),
      analyticsRecord({ status: 404, apiId: null, method: 'POST', path: '/odd/"quoted"\\back]slash/é' }),
      analyticsRecord({ status: 503, apiId: 'pets' }),
      ...analyticsRecords(40),
    ];
    expect(await sink.write(records)).toEqual([]);
    const received = await receivedFor(transport, records);
    expect(received).toHaveLength(records.length);
    const byId = new Map(received.map((message) => [parseRfc5424(message.raw).structuredData['tollgate@32473']?.id, message]));
    for (const [record, severity] of [
      [records[0], 6],
      [records[1], 4],
      [records[2], 3],
    ] as [AnalyticsRecord, number][]) {
      const message = byId.get(record.id) as ReceivedMessage;
      const parsed = parseRfc5424(message.raw);
      // local0 (16) by default; info, warning, err by status.
      expect(parsed).toMatchObject({ priority: 16 * 8 + severity, version: 1, timestamp: new Date(record.timestamp).toISOString() });
      expect(parsed).toMatchObject({ hostname: 'gw-1.example', appName: 'tollgate-test', procid: record.instance, msgid: 'transaction' });
      const keyFields = { id: record.id, method: record.method, status: String(record.status), path: record.path, latency: String(record.latencyTotal) };
      expect(parsed.structuredData).toEqual({ 'tollgate@32473': record.apiId === null ? keyFields : { ...keyFields, api: record.apiId } });
      expect(parsed.msg?.startsWith('\ufeff')).toBe(true);
      expect(JSON.parse((parsed.msg as string).slice(1))).toEqual(record);
      // rsyslog parsed the same message as RFC 5424.
      expect(message).toMatchObject({ version: '1', facility: '16', severity: String(severity), hostname: 'gw-1.example', appName: 'tollgate-test', msgid: 'transaction' });
      expect(message.msg).toBe(parsed.msg);
    }
    expect(parseRfc5424((byId.get(records[1]?.id) as ReceivedMessage).raw).structuredData['tollgate@32473']?.path).toBe('/odd/"quoted"\\back]slash/é');
  });

  it('sends the short line as MSG when asked, or when the JSON would pass maxMessageBytes, and refuses a record that cannot fit at all', async () => {
    const sink = await openSink('tcp', { maxMessageBytes: 1_000, facility: 'local3', severity: { success: 'notice' } });
    const [small, large, huge] = [
      analyticsRecord({ legs: [], method: 'GET', path: '/a', status: 200, latencyTotal: 3 }),
      analyticsRecord({ method: 'GET', path: '/b', status: 201, latencyTotal: 4.25 }),
      analyticsRecord({ path: `/${'x'.repeat(1_000)}` }),
    ] as [AnalyticsRecord, AnalyticsRecord, AnalyticsRecord];
    const rejected = await sink.write([small, large, huge]);
    expect(rejected.map((entry) => entry.record.id)).toEqual([huge.id]);
    expect(rejected[0]?.reason).toContain('maxMessageBytes (1000)');
    const received = await receivedFor('tcp', [small, large], 2);
    const messages = received.map((message) => parseRfc5424(message.raw));
    const msgOf = (id: string): string | null | undefined => messages.find((message) => message.structuredData['tollgate@32473']?.id === id)?.msg;
    expect(JSON.parse((msgOf(small.id) as string).slice(1))).toEqual(small);
    expect(msgOf(large.id)).toBe('\ufeffGET /b 201 4.25 ms');
    expect(messages[0]?.priority).toBe(19 * 8 + 5);

    const lines = await openSink('udp', { message: 'line' });
    const other = analyticsRecord({ method: 'DELETE', path: '/c', status: 500, latencyTotal: 1 });
    await lines.write([other]);
    expect(parseRfc5424((await receivedFor('udp', [other]))[0]?.raw as string).msg).toBe('\ufeffDELETE /c 500 1 ms');
  });

  it('refuses a TLS server its certificate authorities do not vouch for, retryably, at open and at write', async () => {
    const sink = newSink('tls', { ca: undefined });
    await expect(sink.open()).rejects.toThrow(RetryableError);
    await expect(sink.open()).rejects.toThrow(/certificate/);
    await expect(sink.write(analyticsRecords(1))).rejects.toThrow(/certificate/);
  });

  it('keeps an idle connection, and ends one whose receiver stops reading after timeoutMs, failing the write retryably', async () => {
    const connections: Socket[] = [];
    const stalled = createServer((socket) => {
      connections.push(socket);
      socket.pause();
    });
    await new Promise<void>((resolve) => stalled.listen(0, '127.0.0.1', resolve));
    try {
      const options = sinkConfigSchema.parse({ ...config('tcp'), port: (stalled.address() as AddressInfo).port }) as unknown as SyslogSinkOptions;
      const sink = new SyslogSink({ ...options, timeoutMs: 300 });
      sinks.push(sink);
      await sink.open();
      expect(await sink.write(analyticsRecords(1))).toEqual([]);
      await new Promise((resolve) => setTimeout(resolve, 600));
      expect(await sink.write(analyticsRecords(1))).toEqual([]);
      expect(connections).toHaveLength(1);
      const failure = await eventually(async () => sink.write(analyticsRecords(1_000)).then(() => undefined, (error: Error) => error), 20_000, 'a write to stall');
      expect(failure).toBeInstanceOf(RetryableError);
      expect(failure.message).toContain('no progress within 300 ms');
    } finally {
      for (const socket of connections) socket.destroy();
      stalled.close();
    }
  });

  it('fails to open while nothing listens on the TCP port', async () => {
    const sink = newSink('tcp', { port: await freePort() });
    await expect(sink.open()).rejects.toThrow(/ECONNREFUSED/);
  });

  it('connects again after rsyslogd restarts', async () => {
    const sink = await openSink('tcp');
    const before = analyticsRecords(5);
    await sink.write(before);
    await receivedFor('tcp', before);
    await rsyslog.stop();
    await expect(eventually(async () => (await sink.write(analyticsRecords(1)).catch((error: Error) => error)) instanceof RetryableError || undefined, 5_000)).resolves.toBe(true);
    await rsyslog.start();
    const after = analyticsRecords(5);
    await sink.write(after);
    await receivedFor('tcp', after);
  });

  it('refuses options that would break the message, naming the key', () => {
    for (const [options, key] of [
      [{ sdId: 'tollgate' }, 'sdId'],
      [{ appName: 'has space' }, 'appName'],
      [{ facility: 'local9' }, 'facility'],
      [{ severity: { success: 'loud' } }, 'severity'],
    ] as const) {
      const parsed = sinkConfigSchema.safeParse({ type: 'syslog', ...options });
      expect(parsed.success, key).toBe(false);
      expect(parsed.error?.issues[0]?.path[0]).toBe(key);
    }
  });
});

/** What rsyslog holds of these ids on `transport`: one entry per message. */
async function idsReceived(transport: SyslogTransport): Promise<string[]> {
  return (await rsyslog.received(transport)).map((message) => parseRfc5424(message.raw).structuredData['tollgate@32473']?.id ?? '');
}

/** Polls until the receiver holds every id or a short while passes (UDP and the file write trail the sink's write). */
async function readBackOn(transport: SyslogTransport, ids: readonly string[]): Promise<string[]> {
  const wanted = new Set(ids);
  await eventually(async () => ((await idsReceived(transport)).filter((id) => wanted.has(id)).length >= ids.length ? true : undefined), 3_000).catch(() => undefined);
  return idsReceived(transport);
}

const unfit = (): AnalyticsRecord => analyticsRecord({ path: `/${'x'.repeat(10_000)}` });

let proxy: TcpProxy | undefined;

describeSinkContract({
  name: 'syslog over tcp',
  config: async () => {
    proxy ??= await TcpProxy.start('127.0.0.1', rsyslog.ports.tcp);
    return { ...config('tcp'), port: proxy.port };
  },
  readBack: (ids) => readBackOn('tcp', ids),
  outage: {
    // Syslog has no acknowledgement: what the sink wrote must have reached rsyslog before the cut, or the cut loses it.
    cut: async () => {
      let previous = -1;
      await eventually(async () => {
        const count = (await rsyslog.received('tcp')).length;
        const settled = count === previous;
        previous = count;
        return settled || undefined;
      }, 5_000);
      await proxy?.cutOff();
    },
    restore: async () => proxy?.restore(),
  },
  rejectable: unfit,
});

describeSinkContract({ name: 'syslog over udp', config: () => config('udp'), readBack: (ids) => readBackOn('udp', ids), rejectable: unfit });
describeSinkContract({ name: 'syslog over tls', config: () => config('tls'), readBack: (ids) => readBackOn('tls', ids) });
