import { collectDefaultMetrics, Counter, Gauge, Histogram, Registry } from 'prom-client';
import type { DeadLetterReason, SinkRunnerEvents } from './sink-runner.js';

export interface SinkCounts {
  written: number;
  retried: number;
  filtered: number;
  withdrawn: number;
  deadLettered: Partial<Record<DeadLetterReason, number>>;
}

/** What the gauges show, read when /metrics is asked for. */
export interface PumpGauges {
  buffer: { batches: number; records: number; oldestAgeMs: number };
  deadLetters: { sink: string; batches: number; records: number }[];
}

/** The pump's metrics, in a registry of its own (not prom-client's global one), so several pumps can live in one process (tests). */
export class PumpMetrics {
  readonly registry = new Registry();

  constructor() {
    // The process's own figures (memory, event loop lag, GC): a pump's memory must stay bounded whatever its sinks do.
    collectDefaultMetrics({ register: this.registry, prefix: 'tollgate_pump_' });
  }

  readonly #read = new Counter({ name: 'tollgate_pump_records_read_total', help: 'Records read from the buffer.', registers: [this.registry] });
  readonly #undecodable = new Counter({
    name: 'tollgate_pump_undecodable_batches_total',
    help: 'Buffer batches that could not be decoded, moved to the dead letter "undecodable".',
    registers: [this.registry],
  });
  readonly #written = sinkCounter(this.registry, 'written', 'Records the sink persisted.');
  readonly #retried = sinkCounter(this.registry, 'retried', 'Records of failed attempts that were tried again.');
  readonly #filtered = sinkCounter(this.registry, 'filtered', "Records the sink's filter left out.");
  readonly #withdrawn = sinkCounter(this.registry, 'withdrawn', 'Dead-lettered records that a timed-out attempt delivered after all, taken out of the dead letter.');
  readonly #deadLettered = new Counter({
    name: 'tollgate_pump_sink_records_dead_lettered_total',
    help: 'Records put in the dead letter of the sink, by reason.',
    labelNames: ['sink', 'reason'],
    registers: [this.registry],
  });
  readonly #batchSeconds = new Histogram({
    name: 'tollgate_pump_sink_batch_seconds',
    help: 'From a batch being formed to the sink having it, retries included.',
    labelNames: ['sink'],
    buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300],
    registers: [this.registry],
  });
  readonly #bufferBatches = new Gauge({ name: 'tollgate_pump_buffer_batches', help: 'Batches in the buffer not yet acknowledged.', registers: [this.registry] });
  readonly #bufferRecords = new Gauge({ name: 'tollgate_pump_buffer_records', help: 'Records in the buffer not yet acknowledged.', registers: [this.registry] });
  readonly #lag = new Gauge({ name: 'tollgate_pump_buffer_lag_seconds', help: 'Age of the oldest batch in the buffer.', registers: [this.registry] });
  readonly #deadLetterBatches = new Gauge({
    name: 'tollgate_pump_dead_letter_batches',
    help: 'Batches in the dead letter of the sink.',
    labelNames: ['sink'],
    registers: [this.registry],
  });
  readonly #deadLetterRecords = new Gauge({
    name: 'tollgate_pump_dead_letter_records',
    help: 'Records in the dead letter of the sink.',
    labelNames: ['sink'],
    registers: [this.registry],
  });

  recordsRead(records: number): void {
    this.#read.inc(records);
  }

  undecodableBatch(): void {
    this.#undecodable.inc();
  }

  /** The events of one sink's runner, counted under its name. */
  sink(sink: string): SinkRunnerEvents {
    const labels = { sink };
    this.#written.inc(labels, 0);
    this.#retried.inc(labels, 0);
    this.#filtered.inc(labels, 0);
    return {
      written: (records) => this.#written.inc(labels, records),
      retried: (records) => this.#retried.inc(labels, records),
      filtered: (records) => this.#filtered.inc(labels, records),
      withdrawn: (records) => this.#withdrawn.inc(labels, records),
      deadLettered: (reason, records) => this.#deadLettered.inc({ sink, reason }, records),
      batchSeconds: (seconds) => this.#batchSeconds.observe(labels, seconds),
    };
  }

  async sinkCounts(sink: string): Promise<SinkCounts> {
    const valueOf = async (counter: Counter): Promise<number> => (await counter.get()).values.find((value) => value.labels.sink === sink)?.value ?? 0;
    const deadLettered: SinkCounts['deadLettered'] = {};
    for (const value of (await this.#deadLettered.get()).values) {
      if (value.labels.sink === sink) deadLettered[value.labels.reason as DeadLetterReason] = value.value;
    }
    return {
      written: await valueOf(this.#written),
      retried: await valueOf(this.#retried),
      filtered: await valueOf(this.#filtered),
      withdrawn: await valueOf(this.#withdrawn),
      deadLettered,
    };
  }

  /** Sets the gauges, then renders every metric in the Prometheus text format. */
  async render(gauges: PumpGauges): Promise<string> {
    this.#bufferBatches.set(gauges.buffer.batches);
    this.#bufferRecords.set(gauges.buffer.records);
    this.#lag.set(gauges.buffer.oldestAgeMs / 1000);
    for (const { sink, batches, records } of gauges.deadLetters) {
      this.#deadLetterBatches.set({ sink }, batches);
      this.#deadLetterRecords.set({ sink }, records);
    }
    return this.registry.metrics();
  }
}

function sinkCounter(registry: Registry, what: string, help: string): Counter {
  return new Counter({ name: `tollgate_pump_sink_records_${what}_total`, help, labelNames: ['sink'], registers: [registry] });
}
