import { backlogTooLarge, type Backlog } from './backlog.js';
import type { LoadResult } from './load.js';
import type { Target } from './targets.js';

/** One measured run of one row. */
export interface RoundResult {
  load: LoadResult;
  /** CPU per request of the server's process group, microseconds; absent without /proc. */
  serverCpuUs?: number;
  /** The same for the demo back end; absent also on the row that is the back end itself. */
  backendCpuUs?: number;
  /** Rows that write a traffic log only. */
  backlog?: Backlog;
  /** Rows that store payloads: the share of bodies stored, not given up (warm-up included). */
  bodiesStored?: number | undefined;
}

export interface Row {
  target: Target;
  rounds: RoundResult[];
  /** Why the target could not be measured; it is not retried in later rounds. */
  error?: string;
}

/** A row over its rounds: medians, except failures (summed) and the backlog (the worst round). */
export interface Summary {
  requestsPerSec: number;
  p50Ms: number;
  p99Ms: number;
  serverCpuUs?: number;
  backendCpuUs?: number;
  failures: number;
  worstBacklog?: Backlog;
  /** The lowest share of bodies stored over the rounds. */
  bodiesStored?: number;
  /** A round left more than the limit unlogged: the row FAILED and its figures meet no goal. */
  backlogFailed: boolean;
}

export function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  const middle = Math.floor(sorted.length / 2);
  return sorted.length % 2 === 1 ? sorted[middle]! : (sorted[middle - 1]! + sorted[middle]!) / 2;
}

/** The median of the values every round has, else undefined. */
function medianOfAll(values: (number | undefined)[]): number | undefined {
  return values.every((value) => value !== undefined) ? median(values) : undefined;
}

/** Undefined for a row that was not measured in every round: a row that broke off is not quoted. */
export function summarize(row: Row): Summary | undefined {
  const { rounds } = row;
  if (rounds.length === 0 || row.error !== undefined) return undefined;
  const backlogs = rounds.flatMap((round) => (round.backlog === undefined ? [] : [round.backlog]));
  const worstBacklog = backlogs.reduce<Backlog | undefined>((worst, backlog) => (worst === undefined || backlog.ms > worst.ms ? backlog : worst), undefined);
  return {
    requestsPerSec: median(rounds.map((round) => round.load.requestsPerSec)),
    p50Ms: median(rounds.map((round) => round.load.p50Ms)),
    p99Ms: median(rounds.map((round) => round.load.p99Ms)),
    serverCpuUs: medianOfAll(rounds.map((round) => round.serverCpuUs)),
    backendCpuUs: medianOfAll(rounds.map((round) => round.backendCpuUs)),
    failures: rounds.reduce((sum, round) => sum + round.load.failures, 0),
    worstBacklog,
    ...(rounds.every((round) => round.bodiesStored !== undefined) ? { bodiesStored: Math.min(...rounds.map((round) => round.bodiesStored as number)) } : {}),
    backlogFailed: worstBacklog !== undefined && backlogTooLarge(worstBacklog),
  };
}
