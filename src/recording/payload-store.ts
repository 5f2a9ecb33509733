import type { PayloadOutcome } from './record.js';
import type { Leg, Transaction } from './transaction.js';

export type Direction = 'sent' | 'received';

/** Where one recorded body belongs: a leg and a direction. A body that passed unchanged has two. */
export interface Placement {
  leg: Leg;
  direction: Direction;
}

/** Records on each placement's leg what became of the body. */
export function setOutcome(placements: readonly Placement[], outcome: PayloadOutcome): void {
  for (const { leg, direction } of placements) {
    if (direction === 'received') leg.recvPayload = outcome;
    else leg.sentPayload = outcome;
  }
}

/** A settled, redacted body to store, and every place it is recorded. */
export interface BodyToStore {
  placements: Placement[];
  /** The bytes, or null when the body streamed to `file` as it passed. */
  data: Buffer | null;
  file: string | null;
  /** Bytes of the body as stored. */
  bytes: number;
  truncated: boolean;
}

/**
 * Keeps recorded bodies on disk. A store sets each placement's outcome on its leg
 * (`recvPayload`/`sentPayload`): where the body is, or why it is not stored.
 */
export interface PayloadStore {
  /** Where a body may stream while it passes, or null when this store takes bodies from memory only. */
  spillPath(transaction: Transaction, legIndex: number, direction: Direction): string | null;
  /** Stores a transaction's bodies; resolves once every file they are in is complete. */
  store(transaction: Transaction, bodies: BodyToStore[]): Promise<void> | void;
  /** Opens the files being written anew (SIGHUP). */
  reopen(): void;
  close(): Promise<void>;
}

function pad(value: number): string {
  return value < 10 ? `0${value}` : String(value);
}

/** `<YYYY-MM-DD>/<HH.mm>` of a time, in UTC. */
export function payloadFolder(epochMs: number): string {
  const date = new Date(epochMs);
  return `${date.getUTCFullYear()}-${pad(date.getUTCMonth() + 1)}-${pad(date.getUTCDate())}/${pad(date.getUTCHours())}.${pad(date.getUTCMinutes())}`;
}
