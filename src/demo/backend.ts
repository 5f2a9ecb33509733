import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';

const HELLO = Buffer.from('{"message":"hello from the demo back end"}');
const PETS = [
  { id: 1, name: 'Rex', kind: 'dog' },
  { id: 2, name: 'Tom', kind: 'cat' },
  { id: 3, name: 'Polly', kind: 'parrot' },
];

function sendJson(res: ServerResponse, status: number, body: unknown): void {
  const bytes = Buffer.isBuffer(body) ? body : Buffer.from(JSON.stringify(body));
  res.writeHead(status, { 'content-type': 'application/json', 'content-length': bytes.length });
  res.end(bytes);
}

function handle(req: IncomingMessage, res: ServerResponse): void {
  const url = new URL(req.url ?? '/', 'http://demo');
  const path = url.pathname;

  if (path === '/hello' || path === '/') return sendJson(res, 200, HELLO);
  if (path === '/pets' && req.method === 'GET') return sendJson(res, 200, PETS);
  const petMatch = /^\/pets\/(\d+)$/.exec(path);
  if (petMatch) {
    const pet = PETS.find((p) => p.id === Number(petMatch[1]));
    return pet ? sendJson(res, 200, pet) : sendJson(res, 404, { error: 'no such pet' });
  }
  if (path === '/echo' || path === '/login' || (path === '/pets' && req.method === 'POST')) {
    // Streams the request body straight back, so large uploads never sit in memory.
    const headers: Record<string, string> = { 'content-type': req.headers['content-type'] ?? 'application/octet-stream' };
    if (req.headers['content-length'] !== undefined) headers['content-length'] = req.headers['content-length'];
    res.writeHead(200, headers);
    req.pipe(res);
    return;
  }
  if (path === '/drain') {
    // Reads the request body and answers with its size: an upload sink that echoes nothing.
    let received = 0;
    req.on('data', (chunk: Buffer) => (received += chunk.length));
    req.on('end', () => sendJson(res, 200, { received }));
    return;
  }
  const statusMatch = /^\/status\/(\d{3})$/.exec(path);
  if (statusMatch) return sendJson(res, Number(statusMatch[1]), { status: Number(statusMatch[1]) });
  if (path === '/slow') {
    const ms = Math.min(Number(url.searchParams.get('ms') ?? 1000), 60_000);
    const timer = setTimeout(() => sendJson(res, 200, { sleptMs: ms }), ms);
    res.on('close', () => clearTimeout(timer));
    return;
  }
  if (path === '/bytes') {
    const size = Math.min(Number(url.searchParams.get('n') ?? 1024), 256 * 1024 * 1024);
    res.writeHead(200, { 'content-type': 'application/octet-stream', 'content-length': size });
    const chunk = Buffer.alloc(Math.min(size, 64 * 1024), 0x61);
    let left = size;
    const pump = (): void => {
      while (left > 0) {
        const piece = left >= chunk.length ? chunk : chunk.subarray(0, left);
        left -= piece.length;
        if (!res.write(piece)) return void res.once('drain', pump);
      }
      res.end();
    };
    pump();
    return;
  }
  sendJson(res, 404, { error: `demo back end has no ${path}` });
}

/** A small back end for the quick start, the tests and the benchmark. */
export function startDemoBackend(port: number, host = '127.0.0.1'): Promise<Server> {
  const server = createServer({ keepAliveTimeout: 65_000 }, handle);
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, () => {
      server.off('error', reject);
      resolve(server);
    });
  });
}

export function serverUrl(server: Server): string {
  const { address, port } = server.address() as AddressInfo;
  return `http://${address.includes(':') ? `[${address}]` : address}:${port}`;
}
