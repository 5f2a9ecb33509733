import { describe, expect, it } from 'vitest';
import { benchTargets, parseOnly, selectTargets, TARGET_IDS, type TargetSetup } from './targets.js';

const setup: TargetSetup = {
  backend: { url: 'http://127.0.0.1:1', processGroup: 1, alive: () => true, output: () => '', stop: async () => {}, kill: async () => {} },
  backendPort: 1,
  pinning: { description: 'unpinned', server: (argv) => argv },
  nginxBinary: '/usr/sbin/nginx',
};

const selected = (only: string | undefined): string[] => selectTargets(benchTargets(setup), parseOnly(only)).map((target) => target.id);

describe('BENCH_ONLY', () => {
  it('runs every row when unset or empty', () => {
    expect(selected(undefined)).toEqual(TARGET_IDS);
    expect(selected(' ')).toEqual(TARGET_IDS);
  });

  it('runs the bare proxy of the same load with each Tollgate row, in run order', () => {
    expect(selected('tollgate-packed')).toEqual(['bare-post', 'tollgate-packed']);
    expect(selected('tollgate-on, nginx')).toEqual(['bare-get', 'tollgate-on', 'nginx']);
    expect(selected('peer')).toEqual(['peer']);
  });

  it('names the known ids when given an unknown one', () => {
    expect(() => parseOnly('tollgate-on,tollgate-fast')).toThrow(
      'BENCH_ONLY: unknown row id(s) tollgate-fast; the ids are backend, bare-get, peer, tollgate-off, tollgate-on, tollgate-embedded, tollgate-redis, nginx, bare-post, tollgate-payloads, tollgate-packed',
    );
  });
});
