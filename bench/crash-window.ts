// npm run bench:crash -- what a SIGKILL under load loses: answered transactions missing from the traffic log.
import { mkdir, mkdtemp, readdir, rename, rm } from 'node:fs/promises';
import { availableParallelism, tmpdir } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { setTimeout as sleep } from 'node:timers/promises';
import { configSchema } from '../src/config/schema.js';
import { busiestSpan, startAnsweredLoad, type AnsweredLoadResult } from './answered-load.js';
import { positiveIntFromEnv } from './env.js';
import { CONNECTIONS } from './load.js';
import { auditTrafficLog, type LogAudit } from './log-audit.js';
import { setUpPinning } from './pinning.js';
import { scratchDirectory, type RunningServer } from './processes.js';
import { table } from './report.js';
import { median } from './summary.js';
import { tollgate, type TargetSetup, type TollgateMode } from './targets.js';
import { assertTollgateBuilt, SPOOL_DIR, startDemoBackend, TRAFFIC_LOG_DIR } from './tollgate.js';
import { decodeBatch } from '../src/analytics/codec.js';
import { Spool, SPOOL_FILE } from '../src/buffer/spool.js';

const DEFAULTS = configSchema.parse({});
/** The payload writer's bound in the config the bench runs (the default): the traffic a crash may lose. */
const MAX_WRITE_DELAY_MS = DEFAULTS.trafficLog.payloads.maxWriteDelayMs;
/** The analytics buffer's bound (the default): records wait in memory at most this long before their commit. */
const FSYNC_INTERVAL_MS = DEFAULTS.analytics.buffer.fsyncIntervalMs;
/** The request rate at the kill is taken over this last stretch of the load. */
const RATE_WINDOW_MS = 1_000;
/** Bad links printed per round; the rest are counted. */
const BAD_LINKS_SHOWN = 3;

interface Mode {
  name: string;
  /** How the README's sentence names it. */
  short: string;
  tollgate: TollgateMode;
  /** What a crash may lose, in ms of traffic. */
  boundMs: number;
  /** What survived the kill. */
  audit: (dir: string) => Promise<LogAudit>;
}

const auditLog = (dir: string): Promise<LogAudit> => auditTrafficLog(join(dir, TRAFFIC_LOG_DIR));

/** The records in the gateway's spool, seen as a log audit: only `logged` applies. */
async function auditSpool(dir: string): Promise<LogAudit> {
  const logged = new Set<string>();
  for (const file of (await readdir(join(dir, SPOOL_DIR))).filter((name) => SPOOL_FILE.test(name))) {
    const spool = new Spool(join(dir, SPOOL_DIR, file));
    for (let after = 0; ; ) {
      const batches = spool.read(after, 100);
      if (batches.length === 0) break;
      for (const batch of batches) for (const record of decodeBatch(batch.data)) logged.add(record.id);
      after = (batches.at(-1) as { id: number }).id;
    }
    spool.close();
  }
  return { logged, notStored: new Map(), links: 0, badLinks: [], unreadableLines: [], traces: [] };
}

const MODES: Mode[] = [
  { name: 'payloads off (log only)', short: 'off', tollgate: 'log on', boundMs: MAX_WRITE_DELAY_MS, audit: auditLog },
  { name: 'payloads on, files layout', short: 'files', tollgate: 'payloads on', boundMs: MAX_WRITE_DELAY_MS, audit: auditLog },
  { name: 'payloads on, packed layout', short: 'packed', tollgate: 'payloads packed', boundMs: MAX_WRITE_DELAY_MS, audit: auditLog },
  { name: 'analytics records, embedded spool', short: 'spool', tollgate: 'embedded spool', boundMs: FSYNC_INTERVAL_MS, audit: auditSpool },
];

/** The modes named in BENCH_ONLY (comma-separated short names), else all. */
function selectModes(text: string | undefined): Mode[] {
  const names = (text ?? '').split(',').map((name) => name.trim()).filter((name) => name !== '');
  if (names.length === 0) return MODES;
  const unknown = names.filter((name) => !MODES.some((mode) => mode.short === name));
  if (unknown.length > 0) throw new Error(`BENCH_ONLY: unknown mode(s) ${unknown.join(', ')}; the modes are ${MODES.map((mode) => mode.short).join(', ')}`);
  return MODES.filter((mode) => names.includes(mode.short));
}

interface CrashRound {
  /** Whole answers per second over the last RATE_WINDOW_MS before the kill. */
  rate: number;
  answered: number;
  /** Answered transactions with no summary line in the log. */
  missing: number;
  /** `missing` in milliseconds of traffic at `rate`. */
  missingMs: number;
  /** The most answers in any `boundMs` of the run: what the bound lets a crash lose. */
  boundMs: number;
  busiestWindow: number;
  /** How long before the kill the earliest and the latest missing transactions were answered, ms (0: none missing). */
  oldestMissingMs: number;
  newestMissingMs: number;
  /** Logged transactions with a body recorded as `queue-full` (dropped to keep the window bounded). */
  queueFull: number;
  audit: LogAudit;
  load: AnsweredLoadResult;
}

/** One gateway, `seconds` of load, SIGKILL, then the count. The gateway is gone when this returns. */
async function crashRound(mode: Mode, setup: TargetSetup, dir: string, seconds: number): Promise<CrashRound> {
  const server: RunningServer = await tollgate(mode.tollgate, setup)(dir);
  let load: AnsweredLoadResult;
  let killedAt: number;
  try {
    const running = startAnsweredLoad(server.url);
    // A fixed stretch of steady load is the point here: there is nothing to await but time.
    await sleep(seconds * 1_000);
    if (!server.alive()) throw new Error(`the gateway exited before the kill: ${server.output().trim()}`);
    const stopped = running.stop();
    killedAt = performance.now();
    await server.kill();
    load = await stopped;
  } finally {
    await server.kill();
  }
  const audit = await mode.audit(dir);
  const missingAnswers = load.answers.filter((answer) => !audit.logged.has(answer.id));
  const rate = load.answers.filter((answer) => answer.at >= killedAt - RATE_WINDOW_MS && answer.at < killedAt).length / (RATE_WINDOW_MS / 1_000);
  const oldest = missingAnswers.reduce((earliest, answer) => Math.min(earliest, answer.at), killedAt);
  const newest = missingAnswers.reduce((latest, answer) => Math.max(latest, answer.at), oldest);
  return {
    rate,
    answered: load.answers.length,
    missing: missingAnswers.length,
    missingMs: rate > 0 ? (missingAnswers.length * 1_000) / rate : 0,
    boundMs: mode.boundMs,
    busiestWindow: busiestSpan(load.answers, mode.boundMs),
    oldestMissingMs: killedAt - oldest,
    newestMissingMs: killedAt - newest,
    queueFull: audit.notStored.get('queue-full') ?? 0,
    audit,
    load,
  };
}

function describeRound(round: CrashRound): string {
  const { audit, load } = round;
  const otherNotStored = [...audit.notStored].filter(([reason]) => reason !== 'queue-full').map(([reason, count]) => `${reason} ${count}`);
  const parts = [
    `${round.rate.toFixed(0).padStart(5)} req/s at the kill`,
    `answered ${round.answered}`,
    `missing ${round.missing} = ${round.missingMs.toFixed(1)} ms of traffic`,
    `busiest ${round.boundMs} ms: ${round.busiestWindow} answers`,
    `missing answered ${round.oldestMissingMs.toFixed(0)} to ${round.newestMissingMs.toFixed(0)} ms before the kill`,
    `queue-full ${round.queueFull}`,
    `links ${audit.links}, bad ${audit.badLinks.length}`,
    `cut off at the kill ${load.failed}`,
  ];
  if (otherNotStored.length > 0) parts.push(`other bodies not stored: ${otherNotStored.join(', ')}`);
  if (load.non200 > 0) parts.push(`${load.non200} non-200 answers`);
  if (load.withoutId > 0) parts.push(`${load.withoutId} answers WITHOUT a correlation id`);
  if (audit.unreadableLines.length > 0) parts.push(`${audit.unreadableLines.length} UNREADABLE log lines`);
  if (round.missing > round.busiestWindow) parts.push(`OVER the bound: more than the busiest ${round.boundMs} ms answered`);
  const details = [
    ...audit.badLinks.slice(0, BAD_LINKS_SHOWN).map((problem) => `bad link: ${problem}`),
    ...audit.unreadableLines.map((line) => `unreadable: ${line}`),
    ...audit.traces.map((message) => `gateway said: ${message}`),
  ];
  return [parts.join('  '), ...details.map((line) => `      ${line}`)].join('\n');
}

interface ModeResult {
  mode: Mode;
  rounds: CrashRound[];
  error?: string;
}

function summaryTable(results: ModeResult[]): string {
  const lines = results.map(({ mode, rounds, error }) => {
    if (error !== undefined || rounds.length === 0) return [mode.name, '-', '-', '-', '-', '-', '-', '-', 'FAILED'];
    const of = (value: (round: CrashRound) => number): number => median(rounds.map(value));
    return [
      mode.name,
      of((round) => round.rate).toFixed(0),
      of((round) => round.missing).toFixed(0),
      of((round) => round.missingMs).toFixed(1),
      of((round) => round.busiestWindow).toFixed(0),
      of((round) => round.oldestMissingMs).toFixed(0),
      of((round) => round.queueFull).toFixed(0),
      of((round) => round.audit.badLinks.length).toFixed(0),
      rounds.map((round) => `${round.missing}/${round.missingMs.toFixed(0)}`).join(' '),
    ];
  });
  const header = ['mode', 'req/s', 'missing', 'ms of traffic', 'busiest bound ms', 'oldest missing ms', 'queue-full', 'bad links', 'rounds (missing/ms)'];
  return table(header, lines);
}

function readmeSentence(results: ModeResult[]): string | undefined {
  const measured = results.filter((result) => result.error === undefined && result.rounds.length > 0);
  if (measured.length === 0) return undefined;
  const of = (rounds: CrashRound[], value: (round: CrashRound) => number): number => median(rounds.map(value));
  const figures = measured.map(({ mode, rounds }) => `${of(rounds, (round) => round.missing).toFixed(0)} (${of(rounds, (round) => round.missingMs).toFixed(1)} ms) ${mode.short}`);
  const rates = measured.map(({ rounds }) => of(rounds, (round) => round.rate).toFixed(0));
  return `SIGKILL under load: answered transactions missing (ms of traffic) with payloads ${figures.join(' / ')}, at ${rates.join(' / ')} req/s`;
}

async function main(): Promise<void> {
  const seconds = positiveIntFromEnv('BENCH_DURATION', 5);
  const rounds = positiveIntFromEnv('BENCH_ROUNDS', 3);
  const modes = selectModes(process.env.BENCH_ONLY);
  await assertTollgateBuilt();

  const scratch = await scratchDirectory('tollgate-crash-');

  const pinning = setUpPinning(availableParallelism());
  const { backend, backendPort } = await startDemoBackend(pinning);
  const setup: TargetSetup = { backend, backendPort, pinning, nginxBinary: undefined };

  console.log('Tollgate crash window: answered transactions a SIGKILL under load leaves out of the traffic log');
  console.log(`  load:    ${CONNECTIONS} connections (undici Pool, in-process), 1 KB JSON POST to /echo; SIGKILL to the gateway after ${seconds} s`);
  console.log(`  pinning: ${pinning.description}`);
  console.log(`  bounds:  trafficLog.payloads.maxWriteDelayMs = ${MAX_WRITE_DELAY_MS}, analytics.buffer.fsyncIntervalMs = ${FSYNC_INTERVAL_MS} (defaults)`);
  console.log(`  rounds:  ${rounds}, interleaved across the modes (${modes.map((mode) => mode.short).join(', ')})`);
  console.log('');

  const results: ModeResult[] = modes.map((mode) => ({ mode, rounds: [] }));
  const nameWidth = Math.max(...modes.map((mode) => mode.name.length));
  for (let round = 1; round <= rounds; round++) {
    for (const result of results) {
      if (result.error !== undefined) continue;
      const dir = join(scratch, `${result.mode.short}-${round}`);
      await mkdir(dir);
      const prefix = `round ${round}/${rounds}  ${result.mode.name.padEnd(nameWidth)}`;
      let keep = false;
      try {
        const measured = await crashRound(result.mode, setup, dir, seconds);
        result.rounds.push(measured);
        console.log(`${prefix}  ${describeRound(measured)}`);
        keep = measured.audit.unreadableLines.length > 0 || measured.audit.badLinks.length > 0;
      } catch (error) {
        result.error = (error as Error).message;
        console.log(`${prefix}  FAILED: ${result.error}`);
      }
      if (keep) {
        // Out of the scratch folder, which goes when the bench ends.
        const kept = await mkdtemp(join(tmpdir(), `tollgate-crash-kept-${result.mode.short}-`));
        await rename(dir, join(kept, 'round'));
        console.log(`      kept for inspection: ${join(kept, 'round')}`);
      } else {
        await rm(dir, { recursive: true, force: true });
      }
      if (!backend.alive()) throw new Error('the demo back end exited; no further rounds are meaningful');
    }
  }
  await backend.stop();

  console.log('');
  console.log(summaryTable(results));
  console.log('');
  console.log(
    [
      'Medians over the rounds. "req/s": whole answers per second in the last second before the kill. "missing":',
      'transactions a client read a whole response for (by X-Correlation-ID) with no transactionSummary line in the',
      'traffic log (spool: no record in the spool) after the kill; "ms of traffic": missing / req/s. "busiest bound ms": the most',
      `answers in any ${MAX_WRITE_DELAY_MS} ms (spool: ${FSYNC_INTERVAL_MS} ms) of the run, what the bound lets a crash lose. "oldest missing ms": how long before the kill the`,
      'earliest missing one was answered. "queue-full": logged transactions whose bodies were not stored because the',
      `payload writer was over maxWriteDelayMs (${MAX_WRITE_DELAY_MS} ms) behind. "bad links": payload links in the log whose file is`,
      'missing, or whose size (packed: range) does not match the recorded bytes.',
    ].join('\n'),
  );
  const sentence = readmeSentence(results);
  if (sentence !== undefined) console.log(`\n${sentence}`);
}

main().catch((error: unknown) => {
  console.error(`bench:crash failed: ${error instanceof Error ? error.message : String(error)}`);
  process.exit(1);
});
