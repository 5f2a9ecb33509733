import { createSocket, type Socket as DatagramSocket } from 'node:dgram';
import { readFile } from 'node:fs/promises';
import { connect as connectTcp, isIP, isIPv6, type Socket } from 'node:net';
import { hostname } from 'node:os';
import { connect as connectTls } from 'node:tls';
import { z } from 'zod';
import type { AnalyticsRecord } from '../../analytics/analytics-record.js';
import { defineSink, RetryableError, type RejectedRecord, type Sink } from '../sink.js';

/** RFC 5424's facilities, in code order (6.2.1), by their usual names. */
export const FACILITIES = [
  'kern', 'user', 'mail', 'daemon', 'auth', 'syslog', 'lpr', 'news', 'uucp', 'cron', 'authpriv', 'ftp', 'ntp', 'audit', 'alert', 'clock',
  'local0', 'local1', 'local2', 'local3', 'local4', 'local5', 'local6', 'local7',
] as const;
/** RFC 5424's severities, in code order. */
export const SEVERITIES = ['emerg', 'alert', 'crit', 'err', 'warning', 'notice', 'info', 'debug'] as const;

type Severity = (typeof SEVERITIES)[number];

export interface SyslogSinkOptions {
  transport: 'udp' | 'tcp' | 'tls';
  host: string;
  port: number;
  /** TLS: a PEM file of the certificate authorities to trust (else the system's). */
  ca?: string;
  /** TLS: the name the server's certificate must carry (else `host`). */
  serverName?: string;
  facility: (typeof FACILITIES)[number];
  /** By the record's status: below 400, 4xx, and 5xx or no answer. */
  severity: { success: Severity; clientError: Severity; serverError: Severity };
  appName: string;
  hostname: string;
  /** SD-ID of the structured data element holding the record's key fields. */
  sdId: string;
  /** MSG: the record as JSON, or a short line (`GET /pets/1 200 12.5 ms`). */
  message: 'json' | 'line';
  /** A message longer than this carries the short line instead of the JSON; one that is still longer goes to the dead letter. */
  maxMessageBytes: number;
  timeoutMs: number;
}

const BOM = '\ufeff';

/** PARAM-VALUE escaping of RFC 5424 (6.3.3): `"`, `\` and `]` get a backslash. */
export function sdValue(value: string): string {
  return value.replace(/["\\\]]/g, (char) => `\\${char}`);
}

function severityOf(status: number, severity: SyslogSinkOptions['severity']): Severity {
  if (status >= 100 && status < 400) return severity.success;
  return status >= 400 && status < 500 ? severity.clientError : severity.serverError;
}

/** Printable US-ASCII without spaces, as RFC 5424 header fields must be; else the nil value. */
function headerField(value: string, maxLength: number): string {
  return value !== '' && value.length <= maxLength && /^[\x21-\x7e]+$/.test(value) ? value : '-';
}

/** An RFC 5424 message for the record (no framing), or null when it cannot fit in `maxMessageBytes`. */
export function syslogMessage(record: AnalyticsRecord, options: SyslogSinkOptions): Buffer | null {
  const priority = FACILITIES.indexOf(options.facility) * 8 + SEVERITIES.indexOf(severityOf(record.status, options.severity));
  const params: [string, string | number | null][] = [
    ['id', record.id],
    ['api', record.apiId],
    ['method', record.method],
    ['status', record.status],
    ['path', record.path],
    ['latency', record.latencyTotal],
  ];
  const data = params
    .filter(([, value]) => value !== null)
    .map(([name, value]) => ` ${name}="${sdValue(String(value))}"`)
    .join('');
  const head = `<${priority}>1 ${new Date(record.timestamp).toISOString()} ${options.hostname} ${options.appName} ${headerField(record.instance, 128)} transaction [${options.sdId}${data}] ${BOM}`;
  const line = `${record.method} ${record.path} ${record.status} ${record.latencyTotal} ms`;
  const bodies = options.message === 'json' ? [JSON.stringify(record), line] : [line];
  for (const body of bodies) {
    const message = Buffer.from(head + body);
    if (message.length <= options.maxMessageBytes) return message;
  }
  return null;
}

/** Where the messages go: a datagram each, or octet-counted frames on one connection. */
interface Transport {
  /** Connects, if the transport has connections: `open` fails while the receiver cannot be reached. */
  connect(): Promise<unknown>;
  send(messages: readonly Buffer[]): Promise<void>;
  close(): Promise<void>;
}

class UdpTransport implements Transport {
  readonly #socket: DatagramSocket;

  constructor(readonly options: SyslogSinkOptions) {
    this.#socket = createSocket(isIPv6(options.host) ? 'udp6' : 'udp4').unref();
  }

  async connect(): Promise<void> {}

  async send(messages: readonly Buffer[]): Promise<void> {
    const { host, port } = this.options;
    await Promise.all(
      messages.map(
        (message) =>
          new Promise<void>((resolve, reject) =>
            this.#socket.send(message, port, host, (error) => (error ? reject(new RetryableError(`syslog at ${host}:${port} (udp): ${error.message}`)) : resolve())),
          ),
      ),
    );
  }

  close(): Promise<void> {
    return new Promise((resolve) => this.#socket.close(() => resolve()));
  }
}

/** TCP or TLS with octet-counting framing (RFC 6587 3.4.1, RFC 5425): connected when needed, again after a break. */
class StreamTransport implements Transport {
  #socket: Socket | null = null;
  /** A write whose bytes the socket has not taken yet: another now could send them twice. */
  #writing = false;
  #connecting: Promise<Socket> | null = null;

  constructor(
    readonly options: SyslogSinkOptions,
    readonly ca: Buffer | undefined,
  ) {}

  async send(messages: readonly Buffer[]): Promise<void> {
    if (this.#writing) throw new RetryableError(`${this.#where()}: an earlier write still waits for the connection`);
    this.#writing = true;
    let socket: Socket | null = null;
    try {
      socket = await this.connect();
      const frames = Buffer.concat(messages.flatMap((message) => [Buffer.from(`${message.length} `), message]));
      // A receiver that stops reading holds the write; the timeout ends the connection, failing the write.
      socket.setTimeout(this.options.timeoutMs);
      const connection = socket;
      await new Promise<void>((resolve, reject) =>
        connection.write(frames, (error) => {
          // Node calls back without an error for a write the destroyed connection cancelled.
          if (error || connection.destroyed) reject(new RetryableError(`${this.#where()}: ${error?.message ?? this.#endedBy(connection)}`));
          else resolve();
        }),
      );
    } finally {
      this.#writing = false;
      socket?.setTimeout(0);
    }
  }

  async close(): Promise<void> {
    const socket = this.#socket;
    this.#socket = null;
    if (socket === null || socket.destroyed) return;
    await new Promise<void>((resolve) => {
      socket.once('close', () => resolve());
      socket.end();
      setTimeout(() => socket.destroy(), this.options.timeoutMs).unref();
    });
  }

  #endedBy(connection: Socket): string {
    return connection.errored?.message ?? 'the connection ended before it took the messages';
  }

  #where(): string {
    return `syslog at ${this.options.host}:${this.options.port} (${this.options.transport})`;
  }

  /** The open connection, else one being made (shared: two would interleave frames), else a new one. */
  connect(): Promise<Socket> {
    if (this.#socket !== null) return Promise.resolve(this.#socket);
    this.#connecting ??= this.#connected().finally(() => (this.#connecting = null));
    return this.#connecting;
  }

  #connected(): Promise<Socket> {
    const { host, port, transport, serverName, timeoutMs } = this.options;
    return new Promise((resolve, reject) => {
      const socket =
        transport === 'tls'
          ? connectTls({ host, port, ca: this.ca, servername: serverName ?? (isIP(host) === 0 ? host : undefined) })
          : connectTcp({ host, port });
      const failed = (error: Error): void => {
        socket.destroy();
        reject(new RetryableError(`${this.#where()}: ${error.message}`));
      };
      socket.once('error', failed);
      // Armed while connecting and while a write waits; an idle connection stays open.
      socket.setTimeout(timeoutMs);
      socket.on('timeout', () => socket.destroy(new Error(`no progress within ${timeoutMs} ms (timeoutMs)`)));
      socket.setKeepAlive(true);
      socket.once(transport === 'tls' ? 'secureConnect' : 'connect', () => {
        socket.off('error', failed);
        socket.on('error', () => undefined);
        socket.setTimeout(0);
        this.#socket = socket;
        resolve(socket);
      });
      // Closed by either side (rsyslog restarted, the network cut): the next write connects again.
      socket.once('close', () => {
        if (this.#socket === socket) this.#socket = null;
      });
      socket.once('end', () => socket.destroy());
      // The receiver sends nothing back; reading keeps 'end' and 'close' coming.
      socket.resume();
    });
  }
}

/**
 * RFC 5424 messages, one per record, with the record's key fields as structured data, over UDP,
 * TCP or TLS. Syslog has no acknowledgement: a write resolves once the messages are handed to the
 * kernel (UDP) or the connection took them (TCP/TLS) — a message in flight when the connection
 * breaks, or a datagram lost, is lost without the sink knowing.
 */
export class SyslogSink implements Sink {
  #transport: Transport | null = null;

  constructor(readonly options: SyslogSinkOptions) {}

  async open(): Promise<void> {
    const { transport, ca } = this.options;
    this.#transport ??=
      transport === 'udp'
        ? new UdpTransport(this.options)
        : new StreamTransport(this.options, transport === 'tls' && ca !== undefined ? await readFile(ca) : undefined);
    await this.#transport.connect();
  }

  async write(records: readonly AnalyticsRecord[]): Promise<RejectedRecord[]> {
    const transport = this.#transport;
    if (transport === null) throw new RetryableError('not open');
    const messages: Buffer[] = [];
    const rejected: RejectedRecord[] = [];
    for (const record of records) {
      const message = syslogMessage(record, this.options);
      if (message === null) rejected.push({ record, reason: `its syslog message would be longer than maxMessageBytes (${this.options.maxMessageBytes})` });
      else messages.push(message);
    }
    await transport.send(messages);
    return rejected;
  }

  async close(): Promise<void> {
    const transport = this.#transport;
    this.#transport = null;
    await transport?.close();
  }
}

/** Printable US-ASCII without spaces, up to `max` characters: what RFC 5424 allows in HOSTNAME and APP-NAME. */
const headerText = (max: number) =>
  z
    .string()
    .regex(/^[\x21-\x7e]+$/, 'expected printable ASCII without spaces')
    .max(max);

const severity = z.enum(SEVERITIES);

export const syslogSink = defineSink({
  type: 'syslog',
  options: {
    transport: z.enum(['udp', 'tcp', 'tls']).default('tcp'),
    host: z.string().min(1).default('127.0.0.1'),
    /** Default: 514 (udp, tcp), 6514 (tls). */
    port: z.number().int().min(1).max(65_535).optional(),
    ca: z.string().min(1).optional(),
    serverName: z.string().min(1).optional(),
    facility: z.enum(FACILITIES).default('local0'),
    severity: z
      .strictObject({ success: severity.default('info'), clientError: severity.default('warning'), serverError: severity.default('err') })
      .default({ success: 'info', clientError: 'warning', serverError: 'err' }),
    appName: headerText(48).default('tollgate'),
    hostname: headerText(255).default(() => headerField(hostname(), 255)),
    sdId: z
      .string()
      .regex(/^[\x21-\x7e]+@\d+(\.\d+)*$/, 'expected name@enterprise-number, e.g. tollgate@32473')
      .refine((id) => !/[= \]"]/.test(id), 'expected no "=", space, "]" or \'"\'')
      .refine((id) => id.length <= 32, 'expected at most 32 characters')
      .default('tollgate@32473'),
    message: z.enum(['json', 'line']).default('json'),
    maxMessageBytes: z.number().int().min(480).max(65_507).default(8192),
  },
  create: (options) => new SyslogSink({ ...options, port: options.port ?? (options.transport === 'tls' ? 6514 : 514) }),
});
