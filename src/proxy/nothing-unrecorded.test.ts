import { execFile, spawnSync } from 'node:child_process';
import { once } from 'node:events';
import type { IncomingMessage } from 'node:http';
import { connect, type Socket } from 'node:net';
import { performance } from 'node:perf_hooks';
import { promisify } from 'node:util';
import { describe, expect, it } from 'vitest';
import { baseConfig, type Backend } from '../../test/support/backends.js';
import { useGatewayFixture } from '../../test/support/fixture.js';
import { byTransaction, eventually, rawExchange, type GatewayProcess, type TransactionLines } from '../../test/support/gateway-process.js';

const fixture = useGatewayFixture();

function startGateway(target: string, overrides: Record<string, any> = {}): Promise<GatewayProcess> {
  return fixture.start(baseConfig(fixture.workspace, target, { analytics: { detailedRecording: 'headers' }, ...overrides }));
}

/** A back end answering every request `200` with its method and URL, after reading the whole body. */
function echoBackend(): Promise<Backend> {
  return fixture.backend((request, response) => {
    request.resume();
    request.on('end', () => response.end(`${request.method} ${request.url}`));
  });
}

/** A client connection that writes hand-made bytes and keeps everything the gateway answers. */
class RawClient {
  received = '';
  /** Set when the gateway ended its side of the connection. */
  ended = false;
  readonly closed: Promise<void>;

  private constructor(readonly socket: Socket) {
    socket.on('data', (chunk: Buffer) => (this.received += chunk.toString('latin1')));
    socket.on('end', () => (this.ended = true));
    socket.on('error', () => undefined);
    this.closed = once(socket, 'close').then(() => undefined);
  }

  static async open(url: string): Promise<RawClient> {
    const { hostname, port } = new URL(url);
    const socket = connect(Number(port), hostname);
    await once(socket, 'connect');
    return new RawClient(socket);
  }

  send(bytes: string): void {
    this.socket.write(bytes, 'latin1');
  }

  /** The complete responses received so far (Content-Length framed, as the gateway and these back ends send them). */
  responses(): { head: string; body: string }[] {
    const parsed: { head: string; body: string }[] = [];
    let rest = this.received;
    for (;;) {
      const headEnd = rest.indexOf('\r\n\r\n');
      if (headEnd === -1) return parsed;
      const head = rest.slice(0, headEnd + 2);
      const length = Number(/\r\ncontent-length: *(\d+)\r\n/i.exec(head)?.[1] ?? 0);
      if (rest.length < headEnd + 4 + length) return parsed;
      parsed.push({ head, body: rest.slice(headEnd + 4, headEnd + 4 + length) });
      rest = rest.slice(headEnd + 4 + length);
    }
  }

  /** Waits for `count` complete responses. */
  async awaitResponses(count: number): Promise<{ head: string; body: string }[]> {
    return eventually(async () => (this.responses().length >= count ? this.responses() : undefined), 5_000, `${count} response(s)`);
  }
}

function correlationIdOf(head: string): string {
  const id = /\r\nX-Correlation-ID: ([0-9a-f]{24})\r\n/i.exec(head)?.[1];
  if (id === undefined) throw new Error(`no X-Correlation-ID in:\n${head}`);
  return id;
}


/** A back end that keeps each request body it receives and answers with `answer`. */
async function bodyCollectingBackend(answer: (request: IncomingMessage, body: string) => string): Promise<{ bodies: string[]; backend: Backend }> {
  const bodies: string[] = [];
  const backend = await fixture.backend((request, response) => {
    let body = '';
    request.setEncoding('latin1');
    request.on('data', (chunk: string) => (body += chunk));
    request.on('end', () => {
      bodies.push(body);
      response.end(answer(request, body));
    });
  });
  return { bodies, backend };
}

/** The transactions by request path (each path is requested once per test). */
function byPath(transactions: TransactionLines[]): Map<string, TransactionLines> {
  return new Map(transactions.map((transaction) => [transaction.summary.path as string, transaction]));
}

describe('pipelined requests', () => {
  it('never forwards a request pipelined behind an HTTP/1.1 request without Host, records it as never answered, and stops at once', async () => {
    const backend = await echoBackend();
    const gw = await startGateway(backend.url, { gateway: { shutdownTimeoutMs: 10_000 } });
    const client = await RawClient.open(gw.url);
    client.send('GET /api/decoy HTTP/1.1\r\n\r\nGET /api/follow HTTP/1.1\r\nHost: x\r\n\r\n');

    const [refusal] = await client.awaitResponses(1);
    expect(refusal!.head).toMatch(/^HTTP\/1.1 400 Bad Request\r\n/);
    expect(refusal!.head).toMatch(/\r\nConnection: close\r\n/i);
    await eventually(async () => (client.ended ? true : undefined), 5_000, 'the gateway to close the connection');
    client.socket.end();
    await client.closed;
    expect(client.responses()).toHaveLength(1);

    // Nothing is left in flight, so the stop does not wait for shutdownTimeoutMs (10 s).
    const stopStarted = performance.now();
    const transactions = [...(await fixture.transactionsAfterStop()).values()];
    expect(performance.now() - stopStarted).toBeLessThan(3_000);
    expect(gw.stderr).toMatch(/stopping: 0 request\(s\) in flight/);
    expect(gw.stderr).not.toMatch(/still in flight/);

    expect(backend.seen).toEqual([]);
    expect(transactions).toHaveLength(2);
    const decoy = byPath(transactions).get('/api/decoy');
    const follow = byPath(transactions).get('/api/follow');
    expect(decoy!.lines[0]!.correlationId).toBe(correlationIdOf(refusal!.head));
    expect(decoy!.summary).toMatchObject({ httpStatus: 400, failureReason: 'malformed-request' });
    // The head recorded is the one written, with what Node adds: the decoy's connection closed.
    expect(decoy!.legs[0]!.protocolInfo.sentHeader.trimEnd()).toBe(refusal!.head.trimEnd());
    expect(decoy!.legs[0]!.protocolInfo.sentHeader).toMatch(/\r\nConnection: close\r\n/);
    expect(follow!.summary).toMatchObject({ httpStatus: 0, status: 'exception', failureReason: 'client-aborted-request' });
    expect(follow!.summary.failureMessage).toMatch(/nothing was forwarded/);
    expect(follow!.legs).toHaveLength(1);
    expect(follow!.legs[0]).toMatchObject({ finalStatus: 'Error', protocolInfo: { http: { uri: '/api/follow' } } });
  });

  it('answers and records a request with Connection: close, and never forwards the one pipelined behind it', async () => {
    const backend = await echoBackend();
    await startGateway(backend.url);
    const client = await RawClient.open(fixture.gateway!.url);
    client.send('GET /api/first HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\nGET /api/second HTTP/1.1\r\nHost: x\r\n\r\n');

    await client.closed;
    const responses = client.responses();
    expect(responses).toHaveLength(1);
    expect(responses[0]!.head).toMatch(/^HTTP\/1.1 200 OK\r\n/);
    expect(responses[0]!.head).toMatch(/\r\nConnection: close\r\n/i);
    expect(responses[0]!.body).toBe('GET /first');

    const transactions = [...(await fixture.transactionsAfterStop()).values()];
    expect(backend.seen.map((seen) => seen.url)).toEqual(['/first']);
    expect(transactions).toHaveLength(2);
    const first = byPath(transactions).get('/api/first');
    const second = byPath(transactions).get('/api/second');
    expect(first!.lines[0]!.correlationId).toBe(correlationIdOf(responses[0]!.head));
    expect(first!.summary).toMatchObject({ path: '/api/first', httpStatus: 200, status: 'success', failureReason: null });
    expect(second!.summary).toMatchObject({ path: '/api/second', httpStatus: 0, status: 'exception', failureReason: 'client-aborted-request' });
    expect(second!.summary.failureMessage).toMatch(/nothing was forwarded/);
    expect(second!.legs).toHaveLength(1);
  });

  it('finishes an answer under way when the client sends another request after Connection: close, which it records as never answered', async () => {
    let finishFirst = (): void => undefined;
    const backend = await fixture.backend((_, response) => {
      response.writeHead(200, { 'content-type': 'text/plain', 'content-length': '16' });
      response.write('part one');
      finishFirst = () => response.end(', part 2');
    });
    await startGateway(backend.url);
    const client = await RawClient.open(fixture.gateway!.url);
    client.send('GET /api/first HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n');
    await eventually(async () => (client.received.endsWith('\r\n\r\npart one') ? true : undefined), 5_000, 'the first part of the answer');
    client.send('GET /api/second HTTP/1.1\r\nHost: x\r\n\r\n');
    await eventually(
      async () => (byPath([...byTransaction(await fixture.workspace.logLines()).values()]).has('/api/second') ? true : undefined),
      5_000,
      'the second request to be recorded',
    );
    finishFirst();

    await client.closed;
    const responses = client.responses();
    expect(responses).toHaveLength(1);
    expect(responses[0]!.body).toBe('part one, part 2');
    const transactions = byPath([...(await fixture.transactionsAfterStop()).values()]);
    expect(backend.seen.map((seen) => seen.url)).toEqual(['/first']);
    expect(transactions.get('/api/first')!.summary).toMatchObject({ httpStatus: 200, status: 'success', failureReason: null });
    expect(transactions.get('/api/second')!.summary).toMatchObject({ httpStatus: 0, failureReason: 'client-aborted-request' });
  });

  it('answers pipelined requests on a keep-alive connection in order, each forwarded and recorded', async () => {
    const backend = await echoBackend();
    await startGateway(backend.url);
    const client = await RawClient.open(fixture.gateway!.url);
    client.send('GET /api/one HTTP/1.1\r\nHost: x\r\n\r\nGET /api/two HTTP/1.1\r\nHost: x\r\n\r\n');

    const responses = await client.awaitResponses(2);
    expect(responses.map((response) => response.body)).toEqual(['GET /one', 'GET /two']);
    for (const response of responses) {
      expect(response.head).toMatch(/^HTTP\/1.1 200 OK\r\n/);
      expect(response.head).not.toMatch(/\r\nConnection: close\r\n/i);
    }
    expect(client.ended).toBe(false);
    client.socket.end();
    await client.closed;

    const transactions = [...(await fixture.transactionsAfterStop()).values()];
    expect(backend.seen.map((seen) => seen.url)).toEqual(['/one', '/two']);
    expect(transactions.map((transaction) => transaction.lines[0]!.correlationId)).toEqual(responses.map((response) => correlationIdOf(response.head)));
    expect(transactions.map((transaction) => [transaction.summary.path, transaction.summary.httpStatus, transaction.summary.failureReason])).toEqual([
      ['/api/one', 200, null],
      ['/api/two', 200, null],
    ]);
  });
});

// What `curl --http2 http://...` sends: an offer to switch to HTTP/2 over cleartext.
const H2C_OFFER = 'Connection: Upgrade, HTTP2-Settings\r\nUpgrade: h2c\r\nHTTP2-Settings: AAMAAABkAARAAAAAAAIAAAAA\r\n';

describe('an Upgrade other than WebSocket', () => {
  it('proxies a GET offering h2c as a plain HTTP/1.1 request and records the headers as the client sent them', async () => {
    const backend = await echoBackend();
    await startGateway(backend.url);
    const client = await RawClient.open(fixture.gateway!.url);
    client.send(`GET /api/h2c HTTP/1.1\r\nHost: x\r\nUser-Agent: curl/7.88.1\r\nAccept: */*\r\n${H2C_OFFER}\r\n`);

    const [answer] = await client.awaitResponses(1);
    expect(answer!.head).toMatch(/^HTTP\/1.1 200 OK\r\n/);
    expect(answer!.body).toBe('GET /h2c');
    // The connection goes on as HTTP/1.1.
    client.send('GET /api/after HTTP/1.1\r\nHost: x\r\n\r\n');
    const [, after] = await client.awaitResponses(2);
    expect(after!.body).toBe('GET /after');
    client.socket.end();
    await client.closed;

    const transactions = [...(await fixture.transactionsAfterStop()).values()];
    const seen = backend.seen[0]!;
    expect(seen.headers.upgrade).toBeUndefined();
    expect(seen.headers['http2-settings']).toBeUndefined();
    expect(seen.headers.connection).not.toMatch(/upgrade|http2-settings/i);
    expect(seen.headers['user-agent']).toBe('curl/7.88.1');
    const transaction = transactions.find((one) => one.lines[0]!.correlationId === correlationIdOf(answer!.head))!;
    expect(transaction.summary).toMatchObject({ path: '/api/h2c', httpStatus: 200, status: 'success', upgraded: false, failureReason: null });
    expect(transaction.legs[0]!.protocolInfo.recvHeader).toBe(
      `GET /api/h2c HTTP/1.1\r\nHost: x\r\nUser-Agent: curl/7.88.1\r\nAccept: */*\r\n${H2C_OFFER}\r\n`,
    );
    expect(transaction.legs[1]!.protocolInfo.sentHeader).not.toMatch(/upgrade|http2-settings/i);
  });

  it('proxies a POST offering h2c with its body intact', async () => {
    const { bodies, backend } = await bodyCollectingBackend((_, body) => `got ${body.length} bytes`);
    await startGateway(backend.url);
    const body = '{"name":"Rex","kind":"dog"}';
    const client = await RawClient.open(fixture.gateway!.url);
    client.send(`POST /api/pets HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: ${body.length}\r\n${H2C_OFFER}\r\n${body}`);

    const [answer] = await client.awaitResponses(1);
    expect(answer!.head).toMatch(/^HTTP\/1.1 200 OK\r\n/);
    expect(answer!.body).toBe(`got ${body.length} bytes`);
    client.socket.end();
    await client.closed;

    const [transaction] = [...(await fixture.transactionsAfterStop()).values()];
    expect(bodies).toEqual([body]);
    expect(backend.seen[0]).toMatchObject({ method: 'POST', url: '/pets' });
    expect(backend.seen[0]!.headers.upgrade).toBeUndefined();
    expect(backend.seen[0]!.headers['http2-settings']).toBeUndefined();
    expect(transaction!.summary).toMatchObject({ method: 'POST', httpStatus: 200, upgraded: false, failureReason: null });
    expect(transaction!.legs[0]!.protocolInfo.recvHeader).toMatch(/\r\nUpgrade: h2c\r\n/);
    expect(transaction!.legs[0]!.protocolInfo.http.bytesReceived).toBe(body.length);
    expect(transaction!.legs[1]!.protocolInfo.http.bytesSent).toBe(body.length);
  });
  it('answers curl --http2 over HTTP/1.1, with the POST body at the back end', async () => {
    expect(spawnSync('curl', ['--version']).status, 'this test runs curl: install it (Debian package curl)').toBe(0);
    const { bodies, backend } = await bodyCollectingBackend((request, body) => `${request.method} ${request.url} ${body}`);
    const gw = await startGateway(backend.url);
    const { stdout } = await promisify(execFile)('curl', ['--http2', '-sS', '-i', '--data-binary', 'a=1&b=2', `${gw.url}/api/form`]);

    expect(stdout).toMatch(/^HTTP\/1.1 200 OK\r\n/);
    expect(stdout.endsWith('\r\n\r\nPOST /form a=1&b=2')).toBe(true);
    const [transaction] = [...(await fixture.transactionsAfterStop()).values()];
    expect(bodies).toEqual(['a=1&b=2']);
    expect(backend.seen[0]!.headers.upgrade).toBeUndefined();
    expect(transaction!.summary).toMatchObject({ method: 'POST', httpStatus: 200, upgraded: false, failureReason: null });
    expect(transaction!.legs[0]!.protocolInfo.recvHeader).toMatch(/\r\nUpgrade: h2c\r\n/);
  });
});

describe('CONNECT', () => {
  it('answers 405, closes the connection and records it as a malformed request', async () => {
    const backend = await echoBackend();
    const gw = await startGateway(backend.url);
    const answer = await rawExchange(gw.url, 'CONNECT example.com:443 HTTP/1.1\r\nHost: example.com:443\r\n\r\n');
    expect(answer).toMatch(/^HTTP\/1.1 405 Method Not Allowed\r\n/);
    expect(answer).toMatch(/\r\nConnection: close\r\n/i);

    const transactions = [...(await fixture.transactionsAfterStop()).values()];
    expect(backend.seen).toEqual([]);
    expect(transactions).toHaveLength(1);
    expect(transactions[0]!.lines[0]!.correlationId).toBe(correlationIdOf(answer));
    expect(transactions[0]!.summary).toMatchObject({ method: 'CONNECT', httpStatus: 405, status: 'failure', failureReason: 'malformed-request' });
    expect(transactions[0]!.summary.failureMessage).toMatch(/CONNECT/);
  });
});

describe('draining at shutdown', () => {
  it('answers with Connection: close while requests in flight drain, closes idle connections at once, and exits 0', async () => {
    const held = new Map<string, () => void>();
    const backend = await fixture.backend((request, response) => {
      if (request.url === '/slow') held.set(request.url, () => response.end('slow and whole'));
      else response.end(`GET ${request.url}`);
    });
    const gw = await startGateway(backend.url, { gateway: { shutdownTimeoutMs: 10_000 } });
    const slow = await RawClient.open(gw.url);
    slow.send('GET /api/slow HTTP/1.1\r\nHost: x\r\n\r\n');
    await eventually(async () => (held.has('/slow') ? true : undefined), 5_000, 'the slow request at the back end');
    const idle = await RawClient.open(gw.url);
    idle.send('GET /api/idle HTTP/1.1\r\nHost: x\r\n\r\n');
    await idle.awaitResponses(1);
    // The second request's first bytes come with the first request, so the connection is never
    // idle (an idle one is closed at SIGTERM, as `idle` shows) and the gateway has read them once it answers.
    const keepAlive = await RawClient.open(gw.url);
    keepAlive.send('GET /api/before HTTP/1.1\r\nHost: x\r\n\r\nGET /api/during HTTP/1.1\r\n');
    const [before] = await keepAlive.awaitResponses(1);
    expect(before!.head).toMatch(/\r\nConnection: keep-alive\r\n/i);

    gw.child.kill('SIGTERM');
    await eventually(async () => (/stopping: 1 request\(s\) in flight/.test(gw.stderr) ? true : undefined), 5_000, 'the gateway to start draining');
    await idle.closed;
    expect(idle.responses()).toHaveLength(1);
    keepAlive.send('Host: x\r\n\r\n');
    await keepAlive.closed;
    const [, during] = keepAlive.responses();
    expect(during?.head).toMatch(/^HTTP\/1.1 200 OK\r\n/);
    expect(during!.head).toMatch(/\r\nConnection: close\r\n/i);
    expect(during!.body).toBe('GET /during');
    expect(gw.child.exitCode).toBeNull();

    held.get('/slow')!();
    await slow.closed;
    const [slowAnswer] = slow.responses();
    expect(slowAnswer!.head).toMatch(/\r\nConnection: close\r\n/i);
    expect(slowAnswer!.body).toBe('slow and whole');
    expect(await gw.exited).toBe(0);
    const transactions = [...byTransaction(await fixture.workspace.logLines()).values()];
    expect(transactions.map((transaction) => [transaction.summary.path, transaction.summary.httpStatus, transaction.summary.failureReason])).toEqual([
      ['/api/idle', 200, null],
      ['/api/before', 200, null],
      ['/api/during', 200, null],
      ['/api/slow', 200, null],
    ]);
  });
});
