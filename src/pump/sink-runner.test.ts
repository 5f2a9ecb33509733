import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import type { AnalyticsRecord } from '../analytics/analytics-record.js';
import { decodeBatch } from '../analytics/codec.js';
import { analyticsRecords } from '../../test/support/analytics-records.js';
import { DeadLetter } from './dead-letter.js';
import { PumpMetrics } from './pump-metrics.js';
import { SinkRunner } from './sink-runner.js';
import { commonSinkOptions, RejectedError, RetryableError, type RejectedRecord, type Sink } from './sink.js';
import { z } from 'zod';

/**
 * A receiver whose answers the test scripts, one per call: the runner's own logic (what it does
 * with each kind of answer) is what these tests prove; the shared sink suite proves it against
 * real receivers.
 */
class ScriptedSink implements Sink {
  readonly writes: { at: number; ids: string[] }[] = [];
  readonly opens: number[] = [];
  readonly held: string[] = [];

  constructor(
    readonly answers: { open?: (() => Promise<void>)[]; write?: ((records: readonly AnalyticsRecord[]) => Promise<RejectedRecord[]>)[] } = {},
  ) {}

  async open(): Promise<void> {
    this.opens.push(Date.now());
    await this.answers.open?.shift()?.();
  }

  async write(records: readonly AnalyticsRecord[]): Promise<RejectedRecord[]> {
    this.writes.push({ at: Date.now(), ids: records.map((record) => record.id) });
    const answer = this.answers.write?.shift();
    const rejected = answer === undefined ? [] : await answer(records);
    const refused = new Set(rejected.map(({ record }) => record.id));
    this.held.push(...records.filter((record) => !refused.has(record.id)).map((record) => record.id));
    return rejected;
  }

  async close(): Promise<void> {}
}

let scratch = '';
const runners: SinkRunner[] = [];
const deadLetters: DeadLetter[] = [];
const notes: string[] = [];

beforeEach(async () => {
  scratch = await mkdtemp(join(tmpdir(), 'tollgate-sink-runner-'));
});

afterEach(async () => {
  for (const runner of runners.splice(0)) await runner.stop();
  for (const deadLetter of deadLetters.splice(0)) deadLetter.close();
  notes.length = 0;
  await rm(scratch, { recursive: true, force: true });
});

function run(sink: Sink, options: Record<string, unknown> = {}): { runner: SinkRunner; deadLetter: DeadLetter; metrics: PumpMetrics } {
  const parsed = z.strictObject(commonSinkOptions).parse({ batchSize: 100, maxDelayMs: 10, timeoutMs: 1_000, ...options });
  const deadLetter = new DeadLetter(scratch, 'scripted');
  const metrics = new PumpMetrics();
  const runner = new SinkRunner('scripted', sink, parsed, deadLetter, metrics.sink('scripted'), (note) => notes.push(note));
  runners.push(runner);
  deadLetters.push(deadLetter);
  return { runner, deadLetter, metrics };
}

const lettered = (deadLetter: DeadLetter): string[] => deadLetter.read(0, 1_000).flatMap((batch) => decodeBatch(batch.data).map((record) => record.id));

describe('the sink runner', () => {
  it('writes batches of batchSize, and a smaller one once maxDelayMs passed', async () => {
    const sink = new ScriptedSink();
    const { runner } = run(sink, { batchSize: 100, maxDelayMs: 200 });
    const records = analyticsRecords(250);
    const started = Date.now();
    await runner.deliver(records);
    expect(sink.writes.map((write) => write.ids.length)).toEqual([100, 100, 50]);
    expect(sink.writes[2]!.at - started).toBeGreaterThanOrEqual(190);
    expect(sink.held).toEqual(records.map((record) => record.id));
  });

  it('waits as long as a RetryableError says (Retry-After) before trying again', async () => {
    const sink = new ScriptedSink({ write: [() => Promise.reject(new RetryableError('429 Too Many Requests', 400))] });
    const { runner, metrics } = run(sink);
    const records = analyticsRecords(3);
    await runner.deliver(records);
    expect(sink.writes).toHaveLength(2);
    expect(sink.writes[1]!.at - sink.writes[0]!.at).toBeGreaterThanOrEqual(390);
    expect(sink.held).toEqual(records.map((record) => record.id));
    expect((await metrics.sinkCounts('scripted')).retried).toBe(3);
  });

  it('puts a batch the receiver refuses for good in the dead letter, without retrying it', async () => {
    const sink = new ScriptedSink({ write: [() => Promise.reject(new RejectedError('400 Bad Request'))] });
    const { runner, deadLetter, metrics } = run(sink);
    const records = analyticsRecords(4);
    await runner.deliver(records);
    expect(sink.writes).toHaveLength(1);
    expect(lettered(deadLetter)).toEqual(records.map((record) => record.id));
    expect((await metrics.sinkCounts('scripted')).deadLettered).toEqual({ rejected_batch: 4 });
    expect(notes.join('\n')).toContain('a batch of 4 records was refused (400 Bad Request)');
  });

  it('puts the records refused one by one in the dead letter and counts the others written', async () => {
    const sink = new ScriptedSink({ write: [async (records) => [{ record: records[1]!, reason: 'invalid' }]] });
    const { runner, deadLetter, metrics } = run(sink);
    const records = analyticsRecords(3);
    await runner.deliver(records);
    expect(lettered(deadLetter)).toEqual([records[1]!.id]);
    expect(sink.held).toEqual([records[0]!.id, records[2]!.id]);
    expect(await metrics.sinkCounts('scripted')).toMatchObject({ written: 2, deadLettered: { rejected_record: 1 } });
  });

  it('retries opening a receiver that is unreachable at start, saying so, then delivers', async () => {
    const refused = (): Promise<void> => Promise.reject(new Error('connect ECONNREFUSED 127.0.0.1:5432'));
    const sink = new ScriptedSink({ open: [refused, refused, refused] });
    const { runner } = run(sink);
    const records = analyticsRecords(5);
    await runner.deliver(records);
    expect(sink.opens.length).toBe(4);
    expect(sink.held).toEqual(records.map((record) => record.id));
    expect(notes.join('\n')).toMatch(/sink scripted: cannot open: connect ECONNREFUSED 127.0.0.1:5432; retrying/);
    expect(runner.status()).toEqual({ state: 'open', lastError: 'cannot open: connect ECONNREFUSED 127.0.0.1:5432' });
  });

  it('counts a write that answered after its timeout as delivered, rather than writing the records again', async () => {
    const slow = (): Promise<RejectedRecord[]> => new Promise((resolve) => setTimeout(() => resolve([]), 300));
    const tooMany = (): Promise<RejectedRecord[]> => Promise.reject(new RetryableError('busy', 2_000));
    const sink = new ScriptedSink({ write: [slow, tooMany] });
    const { runner, metrics } = run(sink, { timeoutMs: 100 });
    const records = analyticsRecords(2);
    const started = Date.now();
    await runner.deliver(records);
    expect(Date.now() - started).toBeLessThan(1_500);
    expect(sink.writes).toHaveLength(2);
    expect(sink.held).toEqual(records.map((record) => record.id));
    expect((await metrics.sinkCounts('scripted')).written).toBe(2);
  });

  it('gives up on a receiver failing longer than maxRetryTimeSec: the batch goes to the dead letter, and later batches go there without waiting', async () => {
    const down = (): Promise<RejectedRecord[]> => Promise.reject(new Error('connect ECONNREFUSED'));
    const sink = new ScriptedSink({ write: Array.from({ length: 100 }, () => down) });
    const { runner, deadLetter, metrics } = run(sink, { maxRetryTimeSec: 0.5 });
    const first = analyticsRecords(3);
    const started = Date.now();
    await runner.deliver(first);
    expect(Date.now() - started).toBeGreaterThanOrEqual(490);
    expect(runner.status().state).toBe('dead-lettering');
    const writes = sink.writes.length;
    const second = analyticsRecords(2);
    const again = Date.now();
    await runner.deliver(second);
    expect(Date.now() - again).toBeLessThan(300);
    expect(sink.writes.length).toBe(writes);
    expect(lettered(deadLetter)).toEqual([...first, ...second].map((record) => record.id));
    expect((await metrics.sinkCounts('scripted')).deadLettered).toEqual({ retry_time_exceeded: 5 });
    expect(notes.join('\n')).toContain('failing for more than 0.5 s (maxRetryTimeSec)');
  });

  it('keeps backing off while a receiver that never opens is past maxRetryTimeSec, and dead-letters without waiting', async () => {
    const refused = (): Promise<void> => Promise.reject(new Error('connect ECONNREFUSED'));
    const sink = new ScriptedSink({ open: Array.from({ length: 10_000 }, () => refused) });
    const { runner, deadLetter } = run(sink, { maxRetryTimeSec: 0.2 });
    const records = analyticsRecords(2);
    await runner.deliver(records);
    expect(runner.status().state).toBe('dead-lettering');
    expect(lettered(deadLetter)).toEqual(records.map((record) => record.id));
    const opensThen = sink.opens.length;
    await new Promise((resolve) => setTimeout(resolve, 1_000));
    // Full jitter doubles up to 30 s: a handful of attempts in a second, not a busy loop.
    expect(sink.opens.length - opensThen).toBeLessThan(10);
  });
});
