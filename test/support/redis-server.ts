import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { mkdirSync } from 'node:fs';
import { connect, createServer } from 'node:net';
import { createClient } from 'redis';
import { afterEach } from 'vitest';
import { eventually } from './gateway-process.js';

/**
 * A test's own `redis-server`, without persistence unless given a directory for its append-only
 * file: `kill()` is a SIGKILL (or the signal given), and `start()` again brings up a Redis with a
 * new run id on the same port, empty or with what it had persisted.
 */
export class RedisServer {
  #child: ChildProcess | null = null;
  readonly #clients: { destroy(): void }[] = [];
  #output = '';

  private constructor(
    readonly port: number,
    readonly persistDirectory: string | null,
  ) {}

  static async start(options: { persistDirectory?: string } = {}): Promise<RedisServer> {
    const server = await RedisServer.reserve(options);
    await server.start();
    return server;
  }

  /** A port for a Redis not started yet. */
  static async reserve(options: { persistDirectory?: string } = {}): Promise<RedisServer> {
    return new RedisServer(await freePort(), options.persistDirectory ?? null);
  }

  get url(): string {
    return `redis://127.0.0.1:${this.port}`;
  }

  async start(): Promise<void> {
    if (this.persistDirectory !== null) mkdirSync(this.persistDirectory, { recursive: true });
    const persistence = this.persistDirectory === null ? ['--appendonly', 'no'] : ['--appendonly', 'yes', '--dir', this.persistDirectory];
    const child = spawn('redis-server', ['--port', String(this.port), '--bind', '127.0.0.1', '--save', '', ...persistence], { stdio: ['ignore', 'pipe', 'pipe'] });
    child.stdout?.on('data', (chunk: Buffer) => (this.#output += chunk.toString()));
    child.stderr?.on('data', (chunk: Buffer) => (this.#output += chunk.toString()));
    const failed = new Promise<never>((_, reject) => {
      child.once('error', (error) => reject(new Error(`redis-server could not be started (is it installed?): ${error.message}`)));
      child.once('exit', (code) => reject(new Error(`redis-server exited with code ${code}:\n${this.#output}`)));
    });
    failed.catch(() => undefined);
    this.#child = child;
    await Promise.race([failed, eventually(() => this.#answersPing(), 10_000, `redis-server on port ${this.port} to answer PING`)]);
  }

  /** A client of the test's own, closed by `stop()`. */
  async client(): Promise<ReturnType<typeof createClient>> {
    const client = createClient({ url: this.url });
    // The server is killed on purpose; the test reads what it needs through the commands' own errors.
    client.on('error', () => undefined);
    this.#clients.push(client);
    return client.connect();
  }

  /** After a test: its clients closed, then the server killed. */
  async stop(): Promise<void> {
    for (const client of this.#clients.splice(0)) client.destroy();
    await this.kill();
  }

  async kill(signal: NodeJS.Signals = 'SIGKILL'): Promise<void> {
    const child = this.#child;
    this.#child = null;
    if (child === null || child.exitCode !== null || child.signalCode !== null) return;
    const exited = once(child, 'exit');
    child.kill(signal);
    await exited;
  }

  #answersPing(): Promise<true | undefined> {
    return new Promise((resolve) => {
      const socket = connect(this.port, '127.0.0.1', () => socket.write('PING\r\n'));
      socket.on('data', (chunk: Buffer) => {
        socket.destroy();
        resolve(chunk.toString().startsWith('+PONG') ? true : undefined);
      });
      socket.on('error', () => resolve(undefined));
    });
  }
}

/** A TCP port nobody listens on right now (redis-server cannot be given port 0). */
export async function freePort(): Promise<number> {
  const server = createServer();
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const { port } = server.address() as { port: number };
  await new Promise((resolve) => server.close(resolve));
  return port;
}

/** `redis-server`s of a test's own, each stopped (its clients closed, the server killed) after the test. */
export function useRedisServers(): { start(options?: { persistDirectory?: string }): Promise<RedisServer> } {
  const started: RedisServer[] = [];
  afterEach(async () => {
    for (const server of started.splice(0)) await server.stop();
  });
  return {
    async start(options = {}) {
      const server = await RedisServer.start(options);
      started.push(server);
      return server;
    },
  };
}
