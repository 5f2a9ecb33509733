import { spawnSync } from 'node:child_process';
import { rmSync } from 'node:fs';
import { mkdir, mkdtemp, rm } from 'node:fs/promises';
import { arch, availableParallelism, cpus, platform, tmpdir } from 'node:os';
import { join } from 'node:path';
import { createLoadTool, type LoadResult, type LoadTool } from './load.js';
import { setUpPinning } from './pinning.js';
import { findExecutable, freePort, killAllChildren, startServer } from './processes.js';
import { formatReport, type Row } from './report.js';
import { benchTargets, type Target } from './targets.js';
import { assertTollgateBuilt, demoBackendArgv } from './tollgate.js';

const WARMUP_SECONDS = 3;

function positiveIntFromEnv(name: string, fallback: number): number {
  const text = process.env[name];
  if (text === undefined || text === '') return fallback;
  const value = Number(text);
  if (!Number.isInteger(value) || value < 1) throw new Error(`${name} must be a positive whole number, not ${text}`);
  return value;
}

function nginxVersion(binary: string): string {
  // nginx prints its version to stderr.
  return /nginx\/\S+/.exec(spawnSync(binary, ['-v'], { encoding: 'utf8' }).stderr)?.[0] ?? 'unknown version';
}

function formatResult(result: LoadResult): string {
  const failures = result.failures > 0 ? `  ${result.failures} FAILED requests` : '';
  return `${result.requestsPerSec.toFixed(0).padStart(7)} req/s  p50 ${result.p50Ms.toFixed(2)} ms  p99 ${result.p99Ms.toFixed(2)} ms${failures}`;
}

/** One server process, one warm-up, one measured run; the server is gone when this returns. */
async function measure(target: Target, tool: LoadTool, seconds: number, dir: string): Promise<{ result: LoadResult; note?: string }> {
  const server = await target.start(dir);
  let result: LoadResult;
  try {
    await tool.run(server.url, target.scenario, WARMUP_SECONDS);
    result = await tool.run(server.url, target.scenario, seconds);
    if (!server.alive()) throw new Error('the server exited during the run');
  } finally {
    await server.stop();
  }
  return target.describeOutput === undefined ? { result } : { result, note: await target.describeOutput(dir) };
}

async function main(): Promise<void> {
  const seconds = positiveIntFromEnv('BENCH_DURATION', 10);
  const rounds = positiveIntFromEnv('BENCH_ROUNDS', 3);
  await assertTollgateBuilt();

  const scratch = await mkdtemp(join(tmpdir(), 'tollgate-bench-'));
  process.on('exit', () => {
    killAllChildren();
    rmSync(scratch, { recursive: true, force: true });
  });
  for (const [signal, code] of [['SIGINT', 130], ['SIGTERM', 143]] as const) process.on(signal, () => process.exit(code));

  // Read before pinning: afterwards this process only sees the load core.
  const cores = availableParallelism();
  const pinning = setUpPinning(cores);
  const tool = await createLoadTool(process.env.BENCH_TOOL || undefined, scratch);
  const nginxBinary = findExecutable('nginx');
  console.log('Tollgate benchmark');
  console.log(`  machine: ${cores} cores (${cpus()[0]?.model.trim() ?? 'unknown CPU'}), ${platform()} ${arch()}, Node ${process.version}`);
  console.log(`  load:    ${tool.description}; ${WARMUP_SECONDS} s warm-up + ${seconds} s measured per run, ${rounds} round(s) interleaved across targets`);
  console.log(`  pinning: ${pinning.description}`);
  console.log(`  nginx:   ${nginxBinary === undefined ? 'not installed, row skipped' : `${nginxBinary} (${nginxVersion(nginxBinary)})`}`);
  console.log('');

  const backendPort = await freePort();
  const backend = await startServer({
    name: 'demo back end',
    argv: pinning.server(demoBackendArgv(backendPort)),
    port: backendPort,
    readyText: `demo back end listening on http://127.0.0.1:${backendPort}`,
  });
  const rows: Row[] = benchTargets({ backend, backendPort, pinning, nginxBinary }).map((target) => ({ target, rounds: [] }));
  const nameWidth = Math.max(...rows.map((row) => row.target.name.length));

  for (let round = 1; round <= rounds; round++) {
    for (const row of rows) {
      if (row.error !== undefined) continue;
      const dir = join(scratch, `${row.target.id}-${round}`);
      await mkdir(dir);
      const prefix = `round ${round}/${rounds}  ${row.target.name.padEnd(nameWidth)}`;
      try {
        const { result, note } = await measure(row.target, tool, seconds, dir);
        row.rounds.push(result);
        console.log(`${prefix}  ${formatResult(result)}${note === undefined ? '' : `  (${note})`}`);
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
  console.log(formatReport(rows));
}

main().catch((error: unknown) => {
  console.error(`bench failed: ${error instanceof Error ? error.message : String(error)}`);
  process.exit(1);
});
