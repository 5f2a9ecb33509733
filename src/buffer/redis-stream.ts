import { createClient, RESP_TYPES } from 'redis';

/** What both sides of the redis buffer need from a connection: commands as Redis spells them. */
export interface RedisConnection {
  readonly isReady: boolean;
  sendCommand<T>(args: ReadonlyArray<string | Buffer>, options?: { typeMapping?: Record<number, unknown> }): Promise<T>;
  /** A MULTI ... EXEC sent as one write, so no other command of this connection can fall inside it. */
  multi(): { addCommand(args: ReadonlyArray<string | Buffer>): unknown; exec(): Promise<unknown[]> };
  on(event: 'ready' | 'error', listener: (error?: Error) => void): unknown;
  connect(): Promise<unknown>;
  destroy(): void;
}

/** Bulk strings as Buffers: a batch is binary MessagePack, and must not go through a UTF-8 decoder. */
export const BINARY = { typeMapping: { [RESP_TYPES.BLOB_STRING]: Buffer } } as const;

const RECONNECT_FIRST_MS = 100;
const RECONNECT_MAX_MS = 5_000;
/** Commands waiting for an answer on one connection; past it they fail at once rather than pile up in memory. */
const MAX_QUEUED_COMMANDS = 10_000;

/**
 * A node-redis client that never queues commands while Redis is away (they fail at once: the
 * callers keep what they could not send and send it again), reconnects for ever with exponential
 * backoff and jitter, and reports its errors instead of throwing them. It connects in the
 * background: callers look at `isReady` and the `ready` event.
 */
export function openRedis(url: string, onError: (error: Error) => void): RedisConnection {
  const client = createClient({
    url,
    disableOfflineQueue: true,
    commandsQueueMaxLength: MAX_QUEUED_COMMANDS,
    pingInterval: 5_000,
    socket: {
      reconnectStrategy: (retries) => Math.min(RECONNECT_FIRST_MS * 2 ** Math.min(retries, 10), RECONNECT_MAX_MS) * (0.5 + Math.random() / 2),
    },
  });
  const where = redisAddress(url);
  // While Redis stays away every reconnection attempt fails the same way: said once until it is back.
  let down: string | null = null;
  client.on('ready', () => (down = null));
  client.on('error', (error: Error & { code?: string }) => {
    const code = error.code ?? 'REDIS';
    if (down === code) return;
    down = code;
    onError(Object.assign(new Error(`Redis ${where}: ${error.message || code}`), { code }));
  });
  client.connect().catch((error: Error) => onError(new Error(`Redis ${where}: ${error.message}`)));
  return client;
}

/** The URL without its credentials, for messages. */
function redisAddress(url: string): string {
  const parsed = new URL(url);
  return `${parsed.host}${parsed.pathname === '/' ? '' : parsed.pathname}`;
}

/**
 * Creates the consumer group if it is not there, reading the stream from its first entry: a group
 * created at `$` would skip what gateways added before it (after a Redis restart, for example).
 */
export async function ensureGroup(redis: RedisConnection, stream: string, group: string): Promise<void> {
  try {
    await redis.sendCommand(['XGROUP', 'CREATE', stream, group, '0', 'MKSTREAM']);
  } catch (error) {
    if (!(error as Error).message.startsWith('BUSYGROUP')) throw error;
  }
}

/** The stream or its group is gone (a Redis restarted without persistence, a deleted key). */
export function isNoGroup(error: unknown): boolean {
  return error instanceof Error && (error.message.startsWith('NOGROUP') || /no such key/i.test(error.message));
}

/** Stream entry ids (`<ms>-<seq>`) in their order: negative when `a` comes first. */
export function compareEntryIds(a: string, b: string): number {
  const [aMs, aSeq] = entryIdParts(a);
  const [bMs, bSeq] = entryIdParts(b);
  return aMs - bMs || aSeq - bSeq;
}

function entryIdParts(id: string): [number, number] {
  const dash = id.indexOf('-');
  return dash === -1 ? [Number(id), 0] : [Number(id.slice(0, dash)), Number(id.slice(dash + 1))];
}

/** When the entry was added (its id's time part). */
export function entryTime(id: string): number {
  return entryIdParts(id)[0];
}
