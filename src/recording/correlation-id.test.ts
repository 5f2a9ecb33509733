import { describe, expect, it } from 'vitest';
import { newCorrelationId } from './correlation-id.js';

const COUNTER_SPACE = 0x1000000;

function secondsOf(id: string): number {
  return Number.parseInt(id.slice(0, 8), 16);
}

function counterOf(id: string): number {
  return Number.parseInt(id.slice(18), 16);
}

describe('newCorrelationId', () => {
  it('is 24 lower-case hex characters (12 bytes)', () => {
    expect(newCorrelationId()).toMatch(/^[0-9a-f]{24}$/);
    expect(newCorrelationId(0)).toMatch(/^00000000[0-9a-f]{16}$/);
  });

  it('starts with the Unix seconds of its time', () => {
    const now = Date.UTC(2026, 10, 21, 8, 15, 30, 999);
    const id = newCorrelationId(now);
    expect(id.slice(0, 8)).toBe(Math.floor(now / 1000).toString(16));
    expect(secondsOf(id)).toBe(Math.floor(now / 1000));
    expect(secondsOf(newCorrelationId(1_000))).toBe(1);
  });

  it('carries the same process part in every id, and a counter that goes up by one', () => {
    const first = newCorrelationId(1_700_000_000_000);
    const second = newCorrelationId(1_700_000_000_500);
    const later = newCorrelationId(1_700_000_123_000);
    expect(second.slice(0, 18)).toBe(first.slice(0, 18));
    expect(later.slice(8, 18)).toBe(first.slice(8, 18));
    expect((counterOf(second) - counterOf(first) + COUNTER_SPACE) % COUNTER_SPACE).toBe(1);
    expect((counterOf(later) - counterOf(second) + COUNTER_SPACE) % COUNTER_SPACE).toBe(1);
  });

  it('never repeats within a second, far beyond any request rate', () => {
    const now = Date.now();
    const ids = new Set<string>();
    for (let i = 0; i < 200_000; i++) ids.add(newCorrelationId(now));
    expect(ids.size).toBe(200_000);
  });

  it('sorts by time across seconds', () => {
    const ids = [1_600_000_000_000, 1_600_000_001_000, 1_700_000_000_000, 2_000_000_000_000].map((t) => newCorrelationId(t));
    expect([...ids].sort()).toEqual(ids);
  });

  it('is never the id the format reserves for "no transaction"', () => {
    expect(newCorrelationId()).not.toBe('0'.repeat(24));
  });
});
