import type { LoadResult } from './load.js';
import type { Target, TargetId } from './targets.js';

export interface Row {
  target: Target;
  rounds: LoadResult[];
  /** Why the target could not be measured; it is not retried in later rounds. */
  error?: string;
}

interface Summary {
  requestsPerSec: number;
  p50Ms: number;
  p99Ms: number;
  failures: number;
}

function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  const middle = Math.floor(sorted.length / 2);
  return sorted.length % 2 === 1 ? sorted[middle]! : (sorted[middle - 1]! + sorted[middle]!) / 2;
}

function summarize(rounds: LoadResult[]): Summary | undefined {
  if (rounds.length === 0) return undefined;
  return {
    requestsPerSec: median(rounds.map((round) => round.requestsPerSec)),
    p50Ms: median(rounds.map((round) => round.p50Ms)),
    p99Ms: median(rounds.map((round) => round.p99Ms)),
    failures: rounds.reduce((sum, round) => sum + round.failures, 0),
  };
}

const ratio = (value: number): string => `${value.toFixed(2)}x`;

function table(header: string[], lines: string[][]): string {
  const widths = header.map((title, column) => Math.max(title.length, ...lines.map((line) => (line[column] ?? '').length)));
  const format = (cells: string[]): string =>
    cells.map((cell, column) => (column === 0 ? cell.padEnd(widths[column]!) : cell.padStart(widths[column]!))).join('  ');
  return [format(header), widths.map((width) => '-'.repeat(width)).join('  '), ...lines.map(format)].join('\n');
}

function resultsTable(rows: Row[], summaries: Map<TargetId, Summary>): string {
  const bare = { get: summaries.get('bare-get'), post: summaries.get('bare-post') };
  const nginx = summaries.get('nginx');
  const lines = rows.map(({ target }) => {
    const summary = summaries.get(target.id);
    if (summary === undefined) return [target.name, 'FAILED', '-', '-', '-', '-', '-'];
    const baseline = bare[target.scenario];
    return [
      target.name,
      summary.requestsPerSec.toFixed(0),
      summary.p50Ms.toFixed(2),
      summary.p99Ms.toFixed(2),
      baseline === undefined ? '-' : ratio(summary.requestsPerSec / baseline.requestsPerSec),
      nginx === undefined || target.scenario !== 'get' ? '-' : ratio(summary.requestsPerSec / nginx.requestsPerSec),
      String(summary.failures),
    ];
  });
  return table(['target', 'req/s', 'p50 ms', 'p99 ms', 'vs bare', 'vs nginx', 'failed'], lines);
}

interface Goal {
  label: string;
  /** The measured side of the comparison, undefined when a row it needs is missing. */
  measured: number | undefined;
  met: (measured: number) => boolean;
}

function goals(summaries: Map<TargetId, Summary>): Goal[] {
  const rps = (id: TargetId): number | undefined => summaries.get(id)?.requestsPerSec;
  const p99 = (id: TargetId): number | undefined => summaries.get(id)?.p99Ms;
  const over = (a: number | undefined, b: number | undefined): number | undefined =>
    a === undefined || b === undefined ? undefined : a / b;
  return [
    { label: 'Tollgate log off >= 0.95x bare', measured: over(rps('tollgate-off'), rps('bare-get')), met: (x) => x >= 0.95 },
    { label: 'Tollgate log on >= 0.90x bare', measured: over(rps('tollgate-on'), rps('bare-get')), met: (x) => x >= 0.9 },
    { label: 'Tollgate log on >= 0.45x nginx', measured: over(rps('tollgate-on'), rps('nginx')), met: (x) => x >= 0.45 },
    { label: 'Tollgate log off ahead of the Node peer', measured: over(rps('tollgate-off'), rps('peer')), met: (x) => x > 1 },
    { label: 'Tollgate log on ahead of the Node peer', measured: over(rps('tollgate-on'), rps('peer')), met: (x) => x > 1 },
    { label: 'Tollgate payloads on >= 0.70x bare POST', measured: over(rps('tollgate-payloads'), rps('bare-post')), met: (x) => x >= 0.7 },
    { label: 'Tollgate log on p99 <= 1.3x bare p99', measured: over(p99('tollgate-on'), p99('bare-get')), met: (x) => x <= 1.3 },
  ];
}

export function formatReport(rows: Row[]): string {
  const summaries = new Map<TargetId, Summary>();
  for (const row of rows) {
    const summary = summarize(row.rounds);
    if (summary !== undefined) summaries.set(row.target.id, summary);
  }
  const goalLines = goals(summaries).map(({ label, measured, met }) => {
    const verdict = measured === undefined ? 'n/a (a row it needs is missing)' : `${ratio(measured)}  ${met(measured) ? 'met' : 'NOT met'}`;
    return `  ${label.padEnd(42)} ${verdict}`;
  });
  const failedRequests = rows.some((row) => (summaries.get(row.target.id)?.failures ?? 0) > 0);
  const failedTargets = rows
    .filter((row) => row.error !== undefined)
    .map((row) => `  ${row.target.name}: ${row.error?.split('\n')[0]}`);
  return [
    resultsTable(rows, summaries),
    '',
    'req/s, p50 and p99 are medians over the rounds; "failed" counts non-2xx/3xx answers and socket errors over all rounds.',
    'GET rows compare with the bare proxy on GET, POST rows with the bare proxy on the same POST load.',
    ...(failedRequests ? ['WARNING: some requests failed; the numbers of those rows are suspect.'] : []),
    ...(failedTargets.length > 0 ? ['', 'Not measured:', ...failedTargets] : []),
    '',
    'Goals:',
    ...goalLines,
  ].join('\n');
}
