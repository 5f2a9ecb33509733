import { spawnSync } from 'node:child_process';
import { writeFile } from 'node:fs/promises';
import { createRequire } from 'node:module';
import { join } from 'node:path';
import autocannon from 'autocannon';
import { findExecutable, runCommand } from './processes.js';

export const CONNECTIONS = 50;

/** 'get' asks GET /hello; 'post' sends POST_BODY to /echo. */
export type Scenario = 'get' | 'post';

const POST_BODY_BYTES = 1024;
export const POST_BODY = `{"data":"${'x'.repeat(POST_BODY_BYTES - '{"data":""}'.length)}"}`;
export const POST_CONTENT_TYPE = 'application/json';

export interface LoadResult {
  /** Requests answered (any status); requests still in flight when the run ends are not counted. */
  requests: number;
  requestsPerSec: number;
  p50Ms: number;
  p99Ms: number;
  /** Non-2xx/3xx answers plus socket errors and timeouts. */
  failures: number;
}

export interface LoadTool {
  description: string;
  run(baseUrl: string, scenario: Scenario, seconds: number): Promise<LoadResult>;
}

function scenarioUrl(baseUrl: string, scenario: Scenario): string {
  return `${baseUrl}${scenario === 'get' ? '/hello' : '/echo'}`;
}

const WRK_UNITS_TO_MS: Record<string, number> = { us: 0.001, ms: 1, s: 1_000, m: 60_000 };

function wrkLatencyMs(output: string, percentile: string): number {
  const match = new RegExp(`^\\s*${percentile}%\\s+([\\d.]+)(us|ms|s|m)\\s*$`, 'm').exec(output);
  const factor = match?.[2] === undefined ? undefined : WRK_UNITS_TO_MS[match[2]];
  if (match?.[1] === undefined || factor === undefined) throw new Error(`no ${percentile}% latency in wrk output:\n${output}`);
  return Number(match[1]) * factor;
}

function parseWrkOutput(output: string): LoadResult {
  const rate = /^Requests\/sec:\s+([\d.]+)/m.exec(output)?.[1];
  const requests = /^\s*(\d+) requests in /m.exec(output)?.[1];
  if (rate === undefined || requests === undefined) throw new Error(`no request count or Requests/sec in wrk output:\n${output}`);
  const non2xx = Number(/Non-2xx or 3xx responses:\s+(\d+)/.exec(output)?.[1] ?? 0);
  const socket = /Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)/.exec(output);
  const socketErrors = socket === null ? 0 : socket.slice(1).reduce((sum, count) => sum + Number(count), 0);
  return {
    requests: Number(requests),
    requestsPerSec: Number(rate),
    p50Ms: wrkLatencyMs(output, '50'),
    p99Ms: wrkLatencyMs(output, '99'),
    failures: non2xx + socketErrors,
  };
}

async function createWrk(binary: string, scratchDir: string): Promise<LoadTool> {
  const script = join(scratchDir, 'post.lua');
  await writeFile(
    script,
    `wrk.method = "POST"\nwrk.body = [[${POST_BODY}]]\nwrk.headers["Content-Type"] = "${POST_CONTENT_TYPE}"\n`,
  );
  // `wrk -v` prints its version and exits non-zero.
  const version = /^wrk (\S+)/.exec(spawnSync(binary, ['-v'], { encoding: 'utf8' }).stdout)?.[1] ?? '(unknown version)';
  return {
    description: `wrk ${version}, 1 thread, ${CONNECTIONS} connections`,
    async run(baseUrl, scenario, seconds) {
      const args = ['-t1', `-c${CONNECTIONS}`, `-d${seconds}s`, '--latency'];
      if (scenario === 'post') args.push('-s', script);
      args.push(scenarioUrl(baseUrl, scenario));
      return parseWrkOutput(await runCommand([binary, ...args]));
    },
  };
}

function createAutocannon(): LoadTool {
  const { version } = createRequire(import.meta.url)('autocannon/package.json') as { version: string };
  return {
    description: `autocannon ${version} (in-process, latencies in whole ms), ${CONNECTIONS} connections`,
    async run(baseUrl, scenario, seconds) {
      const result = await autocannon({
        url: scenarioUrl(baseUrl, scenario),
        connections: CONNECTIONS,
        duration: seconds,
        ...(scenario === 'post' ? { method: 'POST', body: POST_BODY, headers: { 'content-type': POST_CONTENT_TYPE } } : {}),
      });
      return {
        requests: result.requests.total,
        requestsPerSec: result.requests.total / result.duration,
        p50Ms: result.latency.p50,
        p99Ms: result.latency.p99,
        failures: result.non2xx + result.errors,
      };
    },
  };
}

/** wrk when it is installed, else autocannon; `preference` ('wrk' | 'autocannon') forces one. */
export async function createLoadTool(preference: string | undefined, scratchDir: string): Promise<LoadTool> {
  if (preference === 'autocannon') return createAutocannon();
  if (preference !== undefined && preference !== 'wrk') throw new Error(`BENCH_TOOL must be wrk or autocannon, not ${preference}`);
  const wrk = findExecutable('wrk');
  if (wrk !== undefined) return createWrk(wrk, scratchDir);
  if (preference === 'wrk') throw new Error('BENCH_TOOL=wrk but wrk is not installed');
  return createAutocannon();
}
