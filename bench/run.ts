import { spawnSync } from 'node:child_process';
import { mkdir, rm } from 'node:fs/promises';
import { arch, availableParallelism, cpus, platform } from 'node:os';
import { join } from 'node:path';
import { backlogAtEnd } from './backlog.js';
import { CPU_SAMPLING_AVAILABLE, groupCpuSeconds, microsPerRequest } from './cpu.js';
import { positiveIntFromEnv } from './env.js';
import { createLoadTool, type LoadTool } from './load.js';
import { setUpPinning } from './pinning.js';
import { findExecutable, scratchDirectory, type RunningServer } from './processes.js';
import { formatReport, formatRound } from './report.js';
import type { RoundResult, Row } from './summary.js';
import { benchTargets, parseOnly, selectTargets, type Target } from './targets.js';
import { assertTollgateBuilt, startDemoBackend } from './tollgate.js';

const WARMUP_SECONDS = 3;

function nginxVersion(binary: string): string {
  // nginx prints its version to stderr.
  return /nginx\/\S+/.exec(spawnSync(binary, ['-v'], { encoding: 'utf8' }).stderr)?.[0] ?? 'unknown version';
}

/**
 * One server process, one warm-up, one measured run; the server is gone when this returns. CPU is
 * sampled right before and after the measured run, the traffic log counted right after it.
 */
async function measure(
  target: Target,
  tool: LoadTool,
  seconds: number,
  dir: string,
  backend: RunningServer,
): Promise<{ round: RoundResult; note?: string }> {
  const server = await target.start(dir);
  // The row that is the back end itself has no back end of its own.
  const groups = server.processGroup === backend.processGroup ? [server.processGroup] : [server.processGroup, backend.processGroup];
  let round: RoundResult;
  try {
    const warmUp = await tool.run(server.url, target.scenario, WARMUP_SECONDS);
    const before = groupCpuSeconds(groups);
    const load = await tool.run(server.url, target.scenario, seconds);
    const after = groupCpuSeconds(groups);
    const logged = await target.countLogged?.(dir);
    if (!server.alive()) throw new Error('the server exited during the run');
    round = {
      load,
      serverCpuUs: microsPerRequest(before?.[0], after?.[0], load.requests),
      backendCpuUs: microsPerRequest(before?.[1], after?.[1], load.requests),
      backlog: logged === undefined ? undefined : backlogAtEnd(warmUp.requests + load.requests, logged.answered, load.requestsPerSec),
      bodiesStored: logged?.bodiesStored,
    };
  } finally {
    await server.stop();
  }
  return target.describeOutput === undefined ? { round } : { round, note: await target.describeOutput(dir) };
}

async function main(): Promise<void> {
  const seconds = positiveIntFromEnv('BENCH_DURATION', 10);
  const rounds = positiveIntFromEnv('BENCH_ROUNDS', 3);
  const only = parseOnly(process.env.BENCH_ONLY);
  await assertTollgateBuilt();

  const scratch = await scratchDirectory('tollgate-bench-');

  // Read before pinning: afterwards this process only sees the load core.
  const cores = availableParallelism();
  const pinning = setUpPinning(cores);
  const tool = await createLoadTool(process.env.BENCH_TOOL || undefined, scratch);
  const nginxBinary = findExecutable('nginx');
  const { backend, backendPort } = await startDemoBackend(pinning);
  const targets = selectTargets(benchTargets({ backend, backendPort, pinning, nginxBinary }), only);
  const rows: Row[] = targets.map((target) => ({ target, rounds: [] }));

  console.log('Tollgate benchmark');
  console.log(`  machine: ${cores} cores (${cpus()[0]?.model.trim() ?? 'unknown CPU'}), ${platform()} ${arch()}, Node ${process.version}`);
  console.log(`  load:    ${tool.description}; ${WARMUP_SECONDS} s warm-up + ${seconds} s measured per run, ${rounds} round(s) interleaved across targets`);
  console.log(`  pinning: ${pinning.description}`);
  console.log(`  nginx:   ${nginxBinary === undefined ? 'not installed, row skipped' : `${nginxBinary} (${nginxVersion(nginxBinary)})`}`);
  console.log(`  rows:    ${only === undefined ? 'all' : `${targets.map((target) => target.id).join(', ')} (BENCH_ONLY and the baselines of its rows)`}`);
  console.log('');

  const nameWidth = Math.max(...rows.map((row) => row.target.name.length));

  for (let round = 1; round <= rounds; round++) {
    for (const row of rows) {
      if (row.error !== undefined) continue;
      const dir = join(scratch, `${row.target.id}-${round}`);
      await mkdir(dir);
      const prefix = `round ${round}/${rounds}  ${row.target.name.padEnd(nameWidth)}`;
      try {
        const { round: result, note } = await measure(row.target, tool, seconds, dir, backend);
        row.rounds.push(result);
        console.log(`${prefix}  ${formatRound(result)}${note === undefined ? '' : `  (${note})`}`);
      } catch (error) {
        row.error = (error as Error).message;
        console.log(`${prefix}  FAILED: ${row.error}`);
      } finally {
        await rm(dir, { recursive: true, force: true });
      }
      if (!backend.alive()) throw new Error('the demo back end exited; no further runs are meaningful');
    }
  }
  await backend.stop();

  console.log('');
  console.log(formatReport(rows, rounds, CPU_SAMPLING_AVAILABLE));
}

main().catch((error: unknown) => {
  console.error(`bench failed: ${error instanceof Error ? error.message : String(error)}`);
  process.exit(1);
});
