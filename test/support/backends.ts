import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { createServer, type IncomingHttpHeaders, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { connect, type AddressInfo, type Socket } from 'node:net';
import { serverUrl, startDemoBackend } from '../../src/demo/backend.js';
import type { Workspace } from './gateway-process.js';

export interface SeenRequest {
  method: string;
  url: string;
  headers: IncomingHttpHeaders;
  rawHeaders: string[];
  bodyBytes: number;
}

export interface Backend {
  url: string;
  server: Server;
  seen: SeenRequest[];
  close(): Promise<void>;
}

function closer(server: Server): () => Promise<void> {
  return () =>
    new Promise((resolve) => {
      server.closeAllConnections();
      server.close(() => resolve());
    });
}

/** A back end on a free loopback port; every request it gets is noted in `seen`. */
export async function startBackend(handler: (request: IncomingMessage, response: ServerResponse) => void): Promise<Backend> {
  const seen: SeenRequest[] = [];
  const server = createServer((request, response) => {
    const note: SeenRequest = {
      method: request.method ?? '',
      url: request.url ?? '',
      headers: request.headers,
      rawHeaders: request.rawHeaders,
      bodyBytes: 0,
    };
    seen.push(note);
    request.on('data', (chunk: Buffer) => (note.bodyBytes += chunk.length));
    handler(request, response);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return { url: serverUrl(server), server, seen, close: closer(server) };
}

/** The bundled demo back end on a free port. */
export async function startDemo(): Promise<Backend> {
  const server = await startDemoBackend(0);
  return { url: serverUrl(server), server, seen: [], close: closer(server) };
}

/** A port nothing listens on (bound once, then released). */
export async function deadPort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return port;
}

// Listens with an accept queue of one and then blocks its own event loop, so nothing ever
// accepts; it ends itself after a minute should the test process die without killing it.
const NEVER_ACCEPTING_LISTENER = `
const server = require('node:net').createServer();
server.listen({ port: 0, host: '127.0.0.1', backlog: 1 }, () => {
  process.stdout.write(server.address().port + '\\n');
  Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 60000);
  process.exit(0);
});`;

export interface UnansweredPort {
  port: number;
  close(): Promise<void>;
}

/**
 * A loopback port where a new connection is never established, as with a host that drops
 * packets: its listener never accepts and its accept queue is already full, so the kernel drops
 * every further SYN. (Unroutable addresses such as 10.255.255.1 do not do this everywhere: some
 * networks answer for them.)
 */
export async function unansweredPort(): Promise<UnansweredPort> {
  const child = spawn(process.execPath, ['-e', NEVER_ACCEPTING_LISTENER], { stdio: ['ignore', 'pipe', 'inherit'] });
  const [chunk] = (await once(child.stdout, 'data')) as [Buffer];
  const port = Number.parseInt(chunk.toString(), 10);
  // Linux queues backlog + 1 established connections before it drops SYNs.
  const fillers: Socket[] = [];
  for (let i = 0; i < 2; i++) {
    const filler = connect(port, '127.0.0.1');
    fillers.push(filler);
    await once(filler, 'connect');
  }
  return {
    port,
    async close() {
      for (const filler of fillers) filler.destroy();
      const exited = once(child, 'exit');
      child.kill('SIGKILL');
      await exited;
    },
  };
}

/** A minimal valid config writing into the workspace, with one API `/api/` in front of `target`. */
export function baseConfig(workspace: Workspace, target: string | string[], overrides: Record<string, any> = {}): Record<string, any> {
  const { api = {}, analytics = {}, trafficLog = {}, gateway = {}, apis } = overrides;
  return {
    gateway: { host: '127.0.0.1', port: 0, group: 'test', instance: 'gw', ...gateway },
    apis: apis ?? [{ id: 'api', name: 'Test API', listenPath: '/api/', target, ...api }],
    analytics: { ...analytics },
    trafficLog: {
      output: 'file',
      directory: workspace.logDir,
      ...trafficLog,
      payloads: { enabled: false, directory: workspace.payloadDir, ...trafficLog.payloads },
    },
  };
}
