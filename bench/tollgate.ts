import { access, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { stringify } from 'yaml';
import { countMarkers } from './files.js';
import type { Pinning } from './pinning.js';
import { freePort, startServer, type RunningServer } from './processes.js';

export const TOLLGATE_BIN = 'bin/tollgate';
export const TRAFFIC_LOG_DIR = 'logs';
export const PAYLOAD_DIR = 'payloads';

export async function assertTollgateBuilt(): Promise<void> {
  try {
    await access(TOLLGATE_BIN);
  } catch {
    throw new Error(`${TOLLGATE_BIN} not found: the Tollgate CLI starts both the demo back end and the gateway`);
  }
}

function demoBackendArgv(port: number): string[] {
  return [process.execPath, TOLLGATE_BIN, 'demo-backend', '--port', String(port), '--host', '127.0.0.1'];
}

/** The demo back end on a free port, on the servers' core, for a whole harness run. */
export async function startDemoBackend(pinning: Pinning): Promise<{ backend: RunningServer; backendPort: number }> {
  const backendPort = await freePort();
  const backend = await startServer({
    name: 'demo back end',
    argv: pinning.server(demoBackendArgv(backendPort)),
    port: backendPort,
    readyText: `demo back end listening on http://127.0.0.1:${backendPort}`,
  });
  return { backend, backendPort };
}

export const SPOOL_DIR = 'spool';

export interface GatewayShape {
  /** How payload files are laid out; 'packed' appends bodies to size-rolled files. Unset: the gateway's default. */
  payloadLayout?: 'packed';
  /** Where analytics records go (`analytics.buffer.type`); unset: nowhere. */
  buffer?: 'embedded' | 'redis';
  /** With the redis buffer: the stream (the caller deletes it); ignored otherwise. */
  stream?: string;
}

/** Writes a gateway config into `dir`, with the traffic log, payloads and spool under it, and returns Tollgate's argv. */
export async function gatewayArgv(dir: string, port: number, backendUrl: string, { payloadLayout, buffer, stream }: GatewayShape = {}): Promise<string[]> {
  const config = {
    gateway: { host: '127.0.0.1', port, group: 'bench', instance: 'bench-1' },
    apis: [{ id: 'demo', name: 'Demo', listenPath: '/', target: backendUrl, stripListenPath: false }],
    trafficLog: {
      output: 'file',
      directory: join(dir, TRAFFIC_LOG_DIR),
      // Far above what a run writes: the quota must not delete log files the backlog count reads.
      maxDiskSpaceMb: 1_000_000,
      payloads: {
        enabled: false,
        directory: join(dir, PAYLOAD_DIR),
        ...(payloadLayout === undefined ? {} : { layout: payloadLayout }),
      },
    },
    analytics: { buffer: { type: buffer ?? 'none', directory: join(dir, SPOOL_DIR), ...(stream === undefined ? {} : { stream }) } },
  };
  const configPath = join(dir, 'tollgate.yaml');
  await writeFile(configPath, stringify(config));
  return [process.execPath, TOLLGATE_BIN, 'gateway', '--config', configPath];
}

export interface Logged {
  /**
   * Answered transactions in the traffic log: summary lines, less those whose client went away
   * before its answer (the requests in flight when a load run stops, which no tool counts).
   */
  answered: number;
  /** Of the bodies that passed, the share stored (linked) rather than given up (`...PayloadNotStored`); undefined when none was either. */
  bodiesStored?: number;
}

/** What the traffic log under `dir` holds so far. */
export async function countLogged(dir: string): Promise<Logged> {
  const [summaries, abandoned, receivedLinks, sentLinks, receivedLost, sentLost] = (await countMarkers(join(dir, TRAFFIC_LOG_DIR), '.log', [
    '"transactionSummary":',
    '"failureReason":"client-aborted-',
    '"recvPayload":"file:',
    '"sentPayload":"file:',
    '"recvPayloadNotStored":"',
    '"sentPayloadNotStored":"',
  ])) as [number, number, number, number, number, number];
  const stored = receivedLinks + sentLinks;
  const lost = receivedLost + sentLost;
  return { answered: summaries - abandoned, ...(stored + lost > 0 ? { bodiesStored: stored / (stored + lost) } : {}) };
}
