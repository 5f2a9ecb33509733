import type { BatchBuffer } from './batch-buffer.js';
import { compareEntryIds, ensureGroup, isNoGroup, openRedis, type RedisConnection } from './redis-stream.js';
import type { EncodedBatch, SpoolWriter, StoreResult } from './spool-writer.js';

export interface RedisBufferOptions {
  /** The local copy: every batch is kept here until the consumer group has acknowledged it. */
  spool: SpoolWriter;
  url: string;
  stream: string;
  /** The pumps' consumer group (`pump.group`). */
  group: string;
  /** The gateway process, written into each entry. */
  instance: string;
  onError: (error: Error) => void;
}

/** Batches added to the stream per round trip (one pipeline of XADDs). */
const BATCHES_PER_ROUND = 32;
/** How often the stream is asked which of the batches sent were acknowledged. */
const ACK_CHECK_MS = 100;
/** Pending entries listed per acknowledgement check; entries past them are looked at next time. */
const PENDING_PAGE = 1_000;
const RETRY_FIRST_MS = 100;
const RETRY_MAX_MS = 5_000;
const CLOSE_WAIT_MS = 2_000;

/**
 * The redis buffer: each batch is committed to the local spool first (the gateway's answer never
 * waits for Redis), then added to the stream off the request path, a pipeline of XADDs at a time,
 * and marked with its entry and Redis's `run_id`. The local copy is deleted once the consumer
 * group has acknowledged the entry. Whatever Redis loses is sent again from the spool: everything
 * not acknowledged when `run_id` changes (a restart, with or without persistence), or when the
 * stream or its group vanished. While Redis is away the gateway keeps serving and the spool
 * fills, under the buffer's size limit and full policy.
 */
export class RedisBuffer implements BatchBuffer {
  readonly #options: RedisBufferOptions;
  readonly #redis: RedisConnection;
  /** Redis's run id, once known for the current connection; null until then. */
  #run: string | null = null;
  /** Counts connections: a reply that came on an older one says nothing about the Redis now there. */
  #connection = 0;
  /** The spool's batches up to this id were added to the stream during `#run`. */
  #sentThrough = 0;
  /** Entries added during `#run` and not yet known to be acknowledged, oldest first. */
  #awaitingAck: { id: number; entry: string }[] = [];
  #nextAckCheck = 0;
  #wake: (() => void) | null = null;
  #signalled = false;
  #closing = false;
  readonly #shipping: Promise<void>;

  constructor(options: RedisBufferOptions) {
    this.#options = options;
    this.#redis = openRedis(options.url, options.onError);
    this.#redis.on('ready', () => {
      this.#connection++;
      this.#run = null;
      this.#signal();
    });
    this.#shipping = this.#ship();
  }

  async store(batches: readonly EncodedBatch[], maxBytes: number, makeRoom: boolean): Promise<StoreResult> {
    const result = await this.#options.spool.store(batches, maxBytes, makeRoom);
    if (result.stored > 0) this.#signal();
    return result;
  }

  async close(): Promise<void> {
    this.#closing = true;
    this.#signal();
    await Promise.race([this.#shipping, new Promise((resolve) => setTimeout(resolve, CLOSE_WAIT_MS).unref())]);
    this.#redis.destroy();
    await this.#options.spool.close();
  }

  #signal(): void {
    this.#signalled = true;
    this.#wake?.();
  }

  /** Waits for a new batch, a (re)connection, the close, or at most `ms`; at once if one came while the loop was busy. */
  async #idle(ms: number): Promise<void> {
    if (this.#signalled) {
      this.#signalled = false;
      return;
    }
    await new Promise<void>((resolve) => {
      const timer = setTimeout(resolve, ms);
      this.#wake = () => {
        clearTimeout(timer);
        resolve();
      };
    });
    this.#wake = null;
    this.#signalled = false;
  }

  async #ship(): Promise<void> {
    let failures = 0;
    while (!this.#closing) {
      try {
        if (!this.#redis.isReady) {
          await this.#idle(RETRY_MAX_MS);
          continue;
        }
        if (this.#run === null) await this.#resume();
        // Checked between rounds too: while a backlog goes out, what the pumps took leaves the spool.
        if (this.#awaitingAck.length > 0 && Date.now() >= this.#nextAckCheck) await this.#checkAcks();
        // A page less than full: the spool had no more, and a batch stored since has signalled.
        if ((await this.#sendUnsent()) === BATCHES_PER_ROUND) continue;
        failures = 0;
        await this.#idle(this.#awaitingAck.length > 0 ? ACK_CHECK_MS : RETRY_MAX_MS);
      } catch (error) {
        this.#options.onError(Object.assign(new Error(`Redis stream ${this.#options.stream}: ${(error as Error).message}`), { code: 'REDIS_BUFFER' }));
        // The spool says what was sent during which run: start again from there.
        this.#run = null;
        // Not cut short by new batches: under load they come all the time.
        await new Promise((resolve) => setTimeout(resolve, Math.min(RETRY_FIRST_MS * 2 ** failures++, RETRY_MAX_MS)).unref());
      }
    }
  }

  /** After a (re)connection: which Redis is this, and what did the spool send to it already. */
  async #resume(): Promise<void> {
    const { spool, stream, group } = this.#options;
    const connection = this.#connection;
    const info = await this.#redis.sendCommand<string>(['INFO', 'server']);
    const run = /run_id:(\w+)/.exec(info)?.[1];
    if (run === undefined) throw new Error('INFO server has no run_id');
    await ensureGroup(this.#redis, stream, group);
    this.#awaitingAck = (await spool.sentEntries(run)).sort((a, b) => compareEntryIds(a.entry, b.entry));
    this.#sentThrough = 0;
    if (connection === this.#connection) this.#run = run;
  }

  /** Adds the next batches (a page) the spool holds that this Redis run has not seen; says how many there were. */
  async #sendUnsent(): Promise<number> {
    const { spool, stream, instance } = this.#options;
    const run = this.#run as string;
    const batches = await spool.unsent(run, this.#sentThrough, BATCHES_PER_ROUND);
    if (batches.length === 0) return 0;
    // Issued together, the XADDs leave in one write: one round trip for the lot.
    const added = await Promise.allSettled(
      batches.map((batch) =>
        this.#redis.sendCommand<string>(['XADD', stream, '*', 'data', batch.data, 'records', String(batch.records), 'instance', instance]),
      ),
    );
    const sent = [];
    for (const [index, outcome] of added.entries()) {
      if (outcome.status === 'fulfilled') sent.push({ id: (batches[index] as { id: number }).id, entry: outcome.value });
    }
    if (sent.length > 0) {
      await spool.markSent(sent, run);
      this.#awaitingAck.push(...sent);
    }
    const failed = added.find((outcome) => outcome.status === 'rejected');
    if (failed !== undefined) throw failed.reason;
    this.#sentThrough = (batches.at(-1) as { id: number }).id;
    return batches.length;
  }

  /**
   * Deletes the local copies the group has acknowledged. An entry was acknowledged when the group
   * has delivered it (it is not after the group's last delivered id) and it is no longer pending:
   * the pumps XACK (and XDEL) only after every sink has it.
   */
  async #checkAcks(): Promise<void> {
    const { spool, stream, group } = this.#options;
    this.#nextAckCheck = Date.now() + ACK_CHECK_MS;
    const connection = this.#connection;
    let groups: unknown[][];
    try {
      groups = await this.#redis.sendCommand<unknown[][]>(['XINFO', 'GROUPS', stream]);
    } catch (error) {
      if (!isNoGroup(error)) throw error;
      return this.#streamLost(connection);
    }
    const ours = groups.map(fieldsOf).find((fields) => String(fields.get('name')) === group);
    if (ours === undefined) return this.#streamLost(connection);
    const lastDelivered = String(ours.get('last-delivered-id'));
    const delivered = this.#awaitingAck.filter(({ entry }) => compareEntryIds(entry, lastDelivered) <= 0);
    if (delivered.length === 0) return;
    const acknowledged = await this.#acknowledgedAmong(delivered, Number(ours.get('pending')));
    if (acknowledged.size === 0 || connection !== this.#connection) return;
    await spool.delete([...acknowledged].map(({ id }) => id));
    this.#awaitingAck = this.#awaitingAck.filter((sent) => !acknowledged.has(sent));
  }

  /** Which of these delivered entries (oldest first) are no longer pending. */
  async #acknowledgedAmong(delivered: { id: number; entry: string }[], pending: number): Promise<Set<{ id: number; entry: string }>> {
    if (pending === 0) return new Set(delivered);
    const first = (delivered[0] as { entry: string }).entry;
    const last = (delivered.at(-1) as { entry: string }).entry;
    const listed = await this.#redis.sendCommand<[string, ...unknown[]][]>(['XPENDING', this.#options.stream, this.#options.group, first, last, String(PENDING_PAGE)]);
    const stillPending = new Set(listed.map(([entry]) => String(entry)));
    // A full page may leave out pending entries after its last one: judge none of those yet.
    const judgedThrough = listed.length === PENDING_PAGE ? String((listed.at(-1) as [string])[0]) : last;
    return new Set(delivered.filter(({ entry }) => !stillPending.has(entry) && compareEntryIds(entry, judgedThrough) <= 0));
  }

  /** The stream or its group vanished without a restart: what was sent to it counts as unsent again. */
  async #streamLost(connection: number): Promise<void> {
    const run = this.#run;
    if (run === null || connection !== this.#connection) return;
    this.#options.onError(
      Object.assign(new Error(`Redis stream ${this.#options.stream}: the stream or its group ${this.#options.group} vanished; sending again every batch not acknowledged`), {
        code: 'REDIS_STREAM_LOST',
      }),
    );
    await this.#options.spool.forgetSent(run);
    await ensureGroup(this.#redis, this.#options.stream, this.#options.group);
    this.#awaitingAck = [];
    this.#sentThrough = 0;
  }
}

/** A Redis reply of alternating names and values (RESP2), as a map. */
function fieldsOf(reply: unknown[]): Map<string, unknown> {
  const fields = new Map<string, unknown>();
  for (let index = 0; index + 1 < reply.length; index += 2) fields.set(String(reply[index]), reply[index + 1]);
  return fields;
}
