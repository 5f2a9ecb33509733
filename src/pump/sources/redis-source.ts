import { hostname } from 'node:os';
import { decodeBatch } from '../../analytics/codec.js';
import { BINARY, compareEntryIds, ensureGroup, entryTime, isNoGroup, openRedis, type RedisConnection } from '../../buffer/redis-stream.js';
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

const RETRY_FIRST_MS = 100;
const RETRY_MAX_MS = 5_000;
const READY_POLL_MS = 20;
const COMMANDS_WAIT_MS = 5_000;

/**
 * The Redis stream as a batch source: this pump is one consumer of the group. At start it takes
 * again what it had taken and not acknowledged before (its pending entries), then new entries;
 * entries another consumer left pending longer than `claimIdleMs` (a crashed pump) are claimed,
 * while the idle time of the entries this pump holds is kept short, so a slow sink does not make
 * the others take them. A batch leaves the stream (XACK and XDEL, one transaction) only when
 * acknowledged. Redis going away is reported and retried; a vanished group is created again from
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
  #lastTouch = 0;
  #failures = 0;
  #recordsSeen = 0;
  #batchesSeen = 0;
  #closed = false;

  constructor(options: RedisSourceOptions) {
    this.#options = options;
    this.#consumer = options.consumer ?? `${hostname()}-${process.pid}`;
    this.#reader = openRedis(options.url, options.onError);
    this.#commands = openRedis(options.url, options.onError);
  }

  async read(max: number, waitMs: number): Promise<SourceBatch[]> {
    if (this.#closed) return [];
    try {
      if (!(await this.#readyWithin(waitMs))) return [];
      if (!this.#groupReady) {
        await ensureGroup(this.#reader, this.#options.stream, this.#options.group);
        this.#groupReady = true;
      }
      await this.#touchHeld();
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
      await delay(Math.min(RETRY_FIRST_MS * 2 ** this.#failures++, RETRY_MAX_MS));
      return [];
    }
  }

  /** Waits a little for the connection acknowledgements use (it may be reconnecting); fails, saying so, when Redis stays away. */
  async #commandsReady(): Promise<void> {
    const deadline = Date.now() + COMMANDS_WAIT_MS;
    while (!this.#commands.isReady && !this.#closed && Date.now() < deadline) await delay(READY_POLL_MS);
    if (!this.#commands.isReady) throw new Error(`Redis stream ${this.#options.stream}: Redis is not reachable (waited ${COMMANDS_WAIT_MS / 1000} s)`);
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

  /** Decodes entries into batches; an entry that cannot be decoded is kept in the dead letter and acknowledged, never handed out. */
  async #handOut(entries: RawEntry[]): Promise<SourceBatch[]> {
    const batches: SourceBatch[] = [];
    for (const [rawId, fields] of entries) {
      const key = rawId.toString();
      if (this.#held.has(key)) continue;
      const entry = fieldsOf(fields ?? []);
      const data = entry.get('data');
      const declared = Number(entry.get('records')?.toString() ?? 0);
      try {
        // Entries deleted while pending come back without fields: nothing is left to deliver.
        if (fields === null) {
          await this.#remove(key);
          continue;
        }
        if (data === undefined) throw new Error('the entry has no data field');
        const records = decodeBatch(data);
        batches.push({ key, records });
        this.#held.add(key);
        this.#recordsSeen += records.length;
        this.#batchesSeen++;
      } catch (error) {
        const kept = this.#options.undecodable.putEncoded(data ?? Buffer.alloc(0), declared);
        this.#options.onUndecodable?.();
        this.#options.onError(
          Object.assign(new Error(`Redis stream ${this.#options.stream}: entry ${key} (${declared} record(s)) could not be decoded (${(error as Error).message}); kept as dead letter batch ${kept}`), {
            code: 'REDIS_UNDECODABLE',
          }),
        );
        await this.#remove(key);
      }
    }
    return batches;
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

  /** Resets the idle time of the entries this pump holds (XCLAIM to itself), well before others may claim them. */
  async #touchHeld(): Promise<void> {
    if (this.#held.size === 0 || Date.now() - this.#lastTouch < this.#options.claimIdleMs / 3) return;
    this.#lastTouch = Date.now();
    const { stream, group } = this.#options;
    await this.#commands.sendCommand(['XCLAIM', stream, group, this.#consumer, '0', ...this.#held, 'JUSTID']);
  }

  async depth(): Promise<{ batches: number; records: number; oldestAgeMs: number }> {
    const { stream } = this.#options;
    await this.#commandsReady();
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

function fieldsOf(fields: Buffer[]): Map<string, Buffer> {
  const map = new Map<string, Buffer>();
  for (let index = 0; index + 1 < fields.length; index += 2) map.set((fields[index] as Buffer).toString(), fields[index + 1] as Buffer);
  return map;
}

function delay(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}
