import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { connect } from 'node:net';
import { mkdtemp, readdir, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { stringify } from 'yaml';
import { assertTrafficLogContract, checkTrafficLines, checkTrafficLogFiles, type CheckedLines } from './event-log-contract.js';

export const BIN = fileURLToPath(new URL('../../bin/tollgate', import.meta.url));

export interface CliResult {
  code: number | null;
  stdout: string;
  /** Standard output as the bytes written. */
  stdoutBytes: Buffer;
  stderr: string;
}

/** Runs the real CLI to completion. */
export function runCli(args: string[], env: NodeJS.ProcessEnv = {}): Promise<CliResult> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [BIN, ...args], { env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
    const stdout: Buffer[] = [];
    const stderr: Buffer[] = [];
    child.stdout.on('data', (chunk: Buffer) => stdout.push(chunk));
    child.stderr.on('data', (chunk: Buffer) => stderr.push(chunk));
    child.on('error', reject);
    child.on('close', (code) => {
      const stdoutBytes = Buffer.concat(stdout);
      resolve({ code, stdout: stdoutBytes.toString(), stdoutBytes, stderr: Buffer.concat(stderr).toString() });
    });
  });
}

/** The problem lines of a ConfigError as printed by the CLI (indented under the summary line). */
export function problemLines(stderr: string): string[] {
  return stderr
    .split('\n')
    .filter((line) => line.startsWith('  '))
    .map((line) => line.trim());
}

/** A scratch directory for one test: config, logs and payloads live here. */
export class Workspace {
  private constructor(readonly dir: string) {}

  static async create(): Promise<Workspace> {
    return new Workspace(await mkdtemp(join(tmpdir(), 'tollgate-test-')));
  }

  path(...parts: string[]): string {
    return join(this.dir, ...parts);
  }

  get logDir(): string {
    return this.path('logs');
  }

  get payloadDir(): string {
    return this.path('payloads');
  }

  async writeConfig(config: unknown, name = 'tollgate.yaml'): Promise<string> {
    const file = this.path(name);
    await writeFile(file, name.endsWith('.json') ? JSON.stringify(config) : stringify(config));
    return file;
  }

  /** A self-signed certificate for localhost and its key: `<name>cert.pem`, `<name>key.pem`. */
  async selfSignedCertificate(name = ''): Promise<{ cert: string; key: string }> {
    const cert = this.path(`${name}cert.pem`);
    const key = this.path(`${name}key.pem`);
    await promisify(execFile)('openssl', ['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-subj', '/CN=localhost', '-days', '1', '-keyout', key, '-out', cert]);
    return { cert, key };
  }

  /** Every traffic log line written in the log directory (current and rolled files), parsed; fails on a line that breaks the schema. */
  async logLines(): Promise<LogLine[]> {
    const { lines, problems } = await checkTrafficLogFiles(this.logDir);
    assertTrafficLogContract(problems);
    return lines as LogLine[];
  }

  /** Every file below the payload directory, relative to it. */
  async payloadFiles(): Promise<string[]> {
    return (await readdir(this.payloadDir, { recursive: true, withFileTypes: true }).catch(() => []))
      .filter((entry) => entry.isFile())
      .map((entry) => join(entry.parentPath, entry.name).slice(this.payloadDir.length + 1))
      .sort();
  }

  async remove(): Promise<void> {
    await rm(this.dir, { recursive: true, force: true });
  }
}

export interface LogLine {
  timestamp: number;
  correlationId: string;
  processInfo: Record<string, string>;
  transactionSummary?: Record<string, any>;
  transactionElement?: Record<string, any>;
  circuitPath?: Record<string, any>[];
  trace?: { level: string; thread: string; data: string };
}

export interface TransactionLines {
  summary: Record<string, any>;
  legs: Record<string, any>[];
  circuitPath: Record<string, any>[];
  lines: LogLine[];
}

/** Groups log lines by correlation id, as downstream pipelines do; trace lines belong to no transaction. */
export function byTransaction(lines: LogLine[]): Map<string, TransactionLines> {
  const grouped = new Map<string, TransactionLines>();
  for (const line of lines) {
    if (line.trace !== undefined) continue;
    let entry = grouped.get(line.correlationId);
    if (entry === undefined) {
      entry = { summary: {}, legs: [], circuitPath: [], lines: [] };
      grouped.set(line.correlationId, entry);
    }
    entry.lines.push(line);
    if (line.transactionSummary) entry.summary = line.transactionSummary;
    if (line.transactionElement) entry.legs[line.transactionElement.leg as number] = line.transactionElement;
    if (line.circuitPath) entry.circuitPath = line.circuitPath;
  }
  return grouped;
}

/** A gateway started through the real CLI; stop() sends SIGTERM and waits for a clean exit. */
export class GatewayProcess {
  stdout = '';
  stderr = '';
  readonly exited: Promise<number | null>;

  private constructor(
    readonly child: ChildProcess,
    readonly url: string,
  ) {
    this.exited = new Promise((resolve) => child.once('exit', (code) => resolve(code)));
  }

  static start(configFile: string, env: NodeJS.ProcessEnv = {}): Promise<GatewayProcess> {
    const child = spawn(process.execPath, [BIN, 'gateway', '--config', configFile], {
      env: { ...process.env, ...env },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    return new Promise((resolve, reject) => {
      let stdout = '';
      let stderr = '';
      let gateway: GatewayProcess | null = null;
      child.stdout?.on('data', (chunk: Buffer) => {
        if (gateway) gateway.stdout += chunk.toString();
        else stdout += chunk.toString();
      });
      child.stderr?.on('data', (chunk: Buffer) => {
        if (gateway) {
          gateway.stderr += chunk.toString();
          return;
        }
        stderr += chunk.toString();
        const match = /listening on (\S+)/.exec(stderr);
        if (match) {
          gateway = new GatewayProcess(child, match[1] as string);
          gateway.stdout = stdout;
          gateway.stderr = stderr;
          resolve(gateway);
        }
      });
      child.once('exit', (code) => {
        if (!gateway) reject(new Error(`gateway exited with code ${code} before listening:\n${stderr}`));
      });
    });
  }

  /** The traffic log lines this gateway wrote to standard output (`output: stdout`), parsed; fails on a line that breaks the schema. */
  stdoutLines(): LogLine[] {
    const { lines, problems } = this.checkStdout();
    assertTrafficLogContract(problems);
    return lines as LogLine[];
  }

  /** Standard output carries traffic log lines only: each complete one checked against the schema. */
  checkStdout(): CheckedLines {
    return checkTrafficLines(this.stdout, `stdout of gateway ${this.pid}`);
  }

  get pid(): number {
    return this.child.pid as number;
  }

  async stop(): Promise<number | null> {
    if (this.child.exitCode === null && this.child.signalCode === null) this.child.kill('SIGTERM');
    return this.exited;
  }
}

/**
 * Sends hand-written bytes (undici refuses hop-by-hop headers and malformed requests) and
 * returns everything the gateway answers until the connection closes.
 */
export function rawExchange(url: string, bytes: string): Promise<string> {
  const { hostname, port } = new URL(url);
  return new Promise((resolve, reject) => {
    const socket = connect(Number(port), hostname, () => socket.write(bytes));
    let answer = '';
    socket.on('data', (chunk: Buffer) => (answer += chunk.toString('latin1')));
    socket.on('error', reject);
    socket.on('close', () => resolve(answer));
  });
}

/** Starts the gateway expecting it to fail before listening; resolves with its exit message. */
export async function gatewayStartFailure(configFile: string, env: NodeJS.ProcessEnv = {}): Promise<string> {
  const started = await GatewayProcess.start(configFile, env).then(
    (gateway) => gateway,
    (error: Error) => error.message,
  );
  if (typeof started !== 'string') {
    await started.stop();
    throw new Error('the gateway started though it should have refused to');
  }
  return started;
}

export function delay(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/** Polls until `check` returns a value other than undefined, or fails after `timeoutMs`. */
export async function eventually<T>(check: () => Promise<T | undefined>, timeoutMs = 5_000, what = 'condition'): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await check();
    if (value !== undefined) return value;
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await delay(50);
  }
}
