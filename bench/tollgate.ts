import { access, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { stringify } from 'yaml';

const TOLLGATE_BIN = 'bin/tollgate';
export const TRAFFIC_LOG_DIR = 'logs';
export const PAYLOAD_DIR = 'payloads';

export async function assertTollgateBuilt(): Promise<void> {
  try {
    await access(TOLLGATE_BIN);
  } catch {
    throw new Error(`${TOLLGATE_BIN} not found: the Tollgate CLI starts both the demo back end and the gateway`);
  }
}

export function demoBackendArgv(port: number): string[] {
  return [process.execPath, TOLLGATE_BIN, 'demo-backend', '--port', String(port), '--host', '127.0.0.1'];
}

/** Writes a gateway config into `dir`, with the traffic log and payloads under it, and returns Tollgate's argv. */
export async function gatewayArgv(dir: string, port: number, backendUrl: string): Promise<string[]> {
  const config = {
    gateway: { host: '127.0.0.1', port, group: 'bench', instance: 'bench-1' },
    apis: [{ id: 'demo', name: 'Demo', listenPath: '/', target: backendUrl, stripListenPath: false }],
    trafficLog: {
      output: 'file',
      directory: join(dir, TRAFFIC_LOG_DIR),
      payloads: { enabled: false, directory: join(dir, PAYLOAD_DIR) },
    },
  };
  const configPath = join(dir, 'tollgate.yaml');
  await writeFile(configPath, stringify(config));
  return [process.execPath, TOLLGATE_BIN, 'gateway', '--config', configPath];
}
