import { describe, expect, it } from 'vitest';
import { ConfigError, parseConfig } from '../config/load.js';

function problemsOf(sink: Record<string, unknown>): string[] {
  try {
    parseConfig({ pump: { sinks: [sink] } });
  } catch (error) {
    if (error instanceof ConfigError) return error.problems;
    throw error;
  }
  return [];
}

describe('the options every sink has', () => {
  it('refuse, at load, dropping a field every sink needs', () => {
    for (const field of ['id', 'timestamp', 'expireAt']) {
      expect(problemsOf({ type: 'stdout', dropFields: ['userAgent', field] })).toEqual([
        `pump.sinks.0.dropFields.1: expected a field other than id, timestamp, expireAt (every sink needs them), found "${field}"`,
      ]);
    }
    expect(problemsOf({ type: 'stdout', dropFields: ['userAgent', 'apiId'] })).toEqual([]);
  });
});
