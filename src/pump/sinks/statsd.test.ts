import { createSocket, type Socket } from 'node:dgram';
import { afterEach, describe, expect, it } from 'vitest';
import { analyticsRecord, analyticsRecords } from '../../../test/support/analytics-records.js';
import { eventually } from '../../../test/support/gateway-process.js';
import { sinkConfigSchema } from './registry.js';
import { describeSinkContract } from './sink-suite.js';
import { StatsdSink, type StatsdSinkOptions } from './statsd.js';

interface StatsdLine {
  name: string;
  value: number;
  type: 'c' | 'ms';
  tags: Record<string, string>;
}

/** One line of the StatsD protocol (`name:value|type`, with DogStatsD's `|#k:v,...`); anything else throws. */
function parseLine(line: string): StatsdLine {
  const match = /^([A-Za-z0-9_.-]+):(\d+(?:\.\d+)?)\|(c|ms)(?:\|#([A-Za-z0-9_.-]+:[A-Za-z0-9_.-]+(?:,[A-Za-z0-9_.-]+:[A-Za-z0-9_.-]+)*))?$/.exec(line);
  if (match === null) throw new Error(`not a StatsD line: ${JSON.stringify(line)}`);
  const tags = Object.fromEntries((match[4]?.split(',') ?? []).map((tag) => tag.split(':') as [string, string]));
  return { name: match[1] as string, value: Number(match[2]), type: match[3] as 'c' | 'ms', tags };
}

/** A StatsD server of the test's own: keeps every datagram and parses its lines strictly. */
class StatsdReceiver {
  readonly packets: Buffer[] = [];
  readonly lines: StatsdLine[] = [];

  private constructor(readonly socket: Socket) {
    socket.on('message', (packet) => {
      this.packets.push(packet);
      for (const line of packet.toString('utf8').split('\n')) this.lines.push(parseLine(line));
    });
  }

  static async start(): Promise<StatsdReceiver> {
    const socket = createSocket('udp4');
    await new Promise<void>((resolve) => socket.bind(0, '127.0.0.1', resolve));
    return new StatsdReceiver(socket);
  }

  get port(): number {
    return this.socket.address().port;
  }

  sum(name: string, tags: Record<string, string> = {}): number {
    return this.matching(name, tags).reduce((total, line) => total + line.value, 0);
  }

  matching(name: string, tags: Record<string, string> = {}): StatsdLine[] {
    return this.lines.filter((line) => line.name === name && Object.entries(tags).every(([key, value]) => line.tags[key] === value));
  }

  close(): Promise<void> {
    return new Promise((resolve) => this.socket.close(resolve));
  }
}

let receivers: StatsdReceiver[] = [];
let sinks: StatsdSink[] = [];

afterEach(async () => {
  for (const sink of sinks) await sink.close();
  for (const receiver of receivers) await receiver.close();
  sinks = [];
  receivers = [];
});

async function receiver(): Promise<StatsdReceiver> {
  const started = await StatsdReceiver.start();
  receivers.push(started);
  return started;
}

async function openSink(port: number, options: Partial<StatsdSinkOptions> = {}): Promise<StatsdSink> {
  const sink = new StatsdSink({ host: '127.0.0.1', port, prefix: 'tollgate', tags: true, maxPacketBytes: 1432, ...options });
  sinks.push(sink);
  await sink.open();
  return sink;
}

describe('the statsd sink', () => {
  it('sends counters per API and status class and a timing per record, with DogStatsD tags', async () => {
    const server = await receiver();
    const sink = await openSink(server.port);
    const records = [
      analyticsRecord({ apiId: 'pets', status: 200, latencyTotal: 12.3, latencyUpstream: 10.25, bytesIn: 5, bytesOut: 100 }),
      analyticsRecord({ apiId: 'pets', status: 201, latencyTotal: 7, latencyUpstream: 6, bytesIn: 7, bytesOut: 50 }),
      analyticsRecord({ apiId: 'pets', status: 503, latencyTotal: 30.5, latencyUpstream: 30, bytesIn: 0, bytesOut: 9 }),
      analyticsRecord({ apiId: null, status: 404, latencyTotal: 0.4, latencyUpstream: 0, bytesIn: 1, bytesOut: 2 }),
    ];
    expect(await sink.write(records)).toEqual([]);
    await eventually(async () => (server.lines.length >= 4 * 2 + 3 * 3 ? true : undefined), 2_000, 'the StatsD lines');

    const pets2xx = { api: 'pets', status_class: '2xx' };
    expect(server.matching('tollgate.requests', pets2xx)).toEqual([{ name: 'tollgate.requests', value: 2, type: 'c', tags: pets2xx }]);
    expect(server.sum('tollgate.request_bytes', pets2xx)).toBe(12);
    expect(server.sum('tollgate.response_bytes', pets2xx)).toBe(150);
    expect(server.sum('tollgate.requests', { api: 'pets', status_class: '5xx' })).toBe(1);
    expect(server.sum('tollgate.requests', { api: 'none', status_class: '4xx' })).toBe(1);
    expect(server.matching('tollgate.request_duration', pets2xx).map((line) => [line.value, line.type])).toEqual([
      [12.3, 'ms'],
      [7, 'ms'],
    ]);
    expect(server.matching('tollgate.upstream_duration', { api: 'pets', status_class: '5xx' }).map((line) => line.value)).toEqual([30]);
    expect(server.lines).toHaveLength(4 * 2 + 3 * 3);
  });

  it('puts api and status class in the names without tags, under the prefix, and makes names safe', async () => {
    const server = await receiver();
    const sink = await openSink(server.port, { tags: false, prefix: 'edge.gw' });
    await sink.write([analyticsRecord({ apiId: 'pet store:v1', status: 302, latencyTotal: 4 })]);
    await eventually(async () => (server.lines.length >= 5 ? true : undefined), 2_000, 'the StatsD lines');
    expect(server.lines.map((line) => `${line.name}:${line.value}|${line.type}`).sort()).toEqual(
      [
        'edge.gw.pet_store_v1.3xx.request_duration:4|ms',
        'edge.gw.pet_store_v1.3xx.upstream_duration:1.2|ms',
        'edge.gw.pet_store_v1.3xx.requests:1|c',
        'edge.gw.pet_store_v1.3xx.request_bytes:0|c',
        'edge.gw.pet_store_v1.3xx.response_bytes:20|c',
      ].sort(),
    );
  });

  it('packs lines into datagrams of at most maxPacketBytes, cut between lines', async () => {
    const server = await receiver();
    const sink = await openSink(server.port, { maxPacketBytes: 600 });
    const records = analyticsRecords(500);
    await sink.write(records);
    await eventually(async () => (server.sum('tollgate.requests') >= 500 ? true : undefined), 5_000, 'every request counted');
    expect(server.matching('tollgate.request_duration')).toHaveLength(500);
    expect(server.packets.length).toBeGreaterThan(50);
    expect(Math.max(...server.packets.map((packet) => packet.length))).toBeLessThanOrEqual(600);
    // Full datagrams: packing leaves less than one line's room.
    expect(Math.min(...server.packets.slice(0, -1).map((packet) => packet.length))).toBeGreaterThan(600 - 80);
  });

  it('refuses a prefix that would break the protocol, naming the key', () => {
    const parsed = sinkConfigSchema.safeParse({ type: 'statsd', prefix: 'a:b' });
    expect(parsed.success).toBe(false);
    expect(parsed.error?.issues[0]?.path).toEqual(['prefix']);
  });
});

let contractServer: StatsdReceiver | undefined;

afterEach(async () => {
  await contractServer?.close();
  contractServer = undefined;
});

// StatsD carries no record ids: the receiver "holds" as many records as it counted requests (a
// missing or doubled datagram shows as a missing or duplicated id). No outage or refusal cases:
// UDP cannot tell the sender the receiver is down, and StatsD refuses nothing.
describeSinkContract({
  name: 'statsd',
  config: async () => {
    contractServer = await StatsdReceiver.start();
    return { type: 'statsd', port: contractServer.port, tags: true };
  },
  readBack: async (ids) => {
    const server = contractServer as StatsdReceiver;
    await eventually(async () => (server.sum('tollgate.requests') >= ids.length ? true : undefined), 2_000, 'the requests counted').catch(() => undefined);
    const counted = server.sum('tollgate.requests');
    return counted <= ids.length ? ids.slice(0, counted) : [...ids, ...Array<string>(counted - ids.length).fill(ids[0] as string)];
  },
});
