import { mkdirSync } from 'node:fs';
import { dirname } from 'node:path';
import Database from 'better-sqlite3';

/** One encoded batch of analytics records as the spool keeps it. */
export interface SpooledBatch {
  id: number;
  /** Epoch ms when it was spooled. */
  createdAt: number;
  records: number;
  /** The MessagePack-encoded records (`src/analytics/codec.ts`). */
  data: Buffer;
  /** With the redis buffer: the stream entry the batch was added as, and the id of the Redis run that took it. */
  streamEntry: string | null;
  redisRun: string | null;
}

export interface SpoolTotals {
  batches: number;
  records: number;
  bytes: number;
}

/** How long a process waits for another holding the database's write lock (the gateway appends while a pump deletes). */
const BUSY_TIMEOUT_MS = 5_000;

/**
 * A durable queue of encoded batches, one SQLite database in WAL mode: the gateway appends, and
 * the pump (embedded buffer) or the gateway itself (redis buffer) reads in order and deletes what
 * was delivered. A batch is one row, so a commit writes a batch at a time; `synchronous = FULL`
 * makes a commit durable, and the write-ahead log's checksums make a batch cut by a crash vanish
 * whole rather than come back torn. Totals are kept by triggers, so every process sees the same.
 */
export class Spool {
  readonly #db: Database.Database;
  readonly #insert: Database.Statement<[number, number, number, Buffer]>;
  readonly #readAfter: Database.Statement<[number, number], SpooledBatchRow>;
  readonly #delete: Database.Statement<[number]>;
  readonly #oldest: Database.Statement<[number], { id: number; records: number; bytes: number }>;
  readonly #totals: Database.Statement<[], SpoolTotals>;
  readonly #markSent: Database.Statement<[string, string, number]>;
  readonly #unsent: Database.Statement<[string, number, number], SpooledBatchRow>;
  readonly #oldestCreatedAt: Database.Statement<[], { created_at: number }>;
  readonly #sentEntries: Database.Statement<[string], { id: number; stream_entry: string }>;
  readonly #forgetSent: Database.Statement<[string]>;

  constructor(readonly path: string) {
    mkdirSync(dirname(path), { recursive: true });
    const db = new Database(path, { timeout: BUSY_TIMEOUT_MS });
    this.#db = db;
    db.pragma('journal_mode = WAL');
    db.pragma('synchronous = FULL');
    // The write-ahead log is truncated back to this after checkpoints, so it cannot keep what a busy reader once made it grow to.
    db.pragma('journal_size_limit = 16777216');
    db.exec(`
      CREATE TABLE IF NOT EXISTS batches (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        created_at INTEGER NOT NULL,
        records INTEGER NOT NULL,
        bytes INTEGER NOT NULL,
        data BLOB NOT NULL
      );
      CREATE TABLE IF NOT EXISTS totals (id INTEGER PRIMARY KEY CHECK (id = 1), batches INTEGER NOT NULL, records INTEGER NOT NULL, bytes INTEGER NOT NULL);
      INSERT OR IGNORE INTO totals VALUES (1, 0, 0, 0);
      CREATE TRIGGER IF NOT EXISTS batch_added AFTER INSERT ON batches BEGIN
        UPDATE totals SET batches = batches + 1, records = records + NEW.records, bytes = bytes + NEW.bytes;
      END;
      CREATE TRIGGER IF NOT EXISTS batch_removed AFTER DELETE ON batches BEGIN
        UPDATE totals SET batches = batches - 1, records = records - OLD.records, bytes = bytes - OLD.bytes;
      END;
      -- With the redis buffer: which batch went to the stream as which entry, in which Redis run. A
      -- table of its own, because updating a row of batches would write its whole blob again.
      CREATE TABLE IF NOT EXISTS sent (id INTEGER PRIMARY KEY, stream_entry TEXT NOT NULL, redis_run TEXT NOT NULL);
      CREATE INDEX IF NOT EXISTS sent_by_run ON sent (redis_run);
      CREATE TRIGGER IF NOT EXISTS sent_removed AFTER DELETE ON batches BEGIN
        DELETE FROM sent WHERE id = OLD.id;
      END;
    `);
    this.#insert = db.prepare('INSERT INTO batches (created_at, records, bytes, data) VALUES (?, ?, ?, ?)');
    this.#readAfter = db.prepare(
      'SELECT batches.id, created_at, records, data, sent.stream_entry, sent.redis_run FROM batches LEFT JOIN sent USING (id) WHERE batches.id > ? ORDER BY batches.id LIMIT ?',
    );
    this.#delete = db.prepare('DELETE FROM batches WHERE id = ?');
    this.#oldest = db.prepare('SELECT id, records, bytes FROM batches ORDER BY id LIMIT ?');
    this.#totals = db.prepare('SELECT batches, records, bytes FROM totals');
    this.#markSent = db.prepare('INSERT OR REPLACE INTO sent (stream_entry, redis_run, id) SELECT ?, ?, id FROM batches WHERE id = ?');
    this.#oldestCreatedAt = db.prepare('SELECT created_at FROM batches ORDER BY id LIMIT 1');
    this.#unsent = db.prepare(
      'SELECT batches.id, created_at, records, data, sent.stream_entry, sent.redis_run FROM batches LEFT JOIN sent USING (id) WHERE (sent.redis_run IS NULL OR sent.redis_run != ?) AND batches.id > ? ORDER BY batches.id LIMIT ?',
    );
    this.#sentEntries = db.prepare('SELECT id, stream_entry FROM sent WHERE redis_run = ? ORDER BY id');
    this.#forgetSent = db.prepare('DELETE FROM sent WHERE redis_run = ?');
  }

  /** Runs `work` in one transaction: what it changes is committed together, or not at all. */
  inOneCommit<T>(work: () => T): T {
    return this.#db.transaction(work)();
  }

  /** Appends batches in one transaction (one commit, one fsync); returns their ids, in order. */
  append(batches: readonly { data: Buffer; records: number }[]): number[] {
    const now = Date.now();
    return this.#db.transaction(() => batches.map(({ data, records }) => Number(this.#insert.run(now, records, data.length, data).lastInsertRowid)))();
  }

  /** Up to `limit` batches after the batch `afterId`, oldest first. */
  read(afterId: number, limit: number): SpooledBatch[] {
    return this.#readAfter.all(afterId, limit).map(batchOf);
  }

  /** Removes batches (delivered, or given up); ids already gone are ignored. */
  delete(ids: readonly number[]): void {
    this.#db.transaction(() => {
      for (const id of ids) this.#delete.run(id);
    })();
  }

  /** Removes the oldest batches until at least `bytes` are freed (or the spool is empty); says what went. */
  deleteOldest(bytes: number): { batches: number; records: number; bytes: number } {
    const freed = { batches: 0, records: 0, bytes: 0 };
    this.#db.transaction(() => {
      while (freed.bytes < bytes) {
        const oldest = this.#oldest.all(64);
        if (oldest.length === 0) break;
        for (const batch of oldest) {
          if (freed.bytes >= bytes) break;
          this.#delete.run(batch.id);
          freed.batches++;
          freed.records += batch.records;
          freed.bytes += batch.bytes;
        }
      }
    })();
    return freed;
  }

  /** When the oldest batch held was spooled (epoch ms), or null when the spool is empty. */
  oldestCreatedAt(): number | null {
    return this.#oldestCreatedAt.get()?.created_at ?? null;
  }

  totals(): SpoolTotals {
    return this.#totals.get() as SpoolTotals;
  }

  /** With the redis buffer: the batches were added to the stream as their `entry` while Redis ran as `run` (one commit). */
  markSent(sent: readonly { id: number; entry: string }[], run: string): void {
    this.#db.transaction(() => {
      for (const { id, entry } of sent) this.#markSent.run(entry, run, id);
    })();
  }

  /** With the redis buffer: up to `limit` batches after `afterId` not (yet) added to the stream during the Redis run `run`, oldest first. */
  unsent(run: string, afterId: number, limit: number): SpooledBatch[] {
    return this.#unsent.all(run, afterId, limit).map(batchOf);
  }

  /** With the redis buffer: the batches added to the stream during the Redis run `run` (and not yet deleted), by id. */
  sentEntries(run: string): { id: number; entry: string }[] {
    return this.#sentEntries.all(run).map((row) => ({ id: row.id, entry: row.stream_entry }));
  }

  /** With the redis buffer: the stream lost what was added during `run` (it or its group vanished); those batches count as unsent again. */
  forgetSent(run: string): void {
    this.#forgetSent.run(run);
  }

  /** Moves what the write-ahead log holds into the database and truncates it. */
  checkpoint(): void {
    this.#db.pragma('wal_checkpoint(TRUNCATE)');
  }

  close(): void {
    this.#db.close();
  }
}

interface SpooledBatchRow {
  id: number;
  created_at: number;
  records: number;
  data: Buffer;
  stream_entry: string | null;
  redis_run: string | null;
}

function batchOf(row: SpooledBatchRow): SpooledBatch {
  return { id: row.id, createdAt: row.created_at, records: row.records, data: row.data, streamEntry: row.stream_entry, redisRun: row.redis_run };
}

/** The spool of one gateway process: `<directory>/<group>_<instance>.spool`. */
export function spoolPath(directory: string, group: string, instance: string): string {
  return `${directory}/${group}_${instance}.spool`;
}

/** What a pump looks for in the spool directory. */
export const SPOOL_FILE = /\.spool$/;
