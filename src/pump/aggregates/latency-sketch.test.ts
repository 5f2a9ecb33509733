import { DDSketch } from '@datadog/sketches-js';
import { describe, expect, it } from 'vitest';
import { acceptLatency as acceptPoint, emptyLatency, latencyPoint, latencyQuantile, type LatencyStats, mergeLatency, sketchBytes, sketchFromBytes } from './latency-sketch.js';

const acceptLatency = (stats: LatencyStats, ms: number): void => acceptPoint(stats, latencyPoint(ms));

function random(seed: number): () => number {
  let state = seed >>> 0;
  return () => {
    state = (state * 1664525 + 1013904223) >>> 0;
    return state / 2 ** 32;
  };
}

const QUANTILES = [0.01, 0.1, 0.25, 0.5, 0.75, 0.9, 0.95, 0.99, 0.999];

/** DDSketch's rank: the value at index floor(q * (n - 1)) of the sorted values. */
function exact(sorted: readonly number[], q: number): number {
  return sorted[Math.floor(q * (sorted.length - 1))] as number;
}

const distributions: Record<string, (next: () => number) => number> = {
  'log-uniform 0.1 ms to 10 s': (next) => Math.round(0.1 * Math.exp(next() * Math.log(100_000)) * 1000) / 1000,
  'a fast mode and a slow tail': (next) => Math.round((next() < 0.9 ? 2 + next() * 3 : 200 + next() * 2000) * 1000) / 1000,
  'with zeros (no upstream)': (next) => (next() < 0.2 ? 0 : Math.round(next() * 50 * 1000) / 1000),
};

describe('latency sketches', () => {
  for (const [name, draw] of Object.entries(distributions)) {
    it(`keeps every quantile within 1% after being split, stored and merged: ${name}`, () => {
      const next = random(name.length);
      const values = Array.from({ length: 20_000 }, () => draw(next));
      const parts = Array.from({ length: 7 }, () => emptyLatency());
      values.forEach((value, i) => acceptLatency(parts[(i * 31) % 7] as (typeof parts)[number], value));
      const merged = emptyLatency();
      for (const part of parts) mergeLatency(merged, { ...part, sketch: sketchFromBytes(sketchBytes(part.sketch)) });
      const whole = emptyLatency();
      for (const value of values) acceptLatency(whole, value);
      const sorted = [...values].sort((a, b) => a - b);
      for (const q of QUANTILES) {
        const got = latencyQuantile(merged, q) as number;
        expect(Math.abs(got - exact(sorted, q)), `q=${q}`).toBeLessThanOrEqual(exact(sorted, q) * 0.01 + 1e-12);
        // Merging in parts gives the very sketch one pass would have.
        expect(got).toBe(latencyQuantile(whole, q));
      }
      expect(merged.sumMicros).toBe(whole.sumMicros);
      expect([merged.min, merged.max]).toEqual([sorted[0], sorted.at(-1)]);
    });
  }

  it('writes the DDSketch protobuf message sketches-js reads, and reads the one it writes', () => {
    const next = random(7);
    const ours = emptyLatency();
    const theirs = new DDSketch({ relativeAccuracy: 0.01 });
    for (let i = 0; i < 5000; i++) {
      const value = i % 10 === 0 ? 0 : next() * 900;
      acceptLatency(ours, value);
      theirs.accept(value);
    }
    const readByThem = DDSketch.fromProto(sketchBytes(ours.sketch));
    const readByUs = sketchFromBytes(theirs.toProto());
    // The same bins; sketches-js rebuilds its mapping from gamma, which moves the last bits of the values.
    for (const q of QUANTILES) {
      expect(readByThem.getValueAtQuantile(q)).toBeCloseTo(ours.sketch.getValueAtQuantile(q), 9);
      expect(readByUs.getValueAtQuantile(q)).toBeCloseTo(theirs.getValueAtQuantile(q), 9);
    }
    expect(readByUs.count).toBe(5000);
    expect(readByUs.zeroCount).toBe(500);
    expect(sketchFromBytes(sketchBytes(emptyLatency().sketch)).count).toBe(0);
  });

  it('refuses a sketch of another accuracy, which could not merge', () => {
    const coarse = new DDSketch({ relativeAccuracy: 0.02 });
    coarse.accept(12);
    expect(() => sketchFromBytes(coarse.toProto())).toThrow(/cannot be merged/);
    expect(() => sketchFromBytes(Buffer.from([0x0a, 0x09, 0x09]))).toThrow(/ends inside/);
  });
});
