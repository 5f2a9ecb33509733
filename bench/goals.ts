import type { Row, Summary } from './summary.js';
import type { TargetId } from './targets.js';

export const formatRatio = (value: number): string => `${value.toFixed(2)}x`;

/** Below this share of bodies stored, a payload row's speed is bought by giving bodies up: it meets no goal. */
export const BODIES_STORED_TO_COUNT = 0.99;

/** A ratio of a Tollgate row to its baseline row (the bare proxy of the same load, or Tollgate with analytics off) in the same run. */
interface Goal {
  row: TargetId;
  metric: 'req/s' | 'p99';
  /** Met at this ratio or better: at least it for req/s, at most it for p99. */
  target: number;
  /** Short of the target but at least this (req/s) is acceptable. */
  acceptable?: number;
}

const GOALS: Goal[] = [
  { row: 'tollgate-off', metric: 'req/s', target: 0.97 },
  { row: 'tollgate-on', metric: 'req/s', target: 0.9, acceptable: 0.85 },
  { row: 'tollgate-on', metric: 'p99', target: 1.3 },
  { row: 'tollgate-payloads', metric: 'req/s', target: 0.45 },
  { row: 'tollgate-payloads', metric: 'p99', target: 2 },
  { row: 'tollgate-packed', metric: 'req/s', target: 0.75 },
  { row: 'tollgate-packed', metric: 'p99', target: 1.5 },
  { row: 'tollgate-embedded', metric: 'req/s', target: 0.92 },
  { row: 'tollgate-redis', metric: 'req/s', target: 0.92 },
];

/** Information only: req/s of the first row over the second's. */
const COMPARISONS: [TargetId, TargetId][] = [
  ['tollgate-off', 'nginx'],
  ['tollgate-on', 'nginx'],
  ['tollgate-off', 'peer'],
  ['tollgate-on', 'peer'],
];

function verdict(goal: Goal, ratio: number): string {
  const met = goal.metric === 'req/s' ? ratio >= goal.target : ratio <= goal.target;
  if (met) return 'met';
  if (goal.acceptable !== undefined && ratio >= goal.acceptable) return `acceptable (>= ${formatRatio(goal.acceptable)})`;
  return 'NOT met';
}

/** One line per goal whose row ran: label, ratio and verdict. */
export function goalLines(rows: Row[], summaries: Map<TargetId, Summary>): string[] {
  const lines: [string, string][] = [];
  for (const goal of GOALS) {
    const target = rows.find((row) => row.target.id === goal.row)?.target;
    if (target?.baseline === undefined) continue;
    const baselineId = target.baseline;
    const against = baselineId === 'bare-get' || baselineId === 'bare-post' ? 'bare' : (rows.find((row) => row.target.id === baselineId)?.target.name ?? baselineId);
    const label =
      goal.metric === 'req/s'
        ? `${target.name}: req/s >= ${formatRatio(goal.target)} ${against}`
        : `${target.name}: p99 <= ${formatRatio(goal.target)} ${against} p99`;
    const measured = summaries.get(goal.row);
    const baseline = summaries.get(target.baseline);
    if (measured === undefined || baseline === undefined) {
      lines.push([label, 'n/a (a row it needs was not measured)']);
      continue;
    }
    const ratio = goal.metric === 'req/s' ? measured.requestsPerSec / baseline.requestsPerSec : measured.p99Ms / baseline.p99Ms;
    let result = verdict(goal, ratio);
    if (measured.backlogFailed) result = 'NOT met (row FAILED: traffic log backlog)';
    else if (measured.bodiesStored !== undefined && measured.bodiesStored < BODIES_STORED_TO_COUNT) {
      result = `NOT met (only ${(measured.bodiesStored * 100).toFixed(1)} % of bodies stored)`;
    }
    lines.push([label, `${formatRatio(ratio)}  ${result}`]);
  }
  const width = Math.max(0, ...lines.map(([label]) => label.length));
  return lines.map(([label, result]) => `  ${label.padEnd(width)}  ${result}`);
}

/** The nginx and Node peer ratios, for rows that were measured. */
export function comparisonLines(rows: Row[], summaries: Map<TargetId, Summary>): string[] {
  const name = (id: TargetId): string => rows.find((row) => row.target.id === id)?.target.name ?? id;
  return COMPARISONS.flatMap(([id, other]) => {
    const measured = summaries.get(id);
    const reference = summaries.get(other);
    if (measured === undefined || reference === undefined) return [];
    return [`  ${name(id)} vs ${name(other)}: ${formatRatio(measured.requestsPerSec / reference.requestsPerSec)} req/s`];
  });
}
