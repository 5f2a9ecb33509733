import { hostname } from 'node:os';
import { decodeBatch } from '../../analytics/codec.js';
import { backoffMs, BINARY, compareEntryIds, ensureGroup, entryTime, fieldsOf, isNoGroup, openRedis, type RedisConnection } from '../../buffer/redis-stream.js';
import type { BatchSource, SourceBatch } from '../source.js';

/** Where batches that cannot be decoded are kept (the pump's dead letter `undecodable`). */
export interface UndecodableKeeper {
  putEncoded(data: Buffer, records: number): number;
}

export interface RedisSourceOptions {
  url: string;
  stream: string;
  group: string;
  /** This pump's name in the group (`pump.consumer`, default `<hostname>-<pid>`). */
  consumer?: string;
  /** Entries another consumer took and left unacknowledged this long are claimed (`pump.claimIdleMs`). */
  claimIdleMs: number;
  undecodable: UndecodableKeeper;
  /** Counts what went to the undecodable dead letter. */
  onUndecodable?: () => void;
  onError: (error: Error) => void;
}

type RawEntry = [Buffer, Buffer[] | null];

const READY_POLL_MS = 20;
const COMMANDS_WAIT_MS = 5_000;
/** /health must answer quickly: the depth waits for a (re)connecting Redis only this long. */
const DEPTH_WAIT_MS = 1_000;

/**
 * The Redis stream as a batch source: this pump is one consumer of the group. At start it takes
 * again what it had taken and not acknowledged before (its pending entries), then new entries;
 * entries another consumer left pending longer than `claimIdleMs` (a crashed pump) are claimed,
 * while the idle time of the entries this pump holds is kept short (on a timer of its own: a pump
 * whose slots are all full does not read), so a slow sink does not make the others take them. A
 * batch leaves the stream (XACK and XDEL, one transaction) only when acknowledged. Redis going away is reported and retried; a vanished group is created again from
 * the stream's first entry.
 */
export class RedisSource implements BatchSource {
  readonly #options: RedisSourceOptions;
  readonly #consumer: string;
  /** Blocking reads wait on a connection of their own: acknowledgements must not queue behind them. */
  readonly #reader: RedisConnection;
  readonly #commands: RedisConnection;
  #groupReady = false;
  /** Where the pass over this consumer's own pending entries is; null once done. */
  #ownPendingAfter: string | null = '0';
  #claimCursor = '0-0';
  #nextClaim = 0;
  /** Entries handed out and not yet acknowledged: never handed out twice by this source. */
  readonly #held = new Set<string>();
  readonly #touchTimer: NodeJS.Timeout;
  #touching = false;
  #failures = 0;
  #recordsSeen = 0;
  #batchesSeen = 0;
  #closed = false;

  constructor(options: RedisSourceOptions) {
    this.#options = options;
    this.#consumer = options.consumer ?? `${hostname()}-${process.pid}`;
    this.#reader = openRedis(options.url, options.onError);
    this.#commands = openRedis(options.url, options.onError);
    this.#touchTimer = setInterval(() => void this.#touchHeld(), options.claimIdleMs / 3);
    this.#touchTimer.unref();
  }

  async read(max: number, waitMs: number): Promise<SourceBatch[]> {
    if (this.#closed) return [];
    try {
      if (!(await this.#readyWithin(waitMs))) return [];
      if (!this.#groupReady) {
        await ensureGroup(this.#reader, this.#options.stream, this.#options.group);
        this.#groupReady = true;
      }
      const batches = await this.#take(max, waitMs);
      this.#failures = 0;
      return batches;
    } catch (error) {
      if (isNoGroup(error)) {
        this.#groupReady = false;
        this.#claimCursor = '0-0';
        return [];
      }
      this.#options.onError(Object.assign(new Error(`Redis stream ${this.#options.stream}: ${(error as Error).message}; retrying`), { code: 'REDIS_SOURCE' }));
      await delay(backoffMs(this.#failures++));
      return [];
    }
  }

  /** Waits a little for the connection acknowledgements use (it may be reconnecting); fails, saying so, when Redis stays away. */
  async #commandsReady(waitMs = COMMANDS_WAIT_MS): Promise<void> {
    const deadline = Date.now() + waitMs;
    while (!this.#commands.isReady && !this.#closed && Date.now() < deadline) await delay(READY_POLL_MS);
    if (!this.#commands.isReady) throw new Error(`Redis stream ${this.#options.stream}: Redis is not reachable (waited ${waitMs / 1000} s)`);
  }

  /** Whether the reading connection is (or becomes, within `ms`) ready: while Redis is away, a read waits and finds nothing. */
  async #readyWithin(ms: number): Promise<boolean> {
    const deadline = Date.now() + ms;
    while (!this.#reader.isReady && !this.#closed && Date.now() < deadline) await delay(Math.min(READY_POLL_MS, deadline - Date.now()));
    return this.#reader.isReady && !this.#closed;
  }

  async #take(max: number, waitMs: number): Promise<SourceBatch[]> {
    const { stream, group, claimIdleMs } = this.#options;
    if (this.#ownPendingAfter !== null) {
      const entries = streamEntries(await this.#reader.sendCommand(['XREADGROUP', 'GROUP', group, this.#consumer, 'COUNT', String(max), 'STREAMS', stream, this.#ownPendingAfter], BINARY));
      if (entries.length === 0) this.#ownPendingAfter = null;
      else {
        this.#ownPendingAfter = (entries.at(-1) as RawEntry)[0].toString();
        return this.#handOut(entries);
      }
    }
    if (Date.now() >= this.#nextClaim) {
      const [next, claimed] = await this.#reader.sendCommand<[Buffer, (RawEntry | null)[]]>(
        ['XAUTOCLAIM', stream, group, this.#consumer, String(claimIdleMs), this.#claimCursor, 'COUNT', String(max)],
        BINARY,
      );
      this.#claimCursor = next.toString();
      // A whole pass over the pending entries is done: the next is due when more could have gone idle.
      if (this.#claimCursor === '0-0') this.#nextClaim = Date.now() + claimIdleMs / 2;
      const entries = claimed.filter((entry): entry is RawEntry => entry !== null && !this.#held.has(entry[0].toString()));
      if (entries.length > 0) return this.#handOut(entries);
    }
    const blockMs = Math.max(1, Math.min(waitMs, this.#nextClaim - Date.now()));
    const fresh = await this.#reader.sendCommand(['XREADGROUP', 'GROUP', group, this.#consumer, 'COUNT', String(max), 'BLOCK', String(blockMs), 'STREAMS', stream, '>'], BINARY);
    return this.#handOut(streamEntries(fresh));
  }

  /**
   * Decodes entries into batches; an entry that cannot be decoded is kept in the dead letter and
   * acknowledged, never handed out. An entry whose handling fails stays pending (claimed again
   * later) without holding back the others.
   */
  async #handOut(entries: RawEntry[]): Promise<SourceBatch[]> {
    const batches: SourceBatch[] = [];
    for (const [rawId, fields] of entries) {
      const key = rawId.toString();
      if (this.#held.has(key)) continue;
      try {
        const batch = await this.#batchOf(key, fields);
        if (batch !== null) batches.push(batch);
      } catch (error) {
        this.#options.onError(Object.assign(new Error(`Redis stream ${this.#options.stream}: entry ${key}: ${(error as Error).message}; left pending`), { code: 'REDIS_SOURCE' }));
      }
    }
    for (const batch of batches) {
      this.#held.add(batch.key);
      this.#recordsSeen += batch.records.length;
      this.#batchesSeen++;
    }
    return batches;
  }

  /** The entry's batch, or null when there is nothing to deliver (deleted while pending, or undecodable and set aside). */
  async #batchOf(key: string, fields: Buffer[] | null): Promise<SourceBatch | null> {
    // Entries deleted while pending come back without fields: nothing is left to deliver.
    if (fields === null) {
      await this.#remove(key);
      return null;
    }
    const entry = fieldsOf(fields);
    const data = entry.get('data');
    const declared = Number(entry.get('records')?.toString() ?? 0);
    try {
      if (data === undefined) throw new Error('the entry has no data field');
      return { key, records: decodeBatch(data) };
    } catch (error) {
      const kept = this.#options.undecodable.putEncoded(data ?? Buffer.alloc(0), declared);
      this.#options.onUndecodable?.();
      this.#options.onError(
        Object.assign(new Error(`Redis stream ${this.#options.stream}: entry ${key} (${declared} record(s)) could not be decoded (${(error as Error).message}); kept as dead letter batch ${kept}`), {
          code: 'REDIS_UNDECODABLE',
        }),
      );
      await this.#remove(key);
      return null;
    }
  }

  async ack(batch: SourceBatch): Promise<void> {
    try {
      await this.#remove(batch.key);
    } finally {
      // Not acknowledged: no longer kept fresh either, so it is claimed again once idle (and delivered again).
      this.#held.delete(batch.key);
    }
  }

  async #remove(key: string): Promise<void> {
    const { stream, group } = this.#options;
    await this.#commandsReady();
    const transaction = this.#commands.multi();
    transaction.addCommand(['XACK', stream, group, key]);
    transaction.addCommand(['XDEL', stream, key]);
    await transaction.exec();
  }

  /**
   * Resets the idle time of the entries this pump holds (XCLAIM to itself), well before others may
   * claim them; an entry another consumer has claimed meanwhile stays theirs.
   */
  async #touchHeld(): Promise<void> {
    if (this.#held.size === 0 || this.#touching || !this.#commands.isReady) return;
    this.#touching = true;
    const { stream, group } = this.#options;
    try {
      const held = [...this.#held];
      const owners = await Promise.all(held.map((id) => this.#commands.sendCommand<[unknown, unknown][]>(['XPENDING', stream, group, id, id, '1'])));
      const ours = held.filter((_, index) => String(owners[index]?.[0]?.[1]) === this.#consumer);
      // Between the two commands another consumer could only claim an entry idle for claimIdleMs: refreshed every third of it, none is.
      if (ours.length > 0) await this.#commands.sendCommand(['XCLAIM', stream, group, this.#consumer, '0', ...ours, 'JUSTID']);
    } catch (error) {
      this.#options.onError(Object.assign(new Error(`Redis stream ${stream}: cannot refresh the entries held: ${(error as Error).message}`), { code: 'REDIS_SOURCE' }));
    } finally {
      this.#touching = false;
    }
  }

  async depth(): Promise<{ batches: number; records: number; oldestAgeMs: number }> {
    const { stream } = this.#options;
    await this.#commandsReady(DEPTH_WAIT_MS);
    const [batches, oldest] = await Promise.all([
      this.#commands.sendCommand<number>(['XLEN', stream]),
      this.#commands.sendCommand<RawEntry[]>(['XRANGE', stream, '-', '+', 'COUNT', '1'], BINARY),
    ]);
    const oldestId = oldest[0]?.[0].toString();
    // The stream does not count records; estimated from the batches this pump has read.
    const perBatch = this.#batchesSeen === 0 ? 0 : this.#recordsSeen / this.#batchesSeen;
    return { batches, records: Math.round(batches * perBatch), oldestAgeMs: oldestId === undefined ? 0 : Math.max(0, Date.now() - entryTime(oldestId)) };
  }

  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    clearInterval(this.#touchTimer);
    this.#reader.destroy();
    this.#commands.destroy();
  }
}

/** The entries of an XREADGROUP reply for one stream (none when it timed out). */
function streamEntries(reply: unknown): RawEntry[] {
  if (reply === null) return [];
  const [stream] = reply as [[Buffer, RawEntry[]]];
  return stream === undefined ? [] : [...stream[1]].sort((a, b) => compareEntryIds(a[0].toString(), b[0].toString()));
}

function delay(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}
