import { resolve } from 'node:path';
import type { Config } from '../config/schema.js';
import { DeadLetter } from '../pump/dead-letter.js';
import { Pump } from '../pump/pump.js';
import { PumpMetrics } from '../pump/pump-metrics.js';
import { replayDeadLetter } from '../pump/replay.js';
import { SinkRunner } from '../pump/sink-runner.js';
import { createSink, sinkName, type SinkConfig } from '../pump/sinks/create-sink.js';

function notify(message: string): void {
  process.stderr.write(`tollgate pump: ${message}\n`);
}

/** `tollgate pump`: runs until SIGTERM or SIGINT, then stops gracefully (a second signal exits at once). */
export async function runPump(config: Config, configFile: string): Promise<void> {
  const pump = await Pump.start(config, { notify, configSource: configFile });
  const buffer = config.analytics.buffer;
  const sinks = (config.pump.sinks as SinkConfig[]).map((sink) => `${sinkName(sink)} (${sink.type})`).join(', ');
  notify(
    `started: reading the ${buffer.type} buffer (${buffer.type === 'redis' ? buffer.stream : resolve(buffer.directory)}) into ${sinks}` +
      (pump.healthUrl === null ? '' : `; health on ${pump.healthUrl}`),
  );
  let stopping = false;
  const stop = async (): Promise<void> => {
    if (stopping) {
      notify('second signal: exiting without waiting; what is not acknowledged stays in the buffer');
      process.exit(1);
    }
    stopping = true;
    notify('stopping: delivering the batches in flight');
    const { unacknowledged } = await pump.stop();
    notify(unacknowledged === 0 ? 'stopped' : `stopped; ${unacknowledged} batches not delivered stay in the buffer`);
    process.exit(0);
  };
  process.on('SIGTERM', () => void stop()).on('SIGINT', () => void stop());
}

/** `tollgate replay --sink NAME`: delivers the sink's dead letter through its runner, printing each batch delivered. */
export async function runReplay(config: Config, name: string, out: NodeJS.WritableStream): Promise<void> {
  const sinks = config.pump.sinks as SinkConfig[];
  const sinkConfig = sinks.find((sink) => sinkName(sink) === name);
  if (sinkConfig === undefined) {
    const known = sinks.map(sinkName);
    throw new Error(`--sink: expected ${known.length === 0 ? 'a sink of pump.sinks (there is none)' : `one of ${known.join('|')}`}, found ${JSON.stringify(name)}`);
  }
  const deadLetter = new DeadLetter(resolve(config.pump.deadLetterDirectory), name);
  const metrics = new PumpMetrics();
  const runner = new SinkRunner(name, createSink(sinkConfig, notify), sinkConfig, deadLetter, metrics.sink(name), notify);
  try {
    const held = deadLetter.totals();
    out.write(`${deadLetter.path}: ${held.batches} batches (${held.records} records) to replay to sink ${name}\n`);
    const replayed = await replayDeadLetter(deadLetter, runner, config.pump.maxBatchesInFlight, ({ id, records }) =>
      out.write(`delivered dead-letter batch ${id}: ${records} records\n`),
    );
    const counts = await metrics.sinkCounts(name);
    const again = Object.values(counts.deadLettered).reduce((sum, records) => sum + records, 0);
    const records = replayed.reduce((sum, batch) => sum + batch.records, 0);
    out.write(
      `replayed ${replayed.length} batches (${records} records) to sink ${name}: ${counts.written} written, ${counts.filtered} filtered out, ${again} back in the dead letter\n`,
    );
  } finally {
    await runner.stop();
    deadLetter.close();
  }
}
