import cluster, { type Worker } from 'node:cluster';
import { availableParallelism } from 'node:os';
import { payloadStorageOn, type Config } from '../config/schema.js';
import { startGateway } from '../gateway.js';

export interface RunOptions {
  afterStart?: (url: string) => void;
  /** Called once the gateway has closed, before the process exits. */
  onClose?: () => Promise<void>;
}

const WORKER_INDEX = 'TOLLGATE_WORKER_INDEX';

function notify(message: string): void {
  process.stderr.write(`tollgate: ${message}\n`);
}

function describe(config: Config): string {
  const log = config.trafficLog;
  const where = log.output === 'file' ? `file in ${log.directory}` : log.output;
  return `traffic log: ${where}, payloads: ${payloadStorageOn(log) ? `on (${log.payloads.directory})` : 'off'}`;
}

/** Runs the gateway in this process, or as `gateway.workers` processes sharing the port. */
export async function runGateway(config: Config, options: RunOptions = {}): Promise<void> {
  const workers = config.gateway.workers === 'auto' ? availableParallelism() : config.gateway.workers;
  if (workers > 1 && cluster.isPrimary) return runPrimary(config, workers, options);

  const index = process.env[WORKER_INDEX];
  const instance = cluster.isWorker && index !== undefined ? `${config.gateway.instance}-${index}` : config.gateway.instance;
  const gateway = await startGateway(config, { instance, notify: (message) => notify(`[${instance}] ${message}`) });
  if (cluster.isWorker) {
    process.send?.({ listening: gateway.url, instance });
  } else {
    notify(`listening on ${gateway.url} (instance ${instance}, ${describe(config)})`);
    options.afterStart?.(gateway.url);
  }

  let stopping = false;
  const stop = async (): Promise<void> => {
    if (stopping) {
      notify(`[${instance}] second signal: exiting without waiting`);
      process.exit(1);
    }
    stopping = true;
    await gateway.close();
    await options.onClose?.();
    process.exit(0);
  };
  // A log rotator moved the files away: write to new ones.
  process.on('SIGHUP', () => gateway.reopen());
  if (cluster.isWorker) {
    // The primary stops its workers one SIGTERM each; Ctrl-C reaches the whole process group,
    // and a worker must not take that for a second, impatient signal.
    process.on('SIGINT', () => undefined).once('SIGTERM', () => void stop());
  } else {
    process.on('SIGTERM', () => void stop()).on('SIGINT', () => void stop());
  }
}

function runPrimary(config: Config, count: number, options: RunOptions): Promise<void> {
  let stopping = false;
  let started = 0;
  const fork = (index: number): Worker => {
    const worker = cluster.fork({ [WORKER_INDEX]: String(index) });
    let listening = false;
    worker.on('message', (message: { listening?: string; instance?: string }) => {
      if (message.listening === undefined) return;
      listening = true;
      if (++started === count) {
        notify(`listening on ${message.listening} (${count} workers: ${config.gateway.instance}-1..${count}, ${describe(config)})`);
        options.afterStart?.(message.listening);
      }
    });
    worker.on('exit', (code, signal) => {
      if (stopping) return;
      if (!listening) {
        // It never started: starting it again would fail the same way.
        notify(`worker ${config.gateway.instance}-${index} failed to start (${signal ?? `code ${code}`}); stopping`);
        process.exitCode = 1;
        return stop();
      }
      notify(`worker ${config.gateway.instance}-${index} exited (${signal ?? `code ${code}`}); starting a new one`);
      fork(index);
    });
    return worker;
  };
  for (let index = 1; index <= count; index++) fork(index);

  const stop = (): void => {
    if (stopping) return;
    stopping = true;
    const alive = Object.values(cluster.workers ?? {}).filter((worker): worker is Worker => worker !== undefined && !worker.isDead());
    let left = alive.length;
    const done = async (): Promise<void> => {
      await options.onClose?.();
      process.exit(process.exitCode ?? 0);
    };
    if (left === 0) return void done();
    for (const worker of alive) {
      worker.once('exit', () => {
        if (--left === 0) void done();
      });
      worker.process.kill('SIGTERM');
    }
  };
  process.on('SIGTERM', stop).on('SIGINT', stop);
  process.on('SIGHUP', () => {
    for (const worker of Object.values(cluster.workers ?? {})) worker?.process.kill('SIGHUP');
  });
  return Promise.resolve();
}
