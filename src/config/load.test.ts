import { describe, expect, it } from 'vitest';
import { ConfigError, parseConfig } from './load.js';

function problems(input: unknown): string[] {
  try {
    parseConfig(input);
  } catch (error) {
    if (error instanceof ConfigError) return error.problems;
    throw error;
  }
  return [];
}

describe('parseConfig', () => {
  it('takes listen paths that differ only by a trailing slash for the same one', () => {
    const apis = [
      { id: 'a', name: 'A', listenPath: '/shop', target: 'http://127.0.0.1:1' },
      { id: 'b', name: 'B', listenPath: '/shop/', target: 'http://127.0.0.1:2' },
    ];
    expect(problems({ apis })).toEqual(['apis.1.listenPath: expected a unique value, found "/shop/" (also apis.0.listenPath)']);
  });

  it('fills every default of an empty document', () => {
    const config = parseConfig({});
    expect(config.gateway).toMatchObject({ host: '127.0.0.1', port: 8080, group: 'group-1', instance: 'instance-1', workers: 1, keepAliveTimeoutMs: 65_000 });
    expect(config.gateway.maxConnections).toBeUndefined();
    expect(config.trafficLog).toMatchObject({ output: 'file', directory: 'logs', maxFileSizeMb: 20, maxDiskSpaceMb: 1024, diskCheckIntervalSec: 600 });
    expect(config.trafficLog.payloads).toEqual({ enabled: false, directory: 'logs/payloads', layout: 'files', maxFileSizeMb: 64, maxWriteDelayMs: 500 });
    expect(config.analytics).toMatchObject({ enabled: true, maxPayloadBytes: 1_048_576, ignoredIps: [] });
  });
});
