import { describe, expect, it } from 'vitest';
import { backlogAtEnd } from './backlog.js';
import { goalLines } from './goals.js';
import { summarize, type RoundResult, type Row, type Summary } from './summary.js';
import { benchTargets, type TargetId, type TargetSetup } from './targets.js';

const setup: TargetSetup = {
  backend: { url: 'http://127.0.0.1:1', processGroup: 1, alive: () => true, output: () => '', stop: async () => {}, kill: async () => {} },
  backendPort: 1,
  pinning: { description: 'unpinned', server: (argv) => argv },
  nginxBinary: undefined,
};

function round(requestsPerSec: number, p99Ms: number, unlogged?: number): RoundResult {
  const load = { requests: requestsPerSec * 10, requestsPerSec, p50Ms: p99Ms / 2, p99Ms, failures: 0 };
  return unlogged === undefined ? { load } : { load, backlog: backlogAtEnd(load.requests, load.requests - unlogged, requestsPerSec) };
}

function report(measured: Partial<Record<TargetId, RoundResult[]>>): { rows: Row[]; summaries: Map<TargetId, Summary> } {
  const rows = benchTargets(setup)
    .filter((target) => measured[target.id] !== undefined)
    .map((target) => ({ target, rounds: measured[target.id]! }));
  const summaries = new Map(rows.map((row) => [row.target.id, summarize(row)!]));
  return { rows, summaries };
}

describe('goals', () => {
  it('takes medians over the rounds and grades log on as met, acceptable or not met', () => {
    const bare = [round(10_000, 10), round(9_000, 10), round(11_000, 10)];
    const verdicts = [9_000, 8_600, 8_000].map((rate) => {
      const { rows, summaries } = report({ 'bare-get': bare, 'tollgate-on': [round(rate, 12, 0), round(rate - 500, 12, 0), round(rate + 500, 12, 0)] });
      return goalLines(rows, summaries)[0];
    });
    expect(verdicts).toEqual([
      expect.stringMatching(/Tollgate, log on: req\/s >= 0\.90x bare +0\.90x  met$/),
      expect.stringMatching(/0\.86x  acceptable \(>= 0\.85x\)$/),
      expect.stringMatching(/0\.80x  NOT met$/),
    ]);
  });

  it('fails a row one of whose rounds left over a second of traffic unlogged, whatever its ratio', () => {
    const { rows, summaries } = report({
      'bare-post': [round(1_000, 20), round(1_000, 20), round(1_000, 20)],
      'tollgate-packed': [round(1_000, 20, 0), round(1_000, 20, 1_001), round(1_000, 20, 0)],
    });
    expect(summaries.get('tollgate-packed')).toMatchObject({ backlogFailed: true, worstBacklog: { transactions: 1_001, ms: 1_001 } });
    expect(goalLines(rows, summaries)).toEqual([
      expect.stringMatching(/req\/s >= 0\.75x bare +1\.00x  NOT met \(row FAILED: traffic log backlog\)$/),
      expect.stringMatching(/p99 <= 1\.50x bare p99 +1\.00x  NOT met \(row FAILED: traffic log backlog\)$/),
    ]);
  });

  it('leaves out the goals of rows that did not run', () => {
    const { rows, summaries } = report({ 'bare-get': [round(10_000, 10)], 'tollgate-off': [round(9_800, 10)] });
    expect(goalLines(rows, summaries)).toEqual([expect.stringMatching(/Tollgate, log off: req\/s >= 0\.97x bare +0\.98x  met$/)]);
  });
});
