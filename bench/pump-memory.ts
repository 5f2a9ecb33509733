// npm run bench:pump-memory -- the pump's memory while its only sink is dead and records keep coming.
import { spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { stringify } from 'yaml';
import { encodeBatch } from '../src/analytics/codec.js';
import { Spool, spoolPath } from '../src/buffer/spool.js';
import { builtRecords } from '../test/support/built-records.js';
import { positiveIntFromEnv } from './env.js';
import { freePort, scratchDirectory } from './processes.js';
import { median } from './summary.js';
import { assertTollgateBuilt, TOLLGATE_BIN } from './tollgate.js';

const BATCH_RECORDS = 500;
const MB = 1024 * 1024;
const SAMPLE_MS = 5_000;
/** The goal: the pump's resident memory stays under this with a dead sink. */
const GOAL_MB = 200;

function residentMb(pid: number): number {
  const status = readFileSync(`/proc/${pid}/status`, 'utf8');
  return Number(/VmRSS:\s+(\d+) kB/.exec(status)?.[1] ?? 0) / 1024;
}

async function metric(url: string, name: string): Promise<number> {
  const text = await (await fetch(`${url}/metrics`)).text();
  return text
    .split('\n')
    .filter((line) => line.startsWith(name))
    .reduce((sum, line) => sum + Number(line.split(' ').at(-1)), 0);
}

async function main(): Promise<void> {
  const seconds = positiveIntFromEnv('BENCH_DEAD_SINK_SEC', 600);
  const rate = positiveIntFromEnv('BENCH_RECORDS_PER_SEC', 1_000);
  const maxRetrySec = positiveIntFromEnv('BENCH_MAX_RETRY_SEC', 60);
  await assertTollgateBuilt();
  const dir = await scratchDirectory('tollgate-pump-memory-');
  const healthPort = await freePort();
  const deadPort = await freePort();
  const config = {
    analytics: { buffer: { type: 'embedded', directory: join(dir, 'spool') } },
    pump: {
      health: { host: '127.0.0.1', port: healthPort },
      ...(process.env.BENCH_IN_FLIGHT ? { maxBatchesInFlight: positiveIntFromEnv('BENCH_IN_FLIGHT', 16) } : {}),
      deadLetterDirectory: join(dir, 'dead-letter'),
      sinks: [{ type: 'postgres', name: 'dead', url: `postgres://postgres@127.0.0.1:${deadPort}/none`, maxRetryTimeSec: maxRetrySec }],
    },
  };
  const configFile = join(dir, 'pump.yaml');
  await writeFile(configFile, stringify(config));
  const spool = new Spool(spoolPath(join(dir, 'spool'), 'bench', 'writer'));
  const batch = { data: encodeBatch(builtRecords(BATCH_RECORDS, { headers: true })), records: BATCH_RECORDS };

  console.log('Tollgate pump memory with a dead sink');
  console.log(`  ${seconds} s; a writer appends ${rate} records/s (batches of ${BATCH_RECORDS}, ${(batch.data.length / BATCH_RECORDS).toFixed(0)} B/record encoded) to the spool;`);
  console.log(`  the pump's only sink is PostgreSQL on a port nobody listens on (maxRetryTimeSec ${maxRetrySec}, then dead letter)`);
  const pump = spawn(process.execPath, [TOLLGATE_BIN, 'pump', '--config', configFile], { stdio: ['ignore', 'ignore', 'pipe'] });
  let output = '';
  pump.stderr.on('data', (chunk: Buffer) => (output = (output + chunk.toString()).slice(-4_000)));
  const health = `http://127.0.0.1:${healthPort}`;

  const samples: { at: number; mb: number }[] = [];
  const started = Date.now();
  let written = 0;
  let nextSample = 0;
  while (Date.now() - started < seconds * 1_000) {
    if (pump.exitCode !== null) throw new Error(`the pump exited (${pump.exitCode}): ${output}`);
    const due = Math.floor(((Date.now() - started) / 1_000) * rate);
    while (written + BATCH_RECORDS <= due) {
      spool.append([batch]);
      written += BATCH_RECORDS;
    }
    if (Date.now() - started >= nextSample) {
      const mb = residentMb(pump.pid as number);
      samples.push({ at: (Date.now() - started) / 1_000, mb });
      if (samples.length % 6 === 1) {
        const deadLettered = await metric(health, 'tollgate_pump_sink_records_dead_lettered_total').catch(() => NaN);
        const [heapUsed, heapTotal, external] = await Promise.all(
          ['heap_size_used_bytes', 'heap_size_total_bytes', 'external_memory_bytes'].map((name) => metric(health, `tollgate_pump_nodejs_${name}`).catch(() => NaN)),
        );
        const inMb = (bytes: number | undefined): string => ((bytes ?? NaN) / MB).toFixed(1);
        console.log(
          `  ${String(Math.round(samples.at(-1)?.at ?? 0)).padStart(4)} s  pump RSS ${mb.toFixed(1)} MB (JS heap ${inMb(heapUsed)} of ${inMb(heapTotal)} MB, external ${inMb(external)} MB)  written ${written}  dead-lettered ${deadLettered}`,
        );
      }
      nextSample += SAMPLE_MS;
    }
    // The writer keeps its pace by the clock: there is no event to wait for.
    await sleep(50);
  }
  const deadLettered = await metric(health, 'tollgate_pump_sink_records_dead_lettered_total');
  pump.kill('SIGTERM');
  spool.close();
  const peak = Math.max(...samples.map((sample) => sample.mb));
  const lastMinute = samples.filter((sample) => sample.at >= seconds - 60).map((sample) => sample.mb);
  const firstMinute = samples.filter((sample) => sample.at < 60).map((sample) => sample.mb);
  console.log('');
  console.log(`pump RSS: peak ${peak.toFixed(1)} MB, median of the first minute ${median(firstMinute).toFixed(1)} MB, of the last minute ${median(lastMinute).toFixed(1)} MB`);
  console.log(`records written ${written}, dead-lettered ${deadLettered} (the rest still waited for their ${maxRetrySec} s of retries)`);
  console.log(`goal: peak under ${GOAL_MB} MB: ${peak < GOAL_MB ? 'met' : 'NOT met'}`);
}

main().catch((error: unknown) => {
  console.error(`bench:pump-memory failed: ${error instanceof Error ? error.message : String(error)}`);
  process.exit(1);
});
