import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { ThrottledReporter } from './throttled-reporter.js';

describe('ThrottledReporter', () => {
  let told: string[];
  let reporter: ThrottledReporter;

  beforeEach(() => {
    vi.useFakeTimers();
    vi.setSystemTime(0);
    told = [];
    reporter = new ThrottledReporter((message) => told.push(message), 10_000);
  });

  afterEach(() => vi.useRealTimers());

  it('reports an error once per interval and counts the repeats in between', () => {
    const report = reporter.for('traffic log');
    for (let i = 0; i < 5; i++) report(new Error('ENOSPC'));
    expect(told).toEqual(['traffic log: ENOSPC']);
    vi.setSystemTime(10_000);
    report(new Error('ENOSPC'));
    expect(told).toEqual(['traffic log: ENOSPC', 'traffic log: ENOSPC (and 4 more like it)']);
  });

  it('reports different errors and components separately', () => {
    reporter.for('traffic log')(new Error('ENOSPC'));
    reporter.for('payload store')(new Error('ENOSPC'));
    reporter.for('traffic log')(new Error('EIO'));
    expect(told).toEqual(['traffic log: ENOSPC', 'payload store: ENOSPC', 'traffic log: EIO']);
  });

  it('tells the repeats not reported yet when flushed', () => {
    const report = reporter.for('traffic log');
    report(new Error('ENOSPC'));
    report(new Error('ENOSPC'));
    report(new Error('ENOSPC'));
    reporter.flush();
    reporter.flush();
    expect(told).toEqual(['traffic log: ENOSPC', 'traffic log: ENOSPC: 2 more like it']);
  });

  it('counts errors of the same code as one kind, whatever paths their messages name', () => {
    const report = reporter.for('payload store');
    const denied = (path: string) => Object.assign(new Error(`EACCES: permission denied, open '${path}'`), { code: 'EACCES' });
    report(denied('/p/a-0-sent'));
    report(denied('/p/b-0-sent'));
    report(denied('/p/c-0-sent'));
    reporter.flush();
    expect(told).toEqual([
      "payload store: EACCES: permission denied, open '/p/a-0-sent'",
      "payload store: EACCES: permission denied, open '/p/a-0-sent': 2 more like it",
    ]);
  });
});
