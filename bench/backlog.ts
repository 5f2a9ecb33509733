/** The most a row may leave unlogged when its load stops, in milliseconds of its own traffic. */
export const BACKLOG_LIMIT_MS = 1_000;

/** Answered requests not yet in the traffic log when the load tool finished. */
export interface Backlog {
  transactions: number;
  /** How long the row's measured request rate takes to produce that many. */
  ms: number;
}

/**
 * `answered`: what the load tool counted over warm-up and measured run; `logged`: the answered
 * transactions in the log right then. A request in flight when a run stopped whose answer was
 * sent but never read is logged yet not counted: it can only make the backlog look smaller, by at
 * most the connections per run, and in practice by a handful.
 */
export function backlogAtEnd(answered: number, logged: number, requestsPerSec: number): Backlog {
  const transactions = Math.max(0, answered - logged);
  if (transactions === 0) return { transactions, ms: 0 };
  return { transactions, ms: requestsPerSec > 0 ? (transactions * 1_000) / requestsPerSec : Infinity };
}

export const backlogTooLarge = (backlog: Backlog): boolean => backlog.ms > BACKLOG_LIMIT_MS;

export function describeBacklog(backlog: Backlog): string {
  const verdict = backlogTooLarge(backlog) ? ` -- FAILED: over ${BACKLOG_LIMIT_MS / 1_000} s of traffic` : '';
  return `backlog at end: ${backlog.transactions} transactions = ${backlog.ms.toFixed(0)} ms of traffic${verdict}`;
}
