import { createSocket, type Socket } from 'node:dgram';
import { isIPv6 } from 'node:net';
import { z } from 'zod';
import type { AnalyticsRecord } from '../../analytics/analytics-record.js';
import { defineSink, RetryableError, type RejectedRecord, type Sink } from '../sink.js';
import { statusClass } from './http-formats/format.js';

export interface StatsdSinkOptions {
  host: string;
  port: number;
  /** First part of every metric name. */
  prefix: string;
  /** DogStatsD tags (`|#api:x,status_class:2xx`); without them, api and status class are parts of the name. */
  tags: boolean;
  /** Lines are packed into datagrams of at most this many bytes (1432: one Ethernet frame; more fragments). */
  maxPacketBytes: number;
}

/** Metric names and tag values: letters, digits, `_`, `-` and `.`; anything else becomes `_`. */
function safe(text: string): string {
  return text.replace(/[^A-Za-z0-9_.-]/g, '_');
}

/**
 * StatsD over UDP: per record a `request_duration` and an `upstream_duration` timing (ms); per
 * batch, API and status class one `requests` counter and the request/response byte counters. A
 * write resolves once every datagram is handed to the kernel: StatsD has no acknowledgement, so
 * delivery is fire-and-forget (a datagram lost on the way is lost; a retried batch counts again).
 */
export class StatsdSink implements Sink {
  #socket: Socket | null = null;

  constructor(readonly options: StatsdSinkOptions) {}

  async open(): Promise<void> {
    this.#socket ??= createSocket(isIPv6(this.options.host) ? 'udp6' : 'udp4').unref();
  }

  async write(records: readonly AnalyticsRecord[]): Promise<RejectedRecord[]> {
    const socket = this.#socket;
    if (socket === null) throw new RetryableError('not open');
    const packets = this.packets(records);
    const { host, port } = this.options;
    await Promise.all(
      packets.map(
        (packet) =>
          new Promise<void>((resolve, reject) =>
            socket.send(packet, port, host, (error) => (error ? reject(new RetryableError(`StatsD at ${host}:${port}: ${error.message}`)) : resolve())),
          ),
      ),
    );
    return [];
  }

  /** The batch's lines packed into datagrams of at most `maxPacketBytes` (a longer line goes alone). */
  packets(records: readonly AnalyticsRecord[]): Buffer[] {
    const packets: Buffer[] = [];
    let packet = '';
    for (const line of this.lines(records)) {
      if (packet !== '' && Buffer.byteLength(packet) + 1 + Buffer.byteLength(line) > this.options.maxPacketBytes) {
        packets.push(Buffer.from(packet));
        packet = '';
      }
      packet = packet === '' ? line : `${packet}\n${line}`;
    }
    if (packet !== '') packets.push(Buffer.from(packet));
    return packets;
  }

  lines(records: readonly AnalyticsRecord[]): string[] {
    const counts = new Map<string, { requests: number; bytesIn: number; bytesOut: number }>();
    const lines: string[] = [];
    for (const record of records) {
      const group = this.#group(record);
      const count = counts.get(group) ?? { requests: 0, bytesIn: 0, bytesOut: 0 };
      count.requests++;
      count.bytesIn += record.bytesIn;
      count.bytesOut += record.bytesOut;
      counts.set(group, count);
      lines.push(this.#line(group, 'request_duration', record.latencyTotal, 'ms'), this.#line(group, 'upstream_duration', record.latencyUpstream, 'ms'));
    }
    for (const [group, count] of counts) {
      lines.push(
        this.#line(group, 'requests', count.requests, 'c'),
        this.#line(group, 'request_bytes', count.bytesIn, 'c'),
        this.#line(group, 'response_bytes', count.bytesOut, 'c'),
      );
    }
    return lines;
  }

  async close(): Promise<void> {
    const socket = this.#socket;
    this.#socket = null;
    if (socket) await new Promise<void>((resolve) => socket.close(() => resolve()));
  }

  /** What a record is counted under: the API and status class, as tags or as name parts. */
  #group(record: AnalyticsRecord): string {
    const api = safe(record.apiId ?? 'none');
    const status = statusClass(record.status);
    return this.options.tags ? `|#api:${api},status_class:${status}` : `${api}.${status}`;
  }

  #line(group: string, metric: string, value: number, type: 'c' | 'ms'): string {
    const { prefix, tags } = this.options;
    return tags ? `${prefix}.${metric}:${value}|${type}${group}` : `${prefix}.${group}.${metric}:${value}|${type}`;
  }
}

export const statsdSink = defineSink({
  type: 'statsd',
  options: {
    host: z.string().min(1).default('127.0.0.1'),
    port: z.number().int().min(1).max(65_535).default(8125),
    prefix: z
      .string()
      .regex(/^[A-Za-z0-9_-]+(\.[A-Za-z0-9_-]+)*$/, 'expected dot-separated parts of letters, digits, "_" or "-"')
      .default('tollgate'),
    tags: z.boolean().default(false),
    maxPacketBytes: z.number().int().min(512).max(65_507).default(1432),
  },
  create: (options) => new StatsdSink(options),
});
