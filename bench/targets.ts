import { join } from 'node:path';
import { countFiles, tally } from './files.js';
import type { Scenario } from './load.js';
import { NGINX_ACCESS_LOG, nginxCommand } from './nginx.js';
import type { Pinning } from './pinning.js';
import { freePort, startServer, type RunningServer } from './processes.js';
import { gatewayArgv, PAYLOAD_DIR, TRAFFIC_LOG_DIR } from './tollgate.js';

export type TargetId =
  | 'backend'
  | 'bare-get'
  | 'peer'
  | 'tollgate-off'
  | 'tollgate-on'
  | 'nginx'
  | 'bare-post'
  | 'tollgate-payloads';

export interface Target {
  id: TargetId;
  name: string;
  scenario: Scenario;
  /** Starts the server under test, keeping any files it writes in `dir`. */
  start(dir: string): Promise<RunningServer>;
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

function tollgate(mode: 'log off' | 'log on' | 'payloads on', setup: TargetSetup): (dir: string) => Promise<RunningServer> {
  // Every mode sets both variables, so overrides in the caller's environment cannot leak in.
  const env: Record<typeof mode, NodeJS.ProcessEnv> = {
    'log off': { TOLLGATE_TRAFFIC_LOG_OUTPUT: 'none', TOLLGATE_TRAFFIC_LOG_PAYLOAD: 'false' },
    'log on': { TOLLGATE_TRAFFIC_LOG_OUTPUT: 'file', TOLLGATE_TRAFFIC_LOG_PAYLOAD: 'false' },
    'payloads on': { TOLLGATE_TRAFFIC_LOG_OUTPUT: 'file', TOLLGATE_TRAFFIC_LOG_PAYLOAD: 'true' },
  };
  return async (dir) => {
    const port = await freePort();
    return startServer({
      name: `Tollgate (${mode})`,
      argv: setup.pinning.server(await gatewayArgv(dir, port, setup.backend.url)),
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

/** The rows of the benchmark, in the order they are run and printed. */
export function benchTargets(setup: TargetSetup): Target[] {
  const targets: Target[] = [
    {
      id: 'backend',
      name: 'demo back end (direct)',
      scenario: 'get',
      start: async () => ({ ...setup.backend, stop: async () => {} }),
    },
    { id: 'bare-get', name: 'bare undici proxy', scenario: 'get', start: benchScript('bare proxy', 'bench/bare-proxy.ts', setup) },
    { id: 'peer', name: 'Node peer (fastify + reply-from)', scenario: 'get', start: benchScript('node peer', 'bench/node-peer.ts', setup) },
    { id: 'tollgate-off', name: 'Tollgate, log off', scenario: 'get', start: tollgate('log off', setup) },
    { id: 'tollgate-on', name: 'Tollgate, log on', scenario: 'get', start: tollgate('log on', setup), describeOutput: describeTrafficLog },
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
    { id: 'bare-post', name: 'bare undici proxy, 1 KB POST', scenario: 'post', start: benchScript('bare proxy', 'bench/bare-proxy.ts', setup) },
    {
      id: 'tollgate-payloads',
      name: 'Tollgate, payloads on, 1 KB POST',
      scenario: 'post',
      start: tollgate('payloads on', setup),
      describeOutput: async (dir) => `${await describeTrafficLog(dir)}; payload files: ${await countFiles(join(dir, PAYLOAD_DIR))}`,
    },
  );
  return targets;
}
