import { readFile } from 'node:fs/promises';
import { jetstream, JetStreamApiCodes, JetStreamApiError, jetstreamManager, type JetStreamClient } from '@nats-io/jetstream';
import { connect, credsAuthenticator, InvalidArgumentError, nanos, type NatsConnection, type NodeConnectionOptions } from '@nats-io/transport-node';
import { z } from 'zod';
import type { AnalyticsRecord } from '../../analytics/analytics-record.js';
import { seconds } from '../../config/primitives.js';
import { defineSink, RetryableError, type RejectedRecord, type Sink, type SinkContext } from '../sink.js';
import { shownUrl, withoutSecrets } from './secrets.js';

export interface NatsSinkOptions {
  servers: string | string[];
  /** The subject each record is published to; `{apiId}` is replaced by the record's API id. */
  subject: string;
  stream?: string | undefined;
  createStream: boolean;
  duplicateWindowSec: number;
  user?: string | undefined;
  password?: string | undefined;
  token?: string | undefined;
  credentialsFile?: string | undefined;
  timeoutMs: number;
}

const API_ID = '{apiId}';
/** The subject token of a record without an API id. */
const NO_API = '_none';
/** JetStream's answer for a message it refuses (too large for the stream, say): the record, not the server, is at fault. */
const BAD_REQUEST = 400;
/** JetStream's answer when a stream by that name exists already (two pumps creating it at once). */
const STREAM_NAME_IN_USE = 10058;

/**
 * Publishes each record as JSON to a JetStream subject, with `Nats-Msg-Id` = the record id, and
 * resolves once every publish of the batch is acknowledged by the stream. JetStream drops a
 * message whose id it has seen within the stream's duplicate window (the PubAck says
 * `duplicate`), so a batch published again after a lost acknowledgement adds nothing. The client
 * does not reconnect on its own (it would buffer publishes, unbounded, while the server is away):
 * a write that fails drops the connection and the next one connects again.
 */
export class NatsSink implements Sink {
  #connection: NatsConnection | null = null;
  #client: JetStreamClient | null = null;
  #streamReady = false;
  readonly #subjectFor: (record: AnalyticsRecord) => string;

  constructor(
    readonly options: NatsSinkOptions,
    readonly context: SinkContext,
  ) {
    if (options.createStream && options.stream === undefined) throw new Error(`sink ${context.name}: createStream needs stream (the name of the stream to create)`);
    const [before, after] = splitTemplate(options.subject);
    this.#subjectFor = after === null ? () => before : (record) => `${before}${subjectToken(record.apiId)}${after}`;
  }

  async open(): Promise<void> {
    await this.#jetStream();
  }

  async write(records: readonly AnalyticsRecord[]): Promise<RejectedRecord[]> {
    if (records.length === 0) return [];
    const js = await this.#jetStream();
    const timeout = this.options.timeoutMs;
    // All at once, then every acknowledgement awaited: a batch costs one round trip, not one per record.
    const outcomes = await Promise.allSettled(
      records.map((record) => js.publish(this.#subjectFor(record), JSON.stringify(record), { msgID: record.id, timeout })),
    );
    const rejected: RejectedRecord[] = [];
    let failure: unknown = null;
    outcomes.forEach((outcome, i) => {
      if (outcome.status === 'fulfilled') return;
      const refusal = refusalOf(outcome.reason);
      if (refusal === null) failure ??= outcome.reason;
      else rejected.push({ record: records[i] as AnalyticsRecord, reason: refusal });
    });
    if (failure !== null) {
      await this.#drop();
      throw this.#retryable(failure);
    }
    return rejected;
  }

  async close(): Promise<void> {
    await this.#drop();
  }

  /** The client of an open connection, connecting first if there is none (or it broke); the stream made sure of. */
  async #jetStream(): Promise<JetStreamClient> {
    try {
      let connection = this.#connection;
      let client = this.#client;
      if (connection === null || client === null || connection.isClosed()) {
        await this.#drop();
        connection = await connect(await this.#connectOptions());
        client = jetstream(connection, { timeout: this.options.timeoutMs });
        this.#connection = connection;
        this.#client = client;
        this.#noticeBreak(connection);
      }
      await this.#ensureStream(connection);
      return client;
    } catch (error) {
      await this.#drop();
      throw this.#retryable(error);
    }
  }

  #noticeBreak(connection: NatsConnection): void {
    void connection.closed().then((error) => {
      if (error && this.#connection === connection) this.context.notify(`${this.context.name}: the connection to NATS broke: ${this.#shown(error)}`);
    });
  }

  async #connectOptions(): Promise<NodeConnectionOptions> {
    const { servers, user, password, token, credentialsFile, timeoutMs } = this.options;
    return {
      servers,
      name: `tollgate pump ${this.context.name}`,
      timeout: timeoutMs,
      reconnect: false,
      ...(user === undefined ? {} : { user, pass: password }),
      ...(token === undefined ? {} : { token }),
      ...(credentialsFile === undefined ? {} : { authenticator: credsAuthenticator(await readFile(credentialsFile)) }),
    };
  }

  /** With `stream`: makes sure it exists (creating it, or adding the subject to it, with `createStream`). */
  async #ensureStream(connection: NatsConnection): Promise<void> {
    const { stream, createStream } = this.options;
    if (stream === undefined || this.#streamReady) return;
    const manager = await jetstreamManager(connection, { timeout: this.options.timeoutMs });
    const subject = streamSubject(this.options.subject);
    const info = await manager.streams.info(stream).catch((error: unknown) => {
      if (error instanceof JetStreamApiError && error.code === JetStreamApiCodes.StreamNotFound) return null;
      throw error;
    });
    if (info === null) {
      if (!createStream) throw new RetryableError(`NATS: stream ${stream} does not exist (create it, or set createStream)`);
      try {
        await manager.streams.add({ name: stream, subjects: [subject], duplicate_window: nanos(this.options.duplicateWindowSec * 1000) });
        this.context.notify(`${this.context.name}: created JetStream stream ${stream} for ${subject}`);
      } catch (error) {
        // Another pump made it first: take it as it is, next time round.
        if (error instanceof JetStreamApiError && error.code === STREAM_NAME_IN_USE) throw new RetryableError(`NATS: stream ${stream} was being created by another client`);
        throw error;
      }
    } else if (createStream && !info.config.subjects.includes(subject)) {
      await manager.streams.update(stream, { subjects: [...info.config.subjects, subject] });
      this.context.notify(`${this.context.name}: added ${subject} to the subjects of JetStream stream ${stream}`);
    }
    this.#streamReady = true;
  }

  async #drop(): Promise<void> {
    const connection = this.#connection;
    this.#connection = null;
    this.#client = null;
    this.#streamReady = false;
    await connection?.close().catch(() => undefined);
  }

  #retryable(error: unknown): RetryableError {
    if (error instanceof RetryableError) return new RetryableError(this.#shown(error));
    // The client's name for a request nobody answered.
    if (error instanceof Error && error.name === 'JetStreamNotEnabled') return new RetryableError(`NATS: no JetStream stream answered for ${this.options.subject} (no stream takes the subject, or JetStream is off)`);
    return new RetryableError(`NATS (${this.#servers()}): ${this.#shown(error)}`);
  }

  #servers(): string {
    return [this.options.servers].flat().map(shownUrl).join(', ');
  }

  #shown(error: unknown): string {
    const { password, token } = this.options;
    return withoutSecrets(error instanceof Error ? error.message : String(error), [password, token]);
  }
}

/** Why the record itself is refused for good, or null when the failure is not the record's. */
function refusalOf(error: unknown): string | null {
  // The client refuses a message larger than the server's max_payload before sending it.
  if (error instanceof InvalidArgumentError) return `NATS refused the message: ${error.message}`;
  if (error instanceof JetStreamApiError && error.status === BAD_REQUEST) {
    return `JetStream refused the message: ${error.message} (error ${error.code})`;
  }
  return null;
}

/** A subject token from an API id: NATS subjects split on "." and give meaning to "*" and ">". */
function subjectToken(apiId: string | null): string {
  return apiId === null || apiId === '' ? NO_API : apiId.replace(/[\s.*>]/g, '_');
}

/** The subject's text before and after `{apiId}` (after: null when it has none). */
function splitTemplate(subject: string): [string, string | null] {
  const at = subject.indexOf(API_ID);
  return at < 0 ? [subject, null] : [subject.slice(0, at), subject.slice(at + API_ID.length)];
}

/** The subject filter a stream needs to take every record: `{apiId}` becomes `*`. */
export function streamSubject(subject: string): string {
  return subject.replace(API_ID, '*');
}

const natsUrl = z.string().regex(/^(nats|tls):\/\/[^\s]+$/, 'expected a nats:// or tls:// URL');

/** Tokens separated by "."; one of them may be `{apiId}`; no wildcards: a record goes to one subject. */
const subjectTemplate = z
  .string()
  .regex(/^[^\s.*>]+(\.[^\s.*>]+)*$/, 'expected a NATS subject: tokens separated by ".", without spaces or the wildcards "*" and ">"')
  .refine((subject) => subject.split('.').every((token) => token === API_ID || !token.includes('{')), 'expected {apiId} as a whole token')
  .refine((subject) => subject.split(API_ID).length <= 2, 'expected {apiId} at most once');

/** JetStream's stream names: no spaces, ".", "*", ">", path separators. */
const streamName = z.string().regex(/^[A-Za-z0-9_-]{1,255}$/, 'expected a stream name: letters, digits, "_" or "-"');

export const natsSink = defineSink({
  type: 'nats',
  options: {
    servers: z.union([natsUrl, z.array(natsUrl).min(1)]).default('nats://127.0.0.1:4222'),
    subject: subjectTemplate.default('tollgate.records.{apiId}'),
    stream: streamName.optional(),
    createStream: z.boolean().default(false),
    /** Only for a stream the sink creates: how long JetStream remembers message ids (its dedupe window); covers `maxRetryTimeSec`'s default. */
    duplicateWindowSec: seconds.default(300),
    user: z.string().min(1).optional(),
    password: z.string().optional(),
    token: z.string().min(1).optional(),
    /** A `.creds` file (JWT and NKey seed). */
    credentialsFile: z.string().min(1).optional(),
  },
  create: (options, context) => new NatsSink(options, context),
});
