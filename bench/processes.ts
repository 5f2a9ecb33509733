import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { accessSync, constants, rmSync } from 'node:fs';
import { mkdtemp } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { connect, createServer } from 'node:net';
import { delimiter, join } from 'node:path';

const READY_TIMEOUT_MS = 15_000;
const STOP_GRACE_MS = 5_000;
const OUTPUT_TAIL_CHARS = 4_000;

export interface ServerSpec {
  name: string;
  /** Full argv, executable first. */
  argv: string[];
  port: number;
  env?: NodeJS.ProcessEnv;
  /** Text the server prints once it accepts connections; without it the port is polled. */
  readyText?: string;
}

export interface RunningServer {
  url: string;
  /** The server's process group (its pid: it leads the group), which holds any processes it forks. */
  processGroup: number;
  alive(): boolean;
  /** The tail of what it printed (stdout and stderr). */
  output(): string;
  stop(): Promise<void>;
  /** SIGKILL to the whole process group, as a crash would: nothing gets to clean up. Resolves once it exited. */
  kill(): Promise<void>;
}

const running = new Set<ChildProcess>();

/** Signals the child's whole process group, so helpers it forked (nginx workers) go too. */
function signalGroup(child: ChildProcess, signal: NodeJS.Signals): void {
  if (child.pid === undefined) return;
  try {
    process.kill(-child.pid, signal);
  } catch {
    // Already gone.
  }
}

function hasExited(child: ChildProcess): boolean {
  return child.exitCode !== null || child.signalCode !== null;
}

/** Synchronous, so it also works from an 'exit' handler. */
export function killAllChildren(): void {
  for (const child of running) signalGroup(child, 'SIGKILL');
  running.clear();
}

/** A scratch directory for a harness run; it and every server still running go when the harness exits, Ctrl-C included. */
export async function scratchDirectory(prefix: string): Promise<string> {
  const scratch = await mkdtemp(join(tmpdir(), prefix));
  process.on('exit', () => {
    killAllChildren();
    rmSync(scratch, { recursive: true, force: true });
  });
  for (const [signal, code] of [['SIGINT', 130], ['SIGTERM', 143]] as const) process.on(signal, () => process.exit(code));
  return scratch;
}

export function findExecutable(name: string): string | undefined {
  const dirs = [...(process.env.PATH ?? '').split(delimiter), '/usr/sbin', '/sbin'];
  for (const dir of dirs) {
    if (dir === '') continue;
    const candidate = join(dir, name);
    try {
      accessSync(candidate, constants.X_OK);
      return candidate;
    } catch {
      // Not in this directory.
    }
  }
  return undefined;
}

export async function freePort(): Promise<number> {
  const server = createServer();
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const address = server.address();
  server.close();
  if (address === null || typeof address === 'string') throw new Error('could not reserve a port');
  return address.port;
}

function portAccepts(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = connect(port, '127.0.0.1');
    socket.once('connect', () => {
      socket.destroy();
      resolve(true);
    });
    socket.once('error', () => resolve(false));
  });
}

/** Runs a command to completion and returns its stdout; like the servers, it is killed if the harness quits. */
export async function runCommand(argv: string[]): Promise<string> {
  const [command, ...args] = argv;
  if (command === undefined) throw new Error('empty command');
  const child = spawn(command, args, { stdio: ['ignore', 'pipe', 'pipe'], detached: true });
  running.add(child);
  let stdout = '';
  let stderr = '';
  child.stdout?.on('data', (chunk: Buffer) => (stdout += chunk.toString()));
  child.stderr?.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
  try {
    const [code, signal] = (await once(child, 'close')) as [number | null, NodeJS.Signals | null];
    if (code !== 0) throw new Error(`${command} failed (${code ?? signal}): ${stderr.trim() || stdout.trim()}`);
    return stdout;
  } finally {
    running.delete(child);
  }
}

export async function startServer(spec: ServerSpec): Promise<RunningServer> {
  const [command, ...args] = spec.argv;
  if (command === undefined) throw new Error(`${spec.name}: empty command`);
  // detached: the child leads its own process group, which stop() signals as a whole.
  const child = spawn(command, args, {
    env: { ...process.env, ...spec.env },
    stdio: ['ignore', 'pipe', 'pipe'],
    detached: true,
  });
  running.add(child);

  // The output must be drained anyway, or a chatty child blocks on a full pipe; its tail explains failures.
  let output = '';
  let ready = false;
  const onOutput = (chunk: Buffer): void => {
    output = (output + chunk.toString()).slice(-OUTPUT_TAIL_CHARS);
    if (spec.readyText !== undefined && output.includes(spec.readyText)) ready = true;
  };
  child.stdout?.on('data', onOutput);
  child.stderr?.on('data', onOutput);
  let spawnError: Error | undefined;
  child.once('error', (error) => (spawnError = error));

  // The first line names the problem and the child's last words; the rest is the tail of its output.
  const describe = (problem: string): Error => {
    const tail = output.trim();
    const lastLine = tail.split('\n').at(-1) ?? '';
    const details = tail === '' ? '' : tail.includes('\n') ? `: ${lastLine}\n${tail}` : `: ${tail}`;
    return new Error(`${spec.name} ${problem}${details}`);
  };
  const stop = async (): Promise<void> => {
    if (!hasExited(child) && spawnError === undefined) {
      const exited = once(child, 'exit');
      signalGroup(child, 'SIGTERM');
      const timer = setTimeout(() => signalGroup(child, 'SIGKILL'), STOP_GRACE_MS);
      await exited;
      clearTimeout(timer);
    }
    running.delete(child);
  };
  const kill = async (): Promise<void> => {
    if (!hasExited(child) && spawnError === undefined) {
      const exited = once(child, 'exit');
      signalGroup(child, 'SIGKILL');
      await exited;
    }
    running.delete(child);
  };

  const deadline = Date.now() + READY_TIMEOUT_MS;
  while (!ready) {
    if (spawnError !== undefined) {
      running.delete(child);
      throw describe(`could not start: ${spawnError.message}`);
    }
    if (hasExited(child)) {
      running.delete(child);
      throw describe(`exited (${child.exitCode ?? child.signalCode}) before it was ready`);
    }
    if (Date.now() > deadline) {
      await stop();
      throw describe(`was not ready after ${READY_TIMEOUT_MS / 1000} s`);
    }
    if (spec.readyText === undefined) ready = await portAccepts(spec.port);
    if (!ready) await new Promise((resolve) => setTimeout(resolve, 50));
  }

  // Ready means spawned, so the pid is known.
  return {
    url: `http://127.0.0.1:${spec.port}`,
    processGroup: child.pid!,
    alive: () => !hasExited(child),
    output: () => output,
    stop,
    kill,
  };
}
