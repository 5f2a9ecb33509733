import { join } from 'node:path';
import type { AnalyticsRecord } from '../analytics/analytics-record.js';
import { encodeBatch } from '../analytics/codec.js';
import { Spool, type SpooledBatch, type SpoolTotals } from '../buffer/spool.js';

/** The dead letter of the batches the source could not decode (they are kept as they were read). */
export const UNDECODABLE = 'undecodable';

/**
 * Batches a sink gave up on (refused, or its receiver down longer than `maxRetryTimeSec`), kept
 * durably in `<directory>/<name>.spool` until `tollgate replay --sink <name>` delivers them.
 */
export class DeadLetter {
  readonly #spool: Spool;

  constructor(
    directory: string,
    readonly name: string,
  ) {
    this.#spool = new Spool(deadLetterPath(directory, name));
  }

  get path(): string {
    return this.#spool.path;
  }

  /** Keeps the records (one commit); returns the id of their batch. */
  put(records: readonly AnalyticsRecord[]): number {
    return this.putEncoded(encodeBatch(records), records.length);
  }

  /** Keeps an encoded batch as it is (one that could not be decoded too). */
  putEncoded(data: Buffer, records: number): number {
    return this.#spool.append([{ data, records }])[0] as number;
  }

  /** Up to `limit` batches after `afterId`, oldest first. */
  read(afterId: number, limit: number): SpooledBatch[] {
    return this.#spool.read(afterId, limit);
  }

  /** Removes a batch: delivered by a replay, or by an attempt that succeeded after it was given up on. */
  delete(id: number): void {
    this.#spool.delete([id]);
  }

  totals(): SpoolTotals {
    return this.#spool.totals();
  }

  close(): void {
    this.#spool.close();
  }
}

export function deadLetterPath(directory: string, name: string): string {
  return join(directory, `${name}.spool`);
}
