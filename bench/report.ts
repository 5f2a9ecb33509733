import { BACKLOG_LIMIT_MS, describeBacklog } from './backlog.js';
import { comparisonLines, formatRatio, goalLines } from './goals.js';
import { summarize, type RoundResult, type Row, type Summary } from './summary.js';
import type { TargetId } from './targets.js';

/** The number of rounds a quoted median needs at least. */
const ROUNDS_TO_QUOTE = 3;

const micros = (value: number | undefined): string => (value === undefined ? '-' : value.toFixed(1));
export const percent = (share: number): string => `${(share * 100).toFixed(1)} %`;

/** The progress line of one measured run. */
export function formatRound({ load, serverCpuUs, backendCpuUs, backlog, bodiesStored }: RoundResult): string {
  const parts = [
    `${load.requestsPerSec.toFixed(0).padStart(7)} req/s`,
    `p50 ${load.p50Ms.toFixed(2)} ms`,
    `p99 ${load.p99Ms.toFixed(2)} ms`,
    `CPU ${micros(serverCpuUs)} µs/req`,
    `back end ${micros(backendCpuUs)} µs/req`,
  ];
  if (load.failures > 0) parts.push(`${load.failures} FAILED requests`);
  if (backlog !== undefined) parts.push(describeBacklog(backlog));
  if (bodiesStored !== undefined) parts.push(`bodies stored ${percent(bodiesStored)}`);
  return parts.join('  ');
}

/** Columns padded to their widest cell: the first left-aligned, the others right-aligned. */
export function table(header: string[], lines: string[][]): string {
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
    if (summary === undefined) return [target.name, '-', '-', '-', '-', '-', '-', '-', '-', '-', 'FAILED'];
    const baseline = bare[target.scenario];
    return [
      target.name,
      summary.requestsPerSec.toFixed(0),
      summary.p50Ms.toFixed(2),
      summary.p99Ms.toFixed(2),
      micros(summary.serverCpuUs),
      micros(summary.backendCpuUs),
      baseline === undefined ? '-' : formatRatio(summary.requestsPerSec / baseline.requestsPerSec),
      nginx === undefined || target.scenario !== 'get' ? '-' : formatRatio(summary.requestsPerSec / nginx.requestsPerSec),
      String(summary.failures),
      summary.bodiesStored === undefined ? '-' : percent(summary.bodiesStored),
      summary.backlogFailed ? 'FAILED' : 'ok',
    ];
  });
  const header = ['target', 'req/s', 'p50 ms', 'p99 ms', 'CPU µs/req', 'back end µs/req', 'vs bare', 'vs nginx', 'errors', 'bodies stored', 'row'];
  return table(header, lines);
}

function backlogLines(rows: Row[], summaries: Map<TargetId, Summary>): string[] {
  return rows.flatMap(({ target }) => {
    const backlog = summaries.get(target.id)?.worstBacklog;
    return backlog === undefined ? [] : [`  ${target.name}: ${describeBacklog(backlog)}`];
  });
}

function footer(rounds: number, cpuSampled: boolean): string[] {
  return [
    'Columns: req/s, p50 and p99 from the load tool. "CPU µs/req" is the server\'s CPU time (user + system) per',
    'request of the measured run, summed over every thread of every process in its process group (nginx or',
    'gateway workers, worker threads, children they reaped): work moved off the request path still counts.',
    '"back end µs/req" is the same for the demo back end. Both come from /proc/<pid>/stat sampled right',
    'before and right after the measured run. All are medians over the rounds. "vs bare": GET rows against the',
    'bare proxy on GET, POST rows against the bare proxy on the same POST load; "vs nginx": GET rows against',
    'nginx. "errors": non-2xx/3xx answers and socket errors over all rounds.',
    '"bodies stored" (payload rows): of the bodies that passed, the share stored rather than given up when the payload',
    'writer fell behind (lowest round, warm-up included); below 99 % a payload row meets no goal: its speed was bought by',
    'dropping bodies.',
    ...(cpuSampled ? [] : ['The CPU columns are empty: they need Linux /proc.']),
    'Backlog: answered requests (warm-up + measured run, as the load tool counts them) that are not yet in the',
    'traffic log when the load tool finishes: transactionSummary lines in a snapshot of the log files taken then,',
    'less those of clients that went away (requests in flight when a run stops, which the tool does not count).',
    `Worst round shown. A row whose backlog is over ${BACKLOG_LIMIT_MS / 1_000} s of its own traffic is FAILED ("row") and meets no goal.`,
    `Rounds: interleaved. Each of the ${rounds} round(s) ran every row once, in the order above; a row that`,
    'broke off in any round is not quoted (see "Not measured").',
    ...(rounds < ROUNDS_TO_QUOTE
      ? [`WARNING: ${rounds} round(s) only; quote medians of at least ${ROUNDS_TO_QUOTE} rounds (BENCH_ROUNDS >= ${ROUNDS_TO_QUOTE}).`]
      : []),
  ];
}

export function formatReport(rows: Row[], rounds: number, cpuSampled: boolean): string {
  const summaries = new Map<TargetId, Summary>();
  for (const row of rows) {
    const summary = summarize(row);
    if (summary !== undefined) summaries.set(row.target.id, summary);
  }
  const backlogs = backlogLines(rows, summaries);
  const failedRequests = [...summaries.values()].some((summary) => summary.failures > 0);
  const notMeasured = rows
    .filter((row) => row.error !== undefined)
    .map((row) => `  ${row.target.name}: ${row.error?.split('\n')[0]}`);
  const goals = goalLines(rows, summaries);
  const comparisons = comparisonLines(rows, summaries);
  return [
    resultsTable(rows, summaries),
    ...(backlogs.length > 0 ? ['', 'Traffic log backlog at the end of the measured run (worst round):', ...backlogs] : []),
    '',
    ...footer(rounds, cpuSampled),
    ...(failedRequests ? ['WARNING: some requests failed; the numbers of those rows are suspect.'] : []),
    ...(notMeasured.length > 0 ? ['', 'Not measured:', ...notMeasured] : []),
    ...(goals.length > 0 ? ['', 'Goals (ratios to the baseline of each row, the bare undici proxy on the same load or Tollgate with analytics off, same run):', ...goals] : []),
    ...(comparisons.length > 0 ? ['', 'For information (not goals):', ...comparisons] : []),
  ].join('\n');
}
