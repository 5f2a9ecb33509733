import { once } from 'node:events';
import { existsSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { expect, it } from 'vitest';
import { busiestSpan, startAnsweredLoad } from '../../bench/answered-load.js';
import { Spool, SPOOL_FILE } from './spool.js';
import { spooledRecords } from '../../test/support/analytics-contract.js';
import { useGatewayFixture } from '../../test/support/fixture.js';
import { eventually } from '../../test/support/gateway-process.js';

const fixture = useGatewayFixture({ demo: true });
const FSYNC_INTERVAL_MS = 100;
/** The commit in flight at the kill: its fsync may take this long on a busy disk. */
const COMMIT_ALLOWANCE_MS = 200;

function spooled(directory: string): number {
  if (!existsSync(directory)) return 0;
  return readdirSync(directory)
    .filter((name) => SPOOL_FILE.test(name))
    .reduce((sum, name) => {
      const spool = new Spool(join(directory, name));
      const { records } = spool.totals();
      spool.close();
      return sum + records;
    }, 0);
}

it('a gateway SIGKILLed under load loses at most the records of its last fsyncIntervalMs and the commit in flight', async () => {
  const { workspace, demo } = fixture;
  const directory = workspace.path('spool');
  const gateway = await fixture.start({
    gateway: { host: '127.0.0.1', port: 0, group: 'test', instance: 'gw' },
    apis: [{ id: 'demo', name: 'Demo', listenPath: '/', target: demo.url }],
    trafficLog: { output: 'none' },
    analytics: { buffer: { type: 'embedded', directory, fsyncIntervalMs: FSYNC_INTERVAL_MS } },
  });
  const load = startAnsweredLoad(gateway.url);
  await eventually(async () => (spooled(directory) >= 3_000 ? true : undefined), 20_000, 'steady load with 3,000 records spooled');
  const exited = once(gateway.child, 'exit');
  gateway.child.kill('SIGKILL');
  const killedAt = performance.now();
  await exited;
  const { answers } = await load.stop();

  const kept = new Set(spooledRecords(directory).map((record) => record.id));
  const missing = answers.filter((answer) => !kept.has(answer.id));
  const rate = answers.filter((answer) => answer.at >= killedAt - 1_000 && answer.at < killedAt).length;
  const bound = busiestSpan(answers, FSYNC_INTERVAL_MS + COMMIT_ALLOWANCE_MS);
  console.log(
    `SIGKILL under load: ${missing.length} of ${answers.length} answered transactions missing from the spool, at ${rate} req/s; ` +
      `fsyncIntervalMs x rate = ${((FSYNC_INTERVAL_MS * rate) / 1_000).toFixed(0)}`,
  );
  expect(answers.length).toBeGreaterThan(3_000);
  expect(missing.length).toBeLessThanOrEqual(bound);
  // What is missing was answered just before the kill, never earlier.
  expect(missing.filter((answer) => answer.at < killedAt - FSYNC_INTERVAL_MS - COMMIT_ALLOWANCE_MS)).toEqual([]);
});
