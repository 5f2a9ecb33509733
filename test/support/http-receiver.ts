import { createServer, type IncomingHttpHeaders, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo, Socket } from 'node:net';
import { gunzipSync } from 'node:zlib';

/** A request as the receiver got it, its body already decompressed. */
export interface ReceivedRequest {
  method: string;
  /** Path and query. */
  url: string;
  headers: IncomingHttpHeaders;
  body: string;
}

export interface ReceiverAnswer {
  status: number;
  headers?: Record<string, string>;
  body?: string;
}

/** Thrown by a handler when a request breaks the documented wire format: answered 400 and kept in `problems`. */
export class WireFormatError extends Error {}

/**
 * An HTTP server a test starts (127.0.0.1, OS-assigned port) in place of a service that cannot run
 * here: every request goes to `handler`, which checks it strictly and answers as the service
 * would. A gzip body is inflated first (and must be gzip when it says so). `cut` stops it as an
 * outage would (open connections destroyed, new ones refused); `restore` listens on the same port.
 */
export class HttpReceiver {
  readonly requests: ReceivedRequest[] = [];
  /** Wire-format breaches found, one message each: a test expects none. */
  readonly problems: string[] = [];
  readonly #sockets = new Set<Socket>();
  #server: Server | null = null;
  #port = 0;

  private constructor(readonly handler: (request: ReceivedRequest) => ReceiverAnswer | Promise<ReceiverAnswer>) {}

  static async start(handler: (request: ReceivedRequest) => ReceiverAnswer | Promise<ReceiverAnswer>): Promise<HttpReceiver> {
    const receiver = new HttpReceiver(handler);
    await receiver.#listen(0);
    return receiver;
  }

  get port(): number {
    return this.#port;
  }

  get url(): string {
    return `http://127.0.0.1:${this.#port}`;
  }

  async cut(): Promise<void> {
    const server = this.#server;
    this.#server = null;
    for (const socket of this.#sockets) socket.destroy();
    this.#sockets.clear();
    if (server) await new Promise<void>((resolve) => server.close(() => resolve()));
  }

  async restore(): Promise<void> {
    if (this.#server === null) await this.#listen(this.#port);
  }

  async close(): Promise<void> {
    await this.cut();
  }

  async #listen(port: number): Promise<void> {
    const server = createServer((request, response) => void this.#serve(request, response));
    server.on('connection', (socket) => {
      this.#sockets.add(socket);
      socket.on('close', () => this.#sockets.delete(socket));
    });
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(port, '127.0.0.1', () => {
        server.off('error', reject);
        resolve();
      });
    });
    this.#port = (server.address() as AddressInfo).port;
    this.#server = server;
  }

  async #serve(request: IncomingMessage, response: ServerResponse): Promise<void> {
    const chunks: Buffer[] = [];
    for await (const chunk of request) chunks.push(chunk as Buffer);
    let answer: ReceiverAnswer;
    try {
      const raw = Buffer.concat(chunks);
      const encoding = request.headers['content-encoding'];
      if (encoding !== undefined && encoding !== 'gzip') throw new WireFormatError(`unexpected content-encoding ${encoding}`);
      let body: string;
      try {
        body = (encoding === 'gzip' ? gunzipSync(raw) : raw).toString('utf8');
      } catch {
        throw new WireFormatError('content-encoding: gzip, but the body is not gzip');
      }
      const received: ReceivedRequest = { method: request.method ?? '', url: request.url ?? '', headers: request.headers, body };
      this.requests.push(received);
      answer = await this.handler(received);
    } catch (error) {
      const wrong = error instanceof WireFormatError;
      this.problems.push(wrong ? error.message : `the receiver failed: ${(error as Error).message}`);
      answer = { status: wrong ? 400 : 500, body: JSON.stringify({ error: (error as Error).message }) };
    }
    response.writeHead(answer.status, { 'content-type': 'application/json', ...answer.headers });
    response.end(answer.body ?? '');
  }
}

/** Fails the request as a breach of the wire format unless `condition` holds. */
export function wire(condition: unknown, message: string): asserts condition {
  if (!condition) throw new WireFormatError(message);
}
