import { rm, writeFile } from 'node:fs/promises';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import type { AnalyticsRecord } from '../analytics/analytics-record.js';
import { encodeBatch } from '../analytics/codec.js';
import { Spool } from '../buffer/spool.js';
import { parseConfig } from '../config/load.js';
import { analyticsRecords, recordsInDirectory } from '../../test/support/analytics-records.js';
import { eventually, runCli, Workspace } from '../../test/support/gateway-process.js';
import { Pump } from './pump.js';

let workspace: Workspace;
let pumps: Pump[] = [];
const notes: string[] = [];

beforeEach(async () => {
  workspace = await Workspace.create();
});

afterEach(async () => {
  for (const pump of pumps) await pump.stop(0);
  pumps = [];
  notes.length = 0;
  await workspace.remove();
});

function configFor(sink: Record<string, unknown> = {}, pump: Record<string, unknown> = {}): Record<string, unknown> {
  return {
    analytics: { buffer: { type: 'embedded', directory: workspace.path('spool') } },
    pump: {
      deadLetterDirectory: workspace.path('dead-letter'),
      health: { host: '127.0.0.1', port: 0 },
      sinks: [{ type: 'file', name: 'records', directory: workspace.path('records'), batchSize: 200, maxDelayMs: 20, ...sink }],
      ...pump,
    },
  };
}

async function startPump(config: Record<string, unknown>): Promise<Pump> {
  const pump = await Pump.start(parseConfig(config), { notify: (note) => notes.push(note) });
  pumps.push(pump);
  return pump;
}

/** Writes batches into a spool as a gateway process does: one row per encoded batch. */
function spoolBatches(name: string, batches: number, perBatch: number, changes: Partial<AnalyticsRecord> = {}): AnalyticsRecord[] {
  const spool = new Spool(workspace.path('spool', name));
  const written: AnalyticsRecord[] = [];
  for (let i = 0; i < batches; i++) {
    const records = analyticsRecords(perBatch, changes);
    spool.append([{ data: encodeBatch(records), records: perBatch }]);
    written.push(...records);
  }
  spool.close();
  return written;
}

function spooled(name: string): number {
  const spool = new Spool(workspace.path('spool', name));
  try {
    return spool.totals().batches;
  } finally {
    spool.close();
  }
}

/** The ids each test expects the sink to hold. */
let expected = new Set<string>();

/** How the records held differ from `expected`. */
function count(held: AnalyticsRecord[]): { missing: number; duplicated: number; extra: number } {
  const seen = new Map<string, number>();
  for (const record of held) seen.set(record.id, (seen.get(record.id) ?? 0) + 1);
  return {
    missing: [...expected].filter((id) => !seen.has(id)).length,
    duplicated: [...seen.values()].filter((n) => n > 1).length,
    extra: [...seen.keys()].filter((id) => !expected.has(id)).length,
  };
}

async function getText(url: string): Promise<string> {
  const response = await fetch(url);
  expect(response.status).toBe(200);
  return response.text();
}

function metric(text: string, name: string): number {
  const line = text.split('\n').find((candidate) => candidate.startsWith(`${name} `) || candidate.startsWith(`${name}{`));
  if (line === undefined) throw new Error(`no metric ${name} in:\n${text}`);
  return Number(line.slice(line.lastIndexOf(' ') + 1));
}

describe('the pump', () => {
  it('delivers every record of every spool to the sink once, and empties the spools', async () => {
    const written = [...spoolBatches('gw_1.spool', 40, 50), ...spoolBatches('gw_2.spool', 25, 33)];
    expected = new Set(written.map((record) => record.id));
    await startPump(configFor());
    await eventually(async () => (spooled('gw_1.spool') + spooled('gw_2.spool') === 0 ? true : undefined), 20_000, 'the spools to empty');
    expect(count(await recordsInDirectory(workspace.path('records')))).toEqual({ missing: 0, duplicated: 0, extra: 0 });
  });

  it('serves /health and /metrics: records read and written, buffer depth and lag, batch latency', async () => {
    const written = spoolBatches('gw_1.spool', 10, 20);
    const failed = spoolBatches('gw_1.spool', 1, 5, { status: 502 });
    const pump = await startPump(configFor({ statusCodes: [200] }));
    await eventually(async () => (spooled('gw_1.spool') === 0 ? true : undefined), 20_000, 'the spool to empty');
    const health = JSON.parse(await getText(`${pump.healthUrl}/health`)) as Record<string, any>;
    expect(health).toMatchObject({
      status: 'ok',
      buffer: { batches: 0, records: 0, lagSeconds: 0 },
      sinks: { records: { state: 'open', lastError: null, written: written.length, retried: 0, filtered: failed.length, deadLetter: { batches: 0, records: 0 } } },
    });
    const metrics = await getText(`${pump.healthUrl}/metrics`);
    expect(metric(metrics, 'tollgate_pump_records_read_total')).toBe(written.length + failed.length);
    expect(metric(metrics, 'tollgate_pump_sink_records_filtered_total')).toBe(failed.length);
    expect(metric(metrics, 'tollgate_pump_sink_records_written_total')).toBe(written.length);
    expect(metric(metrics, 'tollgate_pump_buffer_batches')).toBe(0);
    expect(metric(metrics, 'tollgate_pump_buffer_lag_seconds')).toBe(0);
    expect(metric(metrics, 'tollgate_pump_dead_letter_records')).toBe(0);
    expect(metrics).toMatch(/tollgate_pump_sink_batch_seconds_count\{sink="records"\} [1-9]/);
    expect((await fetch(`${pump.healthUrl}/nothing`)).status).toBe(404);
  });

  it('holds a dead sink no longer than maxRetryTimeSec: its batches go to the dead letter, counted, the buffer is acknowledged, and replay delivers them once', async () => {
    const records = workspace.path('records');
    const config = configFor({ maxRetryTimeSec: 1, timeoutMs: 300 });
    // The tests run as root, whom no permission stops: a regular file where the directory should be stops everyone.
    await writeFile(records, 'not a directory');
    const written = spoolBatches('gw_1.spool', 30, 20);
    expected = new Set(written.map((record) => record.id));
    const pump = await startPump(config);
    await eventually(async () => (spooled('gw_1.spool') === 0 ? true : undefined), 20_000, 'the spool to be acknowledged');
    const metrics = await getText(`${pump.healthUrl}/metrics`);
    expect(metric(metrics, 'tollgate_pump_sink_records_dead_lettered_total')).toBe(written.length);
    expect(metrics).toContain('reason="retry_time_exceeded"');
    expect(metric(metrics, 'tollgate_pump_dead_letter_records')).toBe(written.length);
    const health = JSON.parse(await getText(`${pump.healthUrl}/health`)) as Record<string, any>;
    expect(health.status).toBe('degraded');
    expect(health.sinks.records.state).toBe('dead-lettering');
    expect(health.sinks.records.lastError).toMatch(/no answer within 300 ms|earlier lines still wait/);
    await pump.stop();
    pumps = [];

    await rm(records);
    const configFile = await workspace.writeConfig(config);
    const replay = await runCli(['replay', '--sink', 'records', '--config', configFile]);
    expect(replay.stderr).toBe('');
    expect(replay.code).toBe(0);
    expect(replay.stdout).toMatch(/delivered dead-letter batch \d+: \d+ records/);
    expect(replay.stdout).toContain(`(${written.length} records) to sink records: ${written.length} written, 0 filtered out, 0 back in the dead letter`);
    expect(count(await recordsInDirectory(records))).toEqual({ missing: 0, duplicated: 0, extra: 0 });

    const again = await runCli(['replay', '--sink', 'records', '--config', configFile]);
    expect(again.stdout).toContain('0 batches (0 records) to replay');
    expect(count(await recordsInDirectory(records))).toEqual({ missing: 0, duplicated: 0, extra: 0 });
  });

  it('holds no more than maxBatchesInFlight source batches while its sink is stuck', async () => {
    await writeFile(workspace.path('records'), 'not a directory');
    spoolBatches('gw_1.spool', 50, 10);
    const pump = await startPump(configFor({ timeoutMs: 300 }, { maxBatchesInFlight: 3 }));
    const read = async (): Promise<number> => metric(await getText(`${pump.healthUrl}/metrics`), 'tollgate_pump_records_read_total');
    // By the time the sink retries, a pump that ignored the bound would have read more: reads poll every 25 ms.
    await eventually(async () => (await getText(`${pump.healthUrl}/health`)).includes('"retrying"') || undefined, 10_000, 'the sink to be retrying');
    expect(await read()).toBe(30);
    expect(spooled('gw_1.spool')).toBe(50);
    await rm(workspace.path('records'));
  });

  it('stops gracefully: batches in flight are delivered and acknowledged, the rest stays in the buffer', async () => {
    const written = spoolBatches('gw_1.spool', 50, 40);
    expected = new Set(written.map((record) => record.id));
    const pump = await startPump(configFor({}, { maxBatchesInFlight: 4 }));
    await eventually(async () => ((await recordsInDirectory(workspace.path('records'))).length > 0 ? true : undefined), 10_000, 'records to arrive');
    const { unacknowledged } = await pump.stop();
    pumps = [];
    expect(unacknowledged).toBe(0);
    const delivered = await recordsInDirectory(workspace.path('records'));
    const left = spooled('gw_1.spool');
    expect(delivered.length + left * 40).toBe(written.length);
    expect(count(delivered).duplicated).toBe(0);
  });
});
