import type pg from 'pg';
import { afterEach } from 'vitest';
import type { Workspace } from './gateway-process.js';
import { PumpProcess } from './pump-process.js';

/** One config for a gateway and its pumps: the petstore API on `backendUrl`, records through `buffer` into PostgreSQL's table `records`. */
export function pipelineConfig(
  workspace: Workspace,
  backendUrl: string,
  { buffer, databaseUrl, pump = {}, sink = {} }: { buffer: Record<string, unknown>; databaseUrl: string; pump?: Record<string, unknown>; sink?: Record<string, unknown> },
): Record<string, any> {
  return {
    gateway: { host: '127.0.0.1', port: 0, group: 'e2e', instance: 'gw' },
    apis: [{ id: 'petstore', name: 'Petstore', listenPath: '/petstore/', target: backendUrl, stripListenPath: true }],
    trafficLog: { output: 'none' },
    analytics: { buffer: { directory: workspace.path('spool'), fsyncIntervalMs: 20, ...buffer } },
    pump: {
      deadLetterDirectory: workspace.path('dead-letter'),
      ...pump,
      sinks: [{ type: 'postgres', url: databaseUrl, table: 'records', batchSize: 50, maxDelayMs: 100, ...sink }],
    },
  };
}

/** Pump processes of one test, SIGKILLed after it if still running. */
export function usePumps(): { start(configFile: string): PumpProcess } {
  let started: PumpProcess[] = [];
  afterEach(async () => {
    await Promise.all(started.map((pump) => pump.kill()));
    started = [];
  });
  return {
    start(configFile) {
      const pump = PumpProcess.start(configFile);
      started.push(pump);
      return pump;
    },
  };
}

/** Rows in `records` (0 while the pump has not made the table yet). */
export async function recordRows(client: pg.Client): Promise<number> {
  const result = await client.query<{ n: string }>('SELECT count(*) AS n FROM records').catch(() => ({ rows: [{ n: '0' }] }));
  return Number(result.rows[0]?.n ?? 0);
}

/** The ids in `records`. */
export async function recordIds(client: pg.Client): Promise<string[]> {
  return (await client.query<{ id: string }>('SELECT id FROM records')).rows.map((row) => row.id);
}
