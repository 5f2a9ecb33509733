import { setTimeout as delay } from 'node:timers/promises';
import { promisify } from 'node:util';
import { gzip as gzipCallback } from 'node:zlib';
import { Pool } from 'undici';
import { z } from 'zod';
import type { AnalyticsRecord } from '../../analytics/analytics-record.js';
import { httpUrl } from '../../config/primitives.js';
import { defineSink, RejectedError, RetryableError, type RejectedRecord, type Sink, type SinkContext } from '../sink.js';
import { DELIVERED, type HttpAnswer, type HttpFormat, type RecordOutcomes } from './http-formats/format.js';
import { httpFormat, httpFormatOptions, type HttpFormatOptions } from './http-formats/index.js';

const gzip = promisify(gzipCallback);

export interface HttpSinkOptions {
  url: string;
  format: HttpFormatOptions;
  headers: Record<string, string>;
  auth?: { basic?: { user: string; password: string }; bearer?: string } | undefined;
  gzip: boolean;
  timeoutMs: number;
}

/** Rounds of one write that resend the records a receiver asked again for (item-level 429/5xx) before the runner's backoff takes over. */
const ITEM_ROUNDS = 4;
const ITEM_BACKOFF_MS = 100;
/** Of the answer to a refused request, what a message quotes. */
const QUOTED_BODY = 300;
/** Configured values shorter than this are not hunted for in messages: they would blank out ordinary words. */
const MIN_SECRET_LENGTH = 4;

/** Whether a status may pass: a timeout, rate limiting, or the receiver's own trouble. */
export function isRetryableStatus(status: number): boolean {
  return status === 408 || status === 429 || status >= 500;
}

/** `Retry-After` in ms: delta seconds or an HTTP date; null when absent or unreadable. */
export function retryAfterMs(value: string | string[] | undefined, now = Date.now()): number | null {
  if (typeof value !== 'string') return null;
  const trimmed = value.trim();
  if (/^\d+$/.test(trimmed)) return Number(trimmed) * 1000;
  const date = Date.parse(trimmed);
  return Number.isNaN(date) ? null : Math.max(0, date - now);
}

/**
 * Batches as POST requests to an HTTP receiver, in the receiver's own format (`http-formats/`):
 * kept-alive connections (undici), optional gzip, basic or bearer auth. Network errors, timeouts,
 * 408, 429 (with its `Retry-After`) and 5xx may pass; a 413 sends the batch in halves; any other
 * 4xx refuses the batch. Records a
 * receiver answers for one by one (Elasticsearch) are resent within the write while it asks for
 * them, never the ones it took; what a failed write settled is remembered for the runner's retry
 * of the same records. Secrets (auth, tokens, header values) never appear in a message.
 */
export class HttpSink implements Sink {
  readonly #format: HttpFormat;
  readonly #origin: string;
  readonly #path: string;
  /** The endpoint as messages name it: no query, which may hold a key. */
  readonly #where: string;
  readonly #headers: Record<string, string>;
  readonly #secrets: string[];
  #pool: Pool | null = null;
  /** What the last failed write settled, by record id: null delivered, else why refused. Only the ids of the next write are kept. */
  #settled = new Map<string, string | null>();
  /** A receiver refusing bodies as too large is told of once. */
  #toldTooLarge = false;

  constructor(
    readonly options: HttpSinkOptions,
    readonly context: SinkContext,
  ) {
    this.#format = httpFormat(options.format);
    const url = new URL(options.url);
    const basePath = url.pathname.replace(/\/+$/, '');
    const path = this.#format.path === null || basePath.endsWith(this.#format.path) ? basePath || '/' : basePath + this.#format.path;
    this.#origin = url.origin;
    this.#path = path + url.search;
    this.#where = `${url.origin}${path}`;
    const auth = authorization(options.auth);
    this.#headers = {
      ...lowerCased(options.headers),
      ...(auth === null ? {} : { authorization: auth }),
      ...this.#format.headers,
      'content-type': this.#format.contentType,
      ...(options.gzip ? { 'content-encoding': 'gzip' } : {}),
    };
    const configured = [
      ...Object.values(options.headers),
      ...Object.values(this.#format.headers),
      ...(auth === null ? [] : [auth, auth.replace(/^\S+\s+/, '')]),
      options.auth?.basic?.password ?? '',
      options.auth?.bearer ?? '',
      ...url.search.split(/[?&=]/),
    ];
    // Longest first, so a secret holding another is blanked whole.
    this.#secrets = [...new Set(configured.filter((value) => value.length >= MIN_SECRET_LENGTH))].sort((a, b) => b.length - a.length);
  }

  async open(): Promise<void> {
    const { timeoutMs } = this.options;
    this.#pool ??= new Pool(this.#origin, { connections: 4, headersTimeout: timeoutMs, bodyTimeout: timeoutMs, connect: { timeout: timeoutMs } });
  }

  async write(records: readonly AnalyticsRecord[]): Promise<RejectedRecord[]> {
    const settled = new Map<string, string | null>();
    const rejected: RejectedRecord[] = [];
    let pending: AnalyticsRecord[] = [];
    for (const record of records) {
      const before = this.#settled.get(record.id);
      if (before === undefined) pending.push(record);
      else {
        settled.set(record.id, before);
        if (before !== null) rejected.push({ record, reason: before });
      }
    }
    this.#settled = settled;
    const giveUpAt = Date.now() + this.options.timeoutMs / 2;
    for (let round = 1; pending.length > 0; round++) {
      const outcomes = await this.#post(pending, settled.size === 0);
      if (outcomes.note) this.context.notify(`${this.context.name}: ${this.#safe(outcomes.note)}`);
      const again = new Set(outcomes.retry.map(({ record }) => record));
      for (const refused of outcomes.rejected) {
        settled.set(refused.record.id, this.#safe(refused.reason));
        rejected.push({ record: refused.record, reason: this.#safe(refused.reason) });
      }
      const refusedNow = new Set(outcomes.rejected.map(({ record }) => record));
      for (const record of pending) if (!again.has(record) && !refusedNow.has(record)) settled.set(record.id, null);
      pending = pending.filter((record) => again.has(record));
      if (pending.length === 0) break;
      const wait = ITEM_BACKOFF_MS * 2 ** (round - 1);
      if (round >= ITEM_ROUNDS || Date.now() + wait > giveUpAt) {
        const reason = this.#safe(outcomes.retry[0]?.reason ?? '');
        throw new RetryableError(`${this.#where}: ${pending.length} of ${records.length} records not taken yet (first: ${reason})`);
      }
      await delay(wait);
    }
    this.#settled = new Map();
    return rejected;
  }

  async close(): Promise<void> {
    const pool = this.#pool;
    this.#pool = null;
    // Whatever is still in flight is abandoned: its records were not acknowledged, so they are retried.
    await pool?.destroy();
  }

  /** One POST of `records`; the whole batch's refusal is a `RejectedError` only while nothing of it was settled. */
  async #post(records: readonly AnalyticsRecord[], wholeBatch: boolean): Promise<RecordOutcomes> {
    const pool = this.#pool;
    if (pool === null) throw new RetryableError(`${this.context.name}: not open`);
    const text = this.#format.encode(records);
    const body = this.options.gzip ? await gzip(text) : text;
    let answer: HttpAnswer;
    try {
      const response = await pool.request({ method: 'POST', path: this.#path, headers: this.#headers, body });
      answer = { status: response.statusCode, headers: response.headers, body: await response.body.text() };
    } catch (error) {
      throw new RetryableError(this.#safe(`POST ${this.#where}: ${(error as Error).message}`));
    }
    if (answer.status >= 200 && answer.status < 300) {
      try {
        return this.#format.read?.(records, answer) ?? DELIVERED;
      } catch (error) {
        throw error instanceof RetryableError ? new RetryableError(this.#safe(`${this.#where}: ${error.message}`)) : error;
      }
    }
    if (answer.status === 413 && records.length > 1) return this.#postInHalves(records, Buffer.byteLength(body));
    const message = this.#safe(`${this.#where} answered ${answer.status}: ${answer.body.slice(0, QUOTED_BODY).trim()}`);
    if (isRetryableStatus(answer.status)) throw new RetryableError(message, retryAfterMs(answer.headers['retry-after']));
    if (wholeBatch) throw new RejectedError(message);
    return { retry: [], rejected: records.map((record) => ({ record, reason: message })) };
  }

  /** A body too large for the receiver (413): each half goes on its own, halved again while it is still too large; one record too large is refused. */
  async #postInHalves(records: readonly AnalyticsRecord[], bytes: number): Promise<RecordOutcomes> {
    if (!this.#toldTooLarge) {
      this.#toldTooLarge = true;
      this.context.notify(`${this.context.name}: ${this.#where} refused a body of ${bytes} bytes as too large (413); batches go in halves (a lower batchSize avoids this)`);
    }
    const half = Math.ceil(records.length / 2);
    const first = await this.#post(records.slice(0, half), false);
    // The first half is in: a failure of the second must not send it again.
    const second = await this.#post(records.slice(half), false).catch((error: unknown): RecordOutcomes => {
      if (!(error instanceof RetryableError)) throw error;
      return { retry: records.slice(half).map((record) => ({ record, reason: error.message })), rejected: [] };
    });
    const notes = [first.note, second.note].filter((note) => note !== undefined);
    return {
      retry: [...first.retry, ...second.retry],
      rejected: [...first.rejected, ...second.rejected],
      ...(notes.length > 0 ? { note: notes.join('; ') } : {}),
    };
  }

  #safe(message: string): string {
    let safe = message;
    for (const secret of this.#secrets) safe = safe.replaceAll(secret, '[REDACTED]');
    return safe;
  }
}

function authorization(auth: HttpSinkOptions['auth']): string | null {
  if (auth?.basic) return `Basic ${Buffer.from(`${auth.basic.user}:${auth.basic.password}`).toString('base64')}`;
  if (auth?.bearer) return `Bearer ${auth.bearer}`;
  return null;
}

function lowerCased(headers: Record<string, string>): Record<string, string> {
  return Object.fromEntries(Object.entries(headers).map(([name, value]) => [name.toLowerCase(), value]));
}

const HEADER_NAME = /^[!#$%&'*+.^_`|~0-9A-Za-z-]+$/;

export const httpSink = defineSink({
  type: 'http',
  options: {
    url: httpUrl.refine((url) => !/^[a-z]+:\/\/[^/]*@/i.test(url), { error: 'put credentials in auth, not in the url' }),
    format: httpFormatOptions.default({ type: 'ndjson' }),
    /** Sent with every request; the sink's own (content type, encoding, auth) win over these. */
    headers: z
      .record(z.string(), z.string())
      .superRefine((headers, context) => {
        for (const name of Object.keys(headers)) {
          if (!HEADER_NAME.test(name)) context.addIssue({ code: 'custom', path: [name], message: 'expected an HTTP header name' });
        }
      })
      .default({}),
    auth: z
      .strictObject({
        basic: z.strictObject({ user: z.string().min(1), password: z.string() }).optional(),
        bearer: z.string().min(1).optional(),
      })
      .refine((auth) => (auth.basic === undefined) !== (auth.bearer === undefined), { error: 'expected either basic or bearer' })
      .optional(),
    gzip: z.boolean().default(false),
  },
  create: (options, context) => new HttpSink(options, context),
});
