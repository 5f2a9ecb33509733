import { basename, join } from 'node:path';
import { createClient } from 'redis';
import { countFiles, tally } from './files.js';
import type { Scenario } from './load.js';
import { NGINX_ACCESS_LOG, nginxCommand } from './nginx.js';
import type { Pinning } from './pinning.js';
import { freePort, startServer, type RunningServer } from './processes.js';
import { countLogged, gatewayArgv, PAYLOAD_DIR, SPOOL_DIR, TRAFFIC_LOG_DIR, type GatewayShape, type Logged } from './tollgate.js';

/** Every row id, in the order the rows are run and printed. */
export const TARGET_IDS = [
  'backend',
  'bare-get',
  'peer',
  'tollgate-off',
  'tollgate-on',
  'tollgate-embedded',
  'tollgate-redis',
  'nginx',
  'bare-post',
  'tollgate-payloads',
  'tollgate-packed',
] as const;

export type TargetId = (typeof TARGET_IDS)[number];

export interface Target {
  id: TargetId;
  name: string;
  scenario: Scenario;
  /** The row this one's goals are measured against; it always runs when this one does. */
  baseline?: TargetId;
  /** Starts the server under test, keeping any files it writes in `dir`. */
  start(dir: string): Promise<RunningServer>;
  /** What the server's traffic log holds so far, for rows that write one. */
  countLogged?(dir: string): Promise<Logged>;
  /** A sanity line about what the server wrote to `dir`, read after it stopped. */
  describeOutput?(dir: string): Promise<string>;
}

export interface TargetSetup {
  backend: RunningServer;
  backendPort: number;
  pinning: Pinning;
  /** Absent when nginx is not installed. */
  nginxBinary: string | undefined;
}

const MB = 1024 * 1024;

function benchScript(name: string, script: string, setup: TargetSetup): (dir: string) => Promise<RunningServer> {
  return async () => {
    const port = await freePort();
    return startServer({
      name,
      argv: setup.pinning.server([process.execPath, '--import', 'tsx', script, '--port', String(port), '--target', setup.backend.url]),
      port,
      readyText: `listening on http://127.0.0.1:${port}`,
    });
  };
}

export type TollgateMode = 'log off' | 'log on' | 'payloads on' | 'payloads packed' | 'embedded spool' | 'redis stream';

/** Starts Tollgate in `mode` on the demo back end, its files under the given folder. */
export function tollgate(mode: TollgateMode, setup: TargetSetup): (dir: string) => Promise<RunningServer> {
  // Every mode sets both variables, so overrides in the caller's environment cannot leak in.
  const env: Record<TollgateMode, NodeJS.ProcessEnv> = {
    'log off': { TOLLGATE_TRAFFIC_LOG_OUTPUT: 'none', TOLLGATE_TRAFFIC_LOG_PAYLOAD: 'false' },
    'log on': { TOLLGATE_TRAFFIC_LOG_OUTPUT: 'file', TOLLGATE_TRAFFIC_LOG_PAYLOAD: 'false' },
    'payloads on': { TOLLGATE_TRAFFIC_LOG_OUTPUT: 'file', TOLLGATE_TRAFFIC_LOG_PAYLOAD: 'true' },
    'payloads packed': { TOLLGATE_TRAFFIC_LOG_OUTPUT: 'file', TOLLGATE_TRAFFIC_LOG_PAYLOAD: 'true' },
    'embedded spool': { TOLLGATE_TRAFFIC_LOG_OUTPUT: 'none', TOLLGATE_TRAFFIC_LOG_PAYLOAD: 'false' },
    'redis stream': { TOLLGATE_TRAFFIC_LOG_OUTPUT: 'none', TOLLGATE_TRAFFIC_LOG_PAYLOAD: 'false' },
  };
  const shapes: Record<TollgateMode, GatewayShape> = {
    'log off': {},
    'log on': {},
    'payloads on': {},
    'payloads packed': { payloadLayout: 'packed' },
    'embedded spool': { buffer: 'embedded' },
    'redis stream': { buffer: 'redis' },
  };
  return async (dir) => {
    const port = await freePort();
    return startServer({
      name: `Tollgate (${mode})`,
      argv: setup.pinning.server(await gatewayArgv(dir, port, setup.backend.url, { ...shapes[mode], stream: benchStream(dir) })),
      port,
      env: env[mode],
      // Matches "tollgate: listening on ..." as well as "tollgate listening on ...".
      readyText: `listening on http://127.0.0.1:${port}`,
    });
  };
}

async function describeTrafficLog(dir: string): Promise<string> {
  const log = await tally(join(dir, TRAFFIC_LOG_DIR), '.log');
  const warning = log.lines === 0 ? ' -- WARNING: nothing was logged' : '';
  return `traffic log incl. warm-up: ${log.lines} lines, ${(log.bytes / MB).toFixed(1)} MB in ${log.files} file(s)${warning}`;
}

async function describePayloadRun(dir: string): Promise<string> {
  return `${await describeTrafficLog(dir)}; payload files: ${await countFiles(join(dir, PAYLOAD_DIR))}`;
}

/** The stream a run of the redis row writes to: one per run, deleted after it. */
function benchStream(dir: string): string {
  return `tollgate:bench:${process.pid}:${basename(dir)}`;
}

async function describeRedisRun(dir: string): Promise<string> {
  const client = await createClient({ url: 'redis://127.0.0.1:6379' }).connect();
  try {
    const entries = await client.xLen(benchStream(dir));
    await client.del(benchStream(dir));
    return `${entries} stream entries (deleted); ${await describeSpool(dir)}`;
  } finally {
    client.destroy();
  }
}

async function describeSpool(dir: string): Promise<string> {
  const spool = await tally(join(dir, SPOOL_DIR), '.spool');
  return `spool incl. warm-up: ${(spool.bytes / MB).toFixed(1)} MB in ${spool.files} file(s)`;
}

/** The rows of the benchmark, in the order they are run and printed. */
export function benchTargets(setup: TargetSetup): Target[] {
  const bareProxy = benchScript('bare proxy', 'bench/bare-proxy.ts', setup);
  const targets: Target[] = [
    {
      id: 'backend',
      name: 'demo back end (direct)',
      scenario: 'get',
      start: async () => ({ ...setup.backend, stop: async () => {} }),
    },
    { id: 'bare-get', name: 'bare undici proxy', scenario: 'get', start: bareProxy },
    { id: 'peer', name: 'Node peer (fastify + reply-from)', scenario: 'get', start: benchScript('node peer', 'bench/node-peer.ts', setup) },
    { id: 'tollgate-off', name: 'Tollgate, log off', scenario: 'get', baseline: 'bare-get', start: tollgate('log off', setup) },
    {
      id: 'tollgate-on',
      name: 'Tollgate, log on',
      scenario: 'get',
      baseline: 'bare-get',
      start: tollgate('log on', setup),
      countLogged,
      describeOutput: describeTrafficLog,
    },
    { id: 'tollgate-embedded', name: 'Tollgate, records to the embedded spool', scenario: 'get', baseline: 'tollgate-off', start: tollgate('embedded spool', setup), describeOutput: describeSpool },
    { id: 'tollgate-redis', name: 'Tollgate, records to Redis', scenario: 'get', baseline: 'tollgate-off', start: tollgate('redis stream', setup), describeOutput: describeRedisRun },
  ];
  const nginxBinary = setup.nginxBinary;
  if (nginxBinary !== undefined) {
    targets.push({
      id: 'nginx',
      name: 'nginx (keepalive, JSON access log)',
      scenario: 'get',
      start: async (dir) => {
        const port = await freePort();
        return startServer({ name: 'nginx', argv: setup.pinning.server(await nginxCommand(nginxBinary, dir, port, setup.backendPort)), port });
      },
      describeOutput: async (dir) => `access log incl. warm-up: ${(await tally(dir, NGINX_ACCESS_LOG)).lines} lines`,
    });
  }
  targets.push(
    { id: 'bare-post', name: 'bare undici proxy, 1 KB POST', scenario: 'post', start: bareProxy },
    {
      id: 'tollgate-payloads',
      name: 'Tollgate, payloads on, 1 KB POST',
      scenario: 'post',
      baseline: 'bare-post',
      start: tollgate('payloads on', setup),
      countLogged,
      describeOutput: describePayloadRun,
    },
    {
      id: 'tollgate-packed',
      name: 'Tollgate, payloads packed, 1 KB POST',
      scenario: 'post',
      baseline: 'bare-post',
      start: tollgate('payloads packed', setup),
      countLogged,
      describeOutput: describePayloadRun,
    },
  );
  return targets;
}

/** The row ids in BENCH_ONLY (comma-separated); undefined when it is unset or empty (all rows). */
export function parseOnly(text: string | undefined): TargetId[] | undefined {
  const ids = (text ?? '').split(',').map((id) => id.trim()).filter((id) => id !== '');
  if (ids.length === 0) return undefined;
  const unknown = ids.filter((id) => !(TARGET_IDS as readonly string[]).includes(id));
  if (unknown.length > 0) throw new Error(`BENCH_ONLY: unknown row id(s) ${unknown.join(', ')}; the ids are ${TARGET_IDS.join(', ')}`);
  return ids as TargetId[];
}

/** The targets with the given ids plus the baselines they are measured against, in run order. */
export function selectTargets(targets: Target[], ids: TargetId[] | undefined): Target[] {
  if (ids === undefined) return targets;
  const selected = new Set(ids);
  for (const target of targets) if (selected.has(target.id) && target.baseline !== undefined) selected.add(target.baseline);
  return targets.filter((target) => selected.has(target.id));
}
