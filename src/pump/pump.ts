import { resolve } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { Registry } from 'prom-client';
import { ConfigError } from '../config/load.js';
import type { Config } from '../config/schema.js';
import { DeadLetter, UNDECODABLE } from './dead-letter.js';
import { HealthServer, type PumpHealth } from './health.js';
import { PumpMetrics } from './pump-metrics.js';
import { SinkRunner } from './sink-runner.js';
import { createSink, sinkName, type SinkConfig } from './sinks/create-sink.js';
import { openSource } from './sources/open-source.js';
import type { BatchSource, SourceBatch } from './source.js';

/** How long one read waits for batches before the loop looks again (at stop, at most this late). */
const READ_WAIT_MS = 500;
/** At stop, how long batches in flight may take to be delivered; what is not stays in the buffer. */
export const STOP_WAIT_MS = 10_000;

export interface PumpOptions {
  notify: (message: string) => void;
  /** Names the configuration in errors. */
  configSource?: string;
}

interface PumpSink {
  name: string;
  runner: SinkRunner;
  deadLetter: DeadLetter;
  healthMetrics: Registry | undefined;
}

/**
 * Reads batches from the buffer (at most `pump.maxBatchesInFlight` at a time), gives each to every
 * sink's runner, and acknowledges it once every runner has it written or dead-lettered.
 */
export class Pump {
  readonly #inFlight = new Set<Promise<void>>();
  #stopping = false;
  #signalStop!: () => void;
  readonly #stopSignal = new Promise<void>((resolve) => (this.#signalStop = resolve));
  #loop: Promise<void> = Promise.resolve();
  #health: HealthServer | null = null;

  private constructor(
    readonly config: Config,
    readonly source: BatchSource,
    readonly sinks: PumpSink[],
    readonly undecodable: DeadLetter,
    readonly metrics: PumpMetrics,
    readonly notify: (message: string) => void,
  ) {}

  static async start(config: Config, options: PumpOptions): Promise<Pump> {
    const configSource = options.configSource ?? 'config';
    checkPumpConfig(config, configSource);
    const { notify } = options;
    const deadLetters = resolve(config.pump.deadLetterDirectory);
    const metrics = new PumpMetrics();
    const undecodable = new DeadLetter(deadLetters, UNDECODABLE);
    const source = openSource(config, { undecodable, onUndecodable: () => metrics.undecodableBatch(), notify, configSource });
    const sinks = (config.pump.sinks as SinkConfig[]).map((sinkConfig): PumpSink => {
      const name = sinkName(sinkConfig);
      const deadLetter = new DeadLetter(deadLetters, name);
      const sink = createSink(sinkConfig, notify);
      const runner = new SinkRunner(name, sink, sinkConfig, deadLetter, metrics.sink(name), notify);
      return { name, runner, deadLetter, healthMetrics: sink.healthMetrics };
    });
    const pump = new Pump(config, source, sinks, undecodable, metrics, notify);
    try {
      checkHealthMetrics(config, sinks, metrics, configSource);
    } catch (error) {
      await pump.stop(0);
      throw error;
    }
    const { health } = config.pump;
    if (health !== undefined) {
      try {
        pump.#health = await HealthServer.start(
          health.host,
          health.port,
          { health: () => pump.health(), metrics: () => pump.renderMetrics(), metricsContentType: metrics.registry.contentType },
          notify,
        );
      } catch (error) {
        await pump.stop(0);
        throw new Error(`pump.health: cannot listen on ${health.host}:${health.port}: ${(error as Error).message}`);
      }
    }
    pump.#loop = pump.#run();
    return pump;
  }

  /** The health server's address, when `pump.health` is set. */
  get healthUrl(): string | null {
    return this.#health?.url ?? null;
  }

  async health(): Promise<PumpHealth> {
    const depth = await this.source.depth();
    const sinks: PumpHealth['sinks'] = {};
    for (const { name, runner, deadLetter } of this.sinks) {
      const { batches, records } = deadLetter.totals();
      sinks[name] = { ...runner.status(), ...(await this.metrics.sinkCounts(name)), deadLetter: { batches, records } };
    }
    return {
      status: Object.values(sinks).every((sink) => sink.state === 'open') ? 'ok' : 'degraded',
      buffer: { batches: depth.batches, records: depth.records, lagSeconds: depth.oldestAgeMs / 1000 },
      sinks,
    };
  }

  async renderMetrics(): Promise<string> {
    const own = await this.metrics.render({
      buffer: await this.source.depth(),
      deadLetters: this.sinks.map(({ name, deadLetter }) => ({ sink: name, ...deadLetter.totals() })),
    });
    const ofSinks = await Promise.all(this.sinks.map(async ({ healthMetrics }) => (healthMetrics ? healthMetrics.metrics() : '')));
    return own + ofSinks.join('');
  }

  /**
   * Stops reading, gives the batches in flight up to `waitMs` to be delivered, then closes the
   * sinks and the buffer: what was not acknowledged stays in the buffer for the next start.
   */
  async stop(waitMs = STOP_WAIT_MS): Promise<{ unacknowledged: number }> {
    this.#stopping = true;
    this.#signalStop();
    await this.#loop;
    for (const { runner } of this.sinks) runner.flush();
    const timeout = new AbortController();
    await Promise.race([Promise.all(this.#inFlight), sleep(waitMs, undefined, { signal: timeout.signal }).catch(() => undefined)]);
    timeout.abort();
    await Promise.all(this.sinks.map(({ runner }) => runner.stop()));
    // Acknowledgements of deliveries that completed while the runners stopped run before the buffer closes.
    await new Promise((resolve) => setImmediate(resolve));
    const unacknowledged = this.#inFlight.size;
    await this.#health?.close();
    await this.source.close();
    for (const { deadLetter } of this.sinks) deadLetter.close();
    this.undecodable.close();
    return { unacknowledged };
  }

  async #run(): Promise<void> {
    const max = this.config.pump.maxBatchesInFlight;
    while (!this.#stopping) {
      if (this.#inFlight.size >= max) {
        await Promise.race([...this.#inFlight, this.#stopSignal]);
        continue;
      }
      let batches: SourceBatch[];
      try {
        batches = await this.source.read(max - this.#inFlight.size, READ_WAIT_MS);
      } catch (error) {
        this.notify(`cannot read the buffer: ${(error as Error).message}; trying again`);
        await Promise.race([sleep(1_000), this.#stopSignal]);
        continue;
      }
      for (const batch of batches) this.#dispatch(batch);
    }
  }

  #dispatch(batch: SourceBatch): void {
    this.metrics.recordsRead(batch.records.length);
    const done: Promise<void> = Promise.all(this.sinks.map(({ runner }) => runner.deliver(batch.records)))
      .then(() => this.source.ack(batch))
      .catch((error: unknown) => this.notify(`${batch.key}: delivered but not acknowledged (it will be delivered again): ${(error as Error).message}`))
      .finally(() => this.#inFlight.delete(done));
    this.#inFlight.add(done);
  }
}

/** What the schema cannot see: the pump's directories and sink names against each other. */
function checkPumpConfig(config: Config, source: string): void {
  const problems: string[] = [];
  const { pump } = config;
  if (pump.sinks.length === 0) problems.push('pump.sinks: expected at least one sink, found []');
  if (resolve(pump.deadLetterDirectory) === resolve(config.analytics.buffer.directory)) {
    problems.push(`pump.deadLetterDirectory: expected a directory other than analytics.buffer.directory, found ${JSON.stringify(pump.deadLetterDirectory)}`);
  }
  (pump.sinks as SinkConfig[]).forEach((sink, index) => {
    if (sinkName(sink) === UNDECODABLE) {
      problems.push(`pump.sinks.${index}.name: expected a name other than "${UNDECODABLE}" (the dead letter of batches that cannot be decoded), found "${UNDECODABLE}"`);
    }
  });
  if (problems.length > 0) throw new ConfigError(source, problems);
}

/** Sinks serving metrics on `pump.health` need it, and their metric names must not clash with the pump's or each other's. */
function checkHealthMetrics(config: Config, sinks: readonly PumpSink[], metrics: PumpMetrics, source: string): void {
  const serving = sinks.filter((sink) => sink.healthMetrics !== undefined);
  if (serving.length === 0) return;
  const index = sinks.indexOf(serving[0] as PumpSink);
  if (config.pump.health === undefined) {
    throw new ConfigError(source, [`pump.sinks.${index}.port: expected a port, or pump.health to serve the metrics of sink ${serving[0]?.name} on, found neither`]);
  }
  try {
    Registry.merge([metrics.registry, ...serving.map((sink) => sink.healthMetrics as Registry)]);
  } catch (error) {
    throw new ConfigError(source, [`pump.sinks: sinks serving metrics on pump.health clash (give each a port of its own): ${(error as Error).message}`]);
  }
}
