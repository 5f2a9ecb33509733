import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import type { AnalyticsRecord } from '../../analytics/analytics-record.js';
import { decodeBatch } from '../../analytics/codec.js';
import { analyticsRecords } from '../../../test/support/analytics-records.js';
import { eventually } from '../../../test/support/gateway-process.js';
import { DeadLetter } from '../dead-letter.js';
import { PumpMetrics } from '../pump-metrics.js';
import { replayDeadLetter } from '../replay.js';
import { SinkRunner, type SinkState } from '../sink-runner.js';
import { createSink, sinkName, type SinkConfig } from './create-sink.js';
import { sinkConfigSchema } from './registry.js';

/** What a sink's test file tells the shared suite about its receiver (a real one: a server, a directory). */
export interface SinkContractSubject {
  /** Names the suite, e.g. `postgres`. */
  name: string;
  /**
   * The sink's entry as in `pump.sinks` (its type and own options), made fresh for each case (its own
   * table, its own directory). The suite sets the batching and retry options itself.
   */
  config(): Record<string, unknown> | Promise<Record<string, unknown>>;
  /** What the receiver holds of these records: their ids or the records, one entry per copy held (a duplicate shows twice). */
  readBack(ids: readonly string[]): Promise<readonly (string | { id: string })[]>;
  /** Makes the receiver unreachable (`cut`), then reachable again (`restore`): the retry and dead-letter cases need it. */
  outage?: { cut(): Promise<void>; restore(): Promise<void> };
  /** A record the receiver refuses for good (fresh id each call): the rejected case needs it. */
  rejectable?: () => AnalyticsRecord;
}

/** Batching and retries quick enough for tests; a case may change them. */
const QUICK = { batchSize: 40, maxDelayMs: 20, timeoutMs: 2_000, maxRetryTimeSec: 60 };

interface Harness {
  runner: SinkRunner;
  deadLetter: DeadLetter;
  metrics: PumpMetrics;
  name: string;
}

/**
 * The contract every sink keeps, proved through the real sink, the shared sink runner and a real
 * dead-letter spool: every record delivered once; a receiver that is down is retried and each
 * record delivered once when it is back; a receiver down longer than `maxRetryTimeSec` sends the
 * batches to the dead letter, and a replay delivers them once; a refused record goes to the dead
 * letter. Call it from the sink's test file.
 */
export function describeSinkContract(subject: SinkContractSubject): void {
  describe(`${subject.name} sink keeps the sink contract`, () => {
    let scratch = '';
    let harnesses: Harness[] = [];
    /** The case's own receiver: one config per case, shared by its runners (the replay's too). */
    let caseConfig: Record<string, unknown> | undefined;
    const notes: string[] = [];

    beforeEach(async () => {
      scratch = await mkdtemp(join(tmpdir(), 'tollgate-sink-contract-'));
    });

    afterEach(async () => {
      await subject.outage?.restore();
      for (const { runner, deadLetter } of harnesses) {
        await runner.stop();
        deadLetter.close();
      }
      harnesses = [];
      caseConfig = undefined;
      notes.length = 0;
      await rm(scratch, { recursive: true, force: true });
    });

    async function start(changes: Record<string, unknown> = {}, deadLetter?: DeadLetter): Promise<Harness> {
      const config = sinkConfigSchema.parse({ ...(caseConfig ??= await subject.config()), ...QUICK, ...changes }) as SinkConfig;
      const name = sinkName(config);
      const notify = (message: string): void => {
        notes.push(message);
        if (process.env.SINK_SUITE_DEBUG) console.log(message);
      };
      const metrics = new PumpMetrics();
      const letter = deadLetter ?? new DeadLetter(join(scratch, 'dead-letter'), name);
      const runner = new SinkRunner(name, createSink(config, notify), config, letter, metrics.sink(name), notify);
      const harness = { runner, deadLetter: letter, metrics, name };
      harnesses.push(harness);
      return harness;
    }

    async function copiesHeld(records: readonly AnalyticsRecord[]): Promise<Map<string, number>> {
      const ids = records.map((record) => record.id);
      const wanted = new Set(ids);
      const copies = new Map<string, number>();
      for (const held of await subject.readBack(ids)) {
        const id = typeof held === 'string' ? held : held.id;
        if (wanted.has(id)) copies.set(id, (copies.get(id) ?? 0) + 1);
      }
      return copies;
    }

    async function expectEachOnce(records: readonly AnalyticsRecord[]): Promise<void> {
      const copies = await copiesHeld(records);
      const missing = records.filter((record) => !copies.has(record.id)).length;
      const duplicated = [...copies.values()].filter((count) => count > 1).length;
      expect({ missing, duplicated, held: copies.size }).toEqual({ missing: 0, duplicated: 0, held: records.length });
    }

    function deadLettered(deadLetter: DeadLetter): AnalyticsRecord[] {
      return deadLetter.read(0, 1_000_000).flatMap((batch) => decodeBatch(batch.data));
    }

    /** Delivers batches one after the other until the runner is in `state` (an outage may take a moment to show); does not wait for the last ones. */
    async function deliverUntil(runner: SinkRunner, state: SinkState): Promise<{ records: AnalyticsRecord[]; deliveries: Promise<void>[] }> {
      const records: AnalyticsRecord[] = [];
      const deliveries: Promise<void>[] = [];
      await eventually(
        async () => {
          const batch = analyticsRecords(25);
          records.push(...batch);
          deliveries.push(runner.deliver(batch));
          await Promise.race([deliveries.at(-1), eventually(async () => runner.status().state === state || undefined, 1_000).catch(() => undefined)]);
          return runner.status().state === state || undefined;
        },
        20_000,
        `the runner to be ${state}`,
      );
      return { records, deliveries };
    }

    it('delivers every record once, across batches of the source and of the sink', async () => {
      const { runner, deadLetter, metrics, name } = await start();
      const batches = [analyticsRecords(1), analyticsRecords(95), analyticsRecords(40), analyticsRecords(7)];
      await Promise.all(batches.map((batch) => runner.deliver(batch)));
      const records = batches.flat();
      await expectEachOnce(records);
      expect(deadLetter.totals().records).toBe(0);
      expect((await metrics.sinkCounts(name)).written).toBe(records.length);
    });

    it.runIf(subject.outage !== undefined)('retries while the receiver is down and delivers each record once when it is back', async () => {
      const outage = subject.outage as NonNullable<SinkContractSubject['outage']>;
      const { runner, deadLetter, metrics, name } = await start();
      const before = analyticsRecords(30);
      await runner.deliver(before);
      await outage.cut();
      const during = await deliverUntil(runner, 'retrying');
      await outage.restore();
      await Promise.all(during.deliveries);
      await expectEachOnce([...before, ...during.records]);
      expect(deadLetter.totals().records).toBe(0);
      expect((await metrics.sinkCounts(name)).retried).toBeGreaterThan(0);
    });

    it.runIf(subject.outage !== undefined)(
      'sends the batches of a receiver down longer than maxRetryTimeSec to the dead letter, and a replay delivers them once',
      async () => {
        const outage = subject.outage as NonNullable<SinkContractSubject['outage']>;
        const first = await start({ maxRetryTimeSec: 1, timeoutMs: 500 });
        await first.runner.deliver(analyticsRecords(1));
        await outage.cut();
        const during = await deliverUntil(first.runner, 'dead-lettering');
        await Promise.all(during.deliveries);
        const lettered = (await first.metrics.sinkCounts(first.name)).deadLettered.retry_time_exceeded ?? 0;
        expect(lettered).toBeGreaterThan(0);
        expect(deadLettered(first.deadLetter).length).toBe(lettered);
        await outage.restore();
        await first.runner.stop();
        // A write that timed out while the receiver was down may land once it is back: its batch then leaves the dead letter.
        const replayer = await start({}, first.deadLetter);
        await replayDeadLetter(first.deadLetter, replayer.runner, 4, () => undefined);
        expect(first.deadLetter.totals()).toEqual({ batches: 0, records: 0, bytes: 0 });
        await expectEachOnce(during.records);
      },
    );

    it.runIf(subject.rejectable !== undefined)('puts a record the receiver refuses in the dead letter and delivers or dead-letters every other once', async () => {
      const rejectable = subject.rejectable as () => AnalyticsRecord;
      const { runner, deadLetter } = await start();
      const refused = rejectable();
      const records = [...analyticsRecords(10), refused, ...analyticsRecords(10)];
      await runner.deliver(records);
      const lettered = deadLettered(deadLetter);
      const held = await copiesHeld(records);
      expect(lettered.map((record) => record.id)).toContain(refused.id);
      expect(held.has(refused.id)).toBe(false);
      for (const record of records) {
        const copies = (held.get(record.id) ?? 0) + lettered.filter((letter) => letter.id === record.id).length;
        expect(copies, `copies of ${record.id} delivered or dead-lettered`).toBe(1);
      }
    });
  });
}
