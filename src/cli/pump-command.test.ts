import { spawn, type ChildProcess } from 'node:child_process';
import { rm, writeFile } from 'node:fs/promises';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import type { AnalyticsRecord } from '../analytics/analytics-record.js';
import { encodeBatch } from '../analytics/codec.js';
import { Spool } from '../buffer/spool.js';
import { analyticsRecords, recordsInDirectory } from '../../test/support/analytics-records.js';
import { BIN, eventually, problemLines, runCli, Workspace } from '../../test/support/gateway-process.js';

let workspace: Workspace;
const children: ChildProcess[] = [];

beforeEach(async () => {
  workspace = await Workspace.create();
});

afterEach(async () => {
  for (const child of children.splice(0)) if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
  await workspace.remove();
});

interface PumpProcess {
  child: ChildProcess;
  stderr: () => string;
  stdout: () => string;
  exited: Promise<number | null>;
}

/** `tollgate pump` as its own process; resolves once it says it started. */
function startPump(configFile: string): Promise<PumpProcess> {
  const child = spawn(process.execPath, [BIN, 'pump', '--config', configFile], { stdio: ['ignore', 'pipe', 'pipe'] });
  children.push(child);
  let stderr = '';
  let stdout = '';
  child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
  child.stdout.on('data', (chunk: Buffer) => (stdout += chunk.toString()));
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  const pump = { child, stderr: () => stderr, stdout: () => stdout, exited };
  return Promise.race([
    eventually(async () => (stderr.includes('started:') ? pump : undefined), 15_000, 'the pump to start'),
    exited.then((code) => Promise.reject(new Error(`the pump exited with code ${code} before starting:\n${stderr}`))),
  ]);
}

function config(changes: Record<string, unknown> = {}): Record<string, unknown> {
  return {
    analytics: { buffer: { type: 'embedded', directory: workspace.path('spool') } },
    pump: {
      deadLetterDirectory: workspace.path('dead-letter'),
      maxBatchesInFlight: 4,
      sinks: [{ type: 'file', directory: workspace.path('records'), batchSize: 100, maxDelayMs: 20 }],
    },
    ...changes,
  };
}

function spoolBatches(batches: number, perBatch: number): AnalyticsRecord[] {
  const spool = new Spool(workspace.path('spool', 'gw_1.spool'));
  const written: AnalyticsRecord[] = [];
  for (let i = 0; i < batches; i++) {
    const records = analyticsRecords(perBatch);
    spool.append([{ data: encodeBatch(records), records: perBatch }]);
    written.push(...records);
  }
  spool.close();
  return written;
}

function spooledBatches(): number {
  const spool = new Spool(workspace.path('spool', 'gw_1.spool'));
  try {
    return spool.totals().batches;
  } finally {
    spool.close();
  }
}

describe('tollgate pump', () => {
  it('SIGKILLed mid-stream and restarted, delivers every record at least once (the file sink may repeat what was in flight)', async () => {
    const written = spoolBatches(400, 100);
    // Sink batches smaller than the source's: a source batch is then often half written when the kill comes.
    const configFile = await workspace.writeConfig(
      config({ pump: { deadLetterDirectory: workspace.path('dead-letter'), maxBatchesInFlight: 4, sinks: [{ type: 'file', directory: workspace.path('records'), batchSize: 30 }] } }),
    );
    const first = await startPump(configFile);
    const torn: string[] = [];
    const delivered = (): Promise<AnalyticsRecord[]> => recordsInDirectory(workspace.path('records'), (line) => torn.push(line));
    await eventually(async () => ((await delivered()).length >= 2_000 ? true : undefined), 20_000, 'records to arrive');
    first.child.kill('SIGKILL');
    await first.exited;
    const leftAfterKill = spooledBatches();
    expect(leftAfterKill, 'the pump was killed mid-stream').toBeGreaterThan(0);

    const second = await startPump(configFile);
    await eventually(async () => (spooledBatches() === 0 ? true : undefined), 30_000, 'the spool to empty');
    second.child.kill('SIGTERM');
    expect(await second.exited).toBe(0);

    const held = new Map<string, number>();
    torn.length = 0;
    for (const record of await delivered()) held.set(record.id, (held.get(record.id) ?? 0) + 1);
    const missing = written.filter((record) => !held.has(record.id)).length;
    const duplicated = [...held.values()].filter((count) => count > 1).length;
    expect(missing).toBe(0);
    // At most what the killed pump had in flight (4 source batches of 100) comes twice.
    expect(duplicated).toBeLessThanOrEqual(4 * 100);
    // A line the kill cut in two is ended when the file is opened again; its record comes again whole.
    expect(torn.length).toBeLessThanOrEqual(1);
    console.log(`SIGKILL mid-stream: ${written.length} records, ${leftAfterKill} batches left at the kill, ${duplicated} delivered twice, ${torn.length} torn line`);
  });

  it('writes each record once as a JSON line on standard output with a stdout sink', async () => {
    const written = spoolBatches(20, 25);
    const stdoutSink = { type: 'stdout', batchSize: 50, maxDelayMs: 20 };
    const pump = await startPump(await workspace.writeConfig(config({ pump: { deadLetterDirectory: workspace.path('dead-letter'), sinks: [stdoutSink] } })));
    await eventually(async () => (spooledBatches() === 0 ? true : undefined), 10_000, 'the spool to empty');
    pump.child.kill('SIGTERM');
    expect(await pump.exited).toBe(0);
    const lines = pump.stdout().split('\n');
    expect(lines.pop()).toBe('');
    const ids = lines.map((line) => (JSON.parse(line) as AnalyticsRecord).id);
    expect(ids.length).toBe(written.length);
    expect(new Set(ids)).toEqual(new Set(written.map((record) => record.id)));
  });

  it('stops on SIGTERM, saying so, with exit code 0', async () => {
    spoolBatches(5, 10);
    const pump = await startPump(await workspace.writeConfig(config()));
    await eventually(async () => (spooledBatches() === 0 ? true : undefined), 10_000, 'the spool to empty');
    pump.child.kill('SIGTERM');
    expect(await pump.exited).toBe(0);
    expect(pump.stderr()).toMatch(/stopping: delivering the batches in flight\n.*stopped\n/);
  });

  it('starts while its sink cannot write, saying so, and delivers once the sink can', async () => {
    await writeFile(workspace.path('records'), 'not a directory');
    const written = spoolBatches(3, 10);
    const pump = await startPump(await workspace.writeConfig(config()));
    await eventually(async () => (/ENOTDIR|EEXIST/.test(pump.stderr()) ? true : undefined), 10_000, 'the pump to say the sink cannot write');
    await rm(workspace.path('records'));
    await eventually(async () => ((await recordsInDirectory(workspace.path('records'))).length === written.length ? true : undefined), 20_000, 'every record');
    pump.child.kill('SIGTERM');
    expect(await pump.exited).toBe(0);
  });

  it('refuses a config whose sink type is unknown, or whose buffer is none, naming the key', async () => {
    const unknownType = await runCli(['pump', '--config', await workspace.writeConfig(config({ pump: { sinks: [{ type: 'kafka' }] } }), 'a.yaml')]);
    expect(unknownType.code).toBe(2);
    const [problem, ...others] = problemLines(unknownType.stderr);
    expect(others).toEqual([]);
    expect(problem).toMatch(/^pump\.sinks\.0\.type: expected one of "file"\|"stdout"(\|"[a-z-]+")*, found "kafka"$/);

    const noBuffer = await runCli(['pump', '--config', await workspace.writeConfig(config({ analytics: {} }), 'b.yaml')]);
    expect(noBuffer.code).toBe(2);
    expect(problemLines(noBuffer.stderr)).toEqual(['analytics.buffer.type: expected embedded or redis for the pump, found none']);

    const badOption = await runCli(['pump', '--config', await workspace.writeConfig(config({ pump: { sinks: [{ type: 'file', batchSize: 0 }] } }), 'c.yaml')]);
    expect(badOption.code).toBe(2);
    expect(problemLines(badOption.stderr)).toEqual(['pump.sinks.0.batchSize: expected number to be >0, found 0']);
  });

  it('replay names the known sinks when asked for one that is not configured', async () => {
    const result = await runCli(['replay', '--sink', 'warehouse', '--config', await workspace.writeConfig(config())]);
    expect(result.code).toBe(1);
    expect(result.stderr).toBe('tollgate: --sink: expected one of file, found "warehouse"\n');
  });
});
