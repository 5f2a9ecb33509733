import type { Duplex } from 'node:stream';
import { connect, type ChannelModel, type ConfirmChannel, type Message } from 'amqplib';
import { z } from 'zod';
import type { AnalyticsRecord } from '../../analytics/analytics-record.js';
import { defineSink, RetryableError, type RejectedRecord, type Sink, type SinkContext } from '../sink.js';
import { shownUrl, withoutSecrets } from './secrets.js';

export const EXCHANGE_TYPES = ['direct', 'topic', 'fanout', 'headers'] as const;

export interface AmqpSinkOptions {
  url: string;
  /** Where messages go; none: the default exchange, which routes to the queue named by the routing key. */
  exchange?: string | undefined;
  /** Given: the exchange is declared (durable) with this type; else it must exist. */
  exchangeType?: (typeof EXCHANGE_TYPES)[number] | undefined;
  /** Every message's routing key; none: the record's API id. */
  routingKey?: string | undefined;
  /** Declared durable; bound to `exchange` (with `bindingKey`) when there is one, else messages go to it directly. */
  queue?: string | undefined;
  bindingKey?: string | undefined;
  timeoutMs: number;
}

/** The routing key of a record without an API id. */
const NO_API = '_none';

interface Connection {
  model: ChannelModel;
  channel: ConfirmChannel;
  /** Messages the broker returned as unroutable, by message id, with its reason; read when their confirm comes. */
  returned: Map<string, string>;
  broken: boolean;
}

/**
 * Publishes each record as a persistent JSON message (`message_id` = the record id) on a confirm
 * channel, and resolves once the broker has confirmed every message of the batch (for a durable
 * queue: written to disk). RabbitMQ cannot deduplicate: a batch whose confirms were lost (the
 * connection broke mid-batch) is published again, so a consumer may see a message twice, with
 * the same `message_id` (at least once). Messages are `mandatory`: one no queue takes is returned
 * by the broker and its record goes to the dead letter (`tollgate replay` once a queue is bound);
 * the others of the batch count as delivered. A broken channel or connection fails the write
 * (retried) and the next write connects again.
 */
export class AmqpSink implements Sink {
  #connection: Connection | null = null;
  readonly #exchange: string;
  readonly #routingKeyFor: (record: AnalyticsRecord) => string;
  readonly #password: string;

  constructor(
    readonly options: AmqpSinkOptions,
    readonly context: SinkContext,
  ) {
    const { exchange, queue, routingKey } = options;
    this.#exchange = exchange ?? '';
    // Without an exchange, the default one routes by queue name.
    const fixedKey = exchange === undefined && queue !== undefined ? queue : routingKey;
    this.#routingKeyFor = fixedKey === undefined ? (record) => record.apiId || NO_API : () => fixedKey;
    this.#password = decodeURIComponent(new URL(options.url).password);
  }

  async open(): Promise<void> {
    await this.#connected();
  }

  async write(records: readonly AnalyticsRecord[]): Promise<RejectedRecord[]> {
    if (records.length === 0) return [];
    const connection = await this.#connected();
    // Without every confirm in time the socket is cut: each pending confirm then fails, and so does the write.
    const deadline = setTimeout(() => {
      this.context.notify(`${this.context.name}: RabbitMQ did not confirm within ${this.options.timeoutMs} ms; the next write connects again`);
      connection.broken = true;
      socketOf(connection.model).destroy();
    }, this.options.timeoutMs);
    try {
      const confirms: Promise<RejectedRecord | null>[] = [];
      for (const record of records) {
        if (connection.broken) break;
        const { confirmed, fitted } = this.#publish(connection, record);
        confirms.push(confirmed);
        // The socket's buffer is full: wait for it to empty (or the channel to close) before going on.
        if (!fitted && !connection.broken) await drainedOrClosed(connection.channel);
      }
      const outcomes = await Promise.allSettled(confirms);
      const failed = outcomes.find((outcome) => outcome.status === 'rejected');
      if (failed !== undefined) throw this.#retryable(failed.reason);
      if (confirms.length < records.length) throw this.#retryable('the channel closed before the batch was published');
      return outcomes.flatMap((outcome) => (outcome.status === 'fulfilled' && outcome.value !== null ? [outcome.value] : []));
    } finally {
      clearTimeout(deadline);
      if (connection.broken) await this.#drop(connection);
    }
  }

  async close(): Promise<void> {
    if (this.#connection !== null) await this.#drop(this.#connection);
  }

  /** Publishes one record; `confirmed` settles with the broker's confirm (null: delivered), `fitted` is false when the socket's buffer is full. */
  #publish(connection: Connection, record: AnalyticsRecord): { confirmed: Promise<RejectedRecord | null>; fitted: boolean } {
    const routingKey = this.#routingKeyFor(record);
    let fitted = true;
    const confirmed = new Promise<RejectedRecord | null>((resolve, reject) => {
      fitted = connection.channel.publish(
        this.#exchange,
        routingKey,
        Buffer.from(JSON.stringify(record)),
        {
          persistent: true,
          mandatory: true,
          messageId: record.id,
          contentType: 'application/json',
          timestamp: Math.floor(record.timestamp / 1000),
          type: 'tollgate.analytics-record',
          appId: 'tollgate',
        },
        (error: unknown) => {
          if (error) return reject(error instanceof Error ? error : new Error(`the broker refused message ${record.id} (nack)`));
          // The broker sends a message's return before its confirm.
          const unroutable = connection.returned.get(record.id);
          if (unroutable === undefined) return resolve(null);
          connection.returned.delete(record.id);
          resolve({ record, reason: `RabbitMQ returned the message (${unroutable}): no queue is bound to ${this.#where(routingKey)}` });
        },
      );
    });
    return { confirmed, fitted };
  }

  async #connected(): Promise<Connection> {
    const current = this.#connection;
    if (current !== null && !current.broken) return current;
    if (current !== null) await this.#drop(current);
    let model: ChannelModel | null = null;
    try {
      model = await connect(this.options.url, { timeout: this.options.timeoutMs, clientProperties: { connection_name: `tollgate pump ${this.context.name}` } });
      const channel = await model.createConfirmChannel();
      const connection: Connection = { model, channel, returned: new Map(), broken: false };
      this.#watch(connection);
      await this.#declare(channel);
      this.#connection = connection;
      return connection;
    } catch (error) {
      if (model !== null) await closeWithin(model, this.options.timeoutMs);
      throw this.#retryable(error);
    }
  }

  #watch(connection: Connection): void {
    const { model, channel, returned } = connection;
    const broke = (what: string) => (error?: Error) => {
      if (!connection.broken && this.#connection === connection) {
        this.context.notify(`${this.context.name}: the ${what} to RabbitMQ broke${error ? `: ${this.#shown(error.message)}` : ''}; the next write connects again`);
      }
      connection.broken = true;
    };
    model.on('error', broke('connection'));
    model.on('close', broke('connection'));
    channel.on('error', broke('channel'));
    channel.on('close', broke('channel'));
    channel.on('return', (message: Message) => {
      const { messageId } = message.properties as { messageId?: string };
      // A basic.return's fields, which amqplib's types leave out.
      const { replyCode, replyText } = message.fields as unknown as { replyCode: number; replyText: string };
      if (messageId !== undefined) returned.set(messageId, `${replyCode} ${replyText}`);
    });
  }

  async #declare(channel: ConfirmChannel): Promise<void> {
    const { exchange, exchangeType, queue, routingKey, bindingKey } = this.options;
    if (exchange !== undefined) {
      if (exchangeType === undefined) await channel.checkExchange(exchange);
      else await channel.assertExchange(exchange, exchangeType, { durable: true });
    }
    if (queue === undefined) return;
    await channel.assertQueue(queue, { durable: true });
    if (exchange !== undefined) await channel.bindQueue(queue, exchange, bindingKey ?? routingKey ?? '#');
  }

  async #drop(connection: Connection): Promise<void> {
    connection.broken = true;
    if (this.#connection === connection) this.#connection = null;
    await closeWithin(connection.model, this.options.timeoutMs);
  }

  #where(routingKey: string): string {
    return this.options.exchange === undefined ? `the default exchange as queue ${routingKey}` : `exchange ${this.options.exchange} for routing key ${routingKey}`;
  }

  #retryable(error: unknown): RetryableError {
    if (error instanceof RetryableError) return error;
    return new RetryableError(`RabbitMQ (${shownUrl(this.options.url)}): ${this.#shown(error instanceof Error ? error.message : String(error))}`);
  }

  #shown(text: string): string {
    return withoutSecrets(text, [this.#password]);
  }
}

/** Closes the connection; one the broker does not answer (its socket went away under it) would wait for ever, so it is cut after `ms`. */
async function closeWithin(model: ChannelModel, ms: number): Promise<void> {
  let timer: NodeJS.Timeout | undefined;
  await Promise.race([model.close().catch(() => undefined), new Promise((resolve) => (timer = setTimeout(resolve, ms)))]);
  clearTimeout(timer);
  socketOf(model).destroy();
}

/** amqplib keeps its socket to itself; cutting it is the only way to end a connection that no longer answers. */
function socketOf(model: ChannelModel): Duplex {
  return (model.connection as unknown as { stream: Duplex }).stream;
}

/** Resolves when the channel's socket buffer has room again, or the channel closed (a broken connection closes its channels). */
function drainedOrClosed(channel: ConfirmChannel): Promise<void> {
  return new Promise((resolve) => {
    const done = (): void => {
      channel.off('drain', done);
      channel.off('close', done);
      resolve();
    };
    channel.on('drain', done);
    channel.on('close', done);
  });
}

const amqpUrl = z.url({ protocol: /^amqps?$/, error: 'expected an amqp:// or amqps:// URL' });
/** AMQP short strings: at most 255 bytes. */
const amqpName = z.string().min(1).max(255);

export const amqpSink = defineSink({
  type: 'amqp',
  options: {
    url: amqpUrl.default('amqp://guest:guest@127.0.0.1:5672'),
    exchange: amqpName.optional(),
    exchangeType: z.enum(EXCHANGE_TYPES).optional(),
    routingKey: z.string().max(255).optional(),
    queue: amqpName.optional(),
    /** The binding of `queue` to `exchange`; default: `routingKey`, else `#` (every key, on a topic exchange). */
    bindingKey: z.string().max(255).optional(),
  },
  create: (options, context) => new AmqpSink(options, context),
});
