import { connect, type Socket } from 'node:net';
import { request } from 'undici';
import { describe, expect, it } from 'vitest';
import { baseConfig, deadPort } from '../../test/support/backends.js';
import { useGatewayFixture } from '../../test/support/fixture.js';
import { byTransaction, eventually, type GatewayProcess, type TransactionLines } from '../../test/support/gateway-process.js';

const fixture = useGatewayFixture();

function startGateway(target: string, overrides: Record<string, any> = {}): Promise<GatewayProcess> {
  return fixture.start(baseConfig(fixture.workspace, target, overrides));
}


/** The one transaction in the log, once its summary line is there (the gateway keeps running). */
function loggedTransaction(): Promise<TransactionLines> {
  return eventually(async () => {
    const transactions = [...byTransaction(await fixture.workspace.logLines()).values()].filter((entry) => entry.summary.status !== undefined);
    return transactions.length > 0 ? transactions[0] : undefined;
  }, 5_000, 'the transaction in the traffic log');
}

function openSocket(url: string): Promise<Socket> {
  const { hostname, port } = new URL(url);
  return new Promise((resolve, reject) => {
    const socket = connect(Number(port), hostname, () => resolve(socket));
    socket.once('error', reject);
  });
}

/** Resolves with everything the socket has received once `done` holds for it. */
function readUntil(socket: Socket, done: (text: string) => boolean): Promise<string> {
  return new Promise((resolve, reject) => {
    let text = '';
    socket.on('data', (chunk: Buffer) => {
      text += chunk.toString('latin1');
      if (done(text)) resolve(text);
    });
    socket.once('close', () => reject(new Error(`connection closed after: ${text}`)));
  });
}

describe('upstream failures', () => {
  it('answers 502 with a JSON error when the back end refuses the connection, and records it as an exception', async () => {
    const gw = await startGateway(`http://127.0.0.1:${await deadPort()}`);
    const response = await request(`${gw.url}/api/pets/1`);
    const body = (await response.body.json()) as { error: string; correlationId: string };
    const id = response.headers['x-correlation-id'] as string;

    expect(response.statusCode).toBe(502);
    expect(response.headers['content-type']).toBe('application/json');
    expect(id).toMatch(/^[0-9a-f]{24}$/);
    expect(body).toEqual({ error: 'the back end could not be reached (upstream-connect-failed)', correlationId: id });

    const transaction = await fixture.onlyTransactionAfterStop();
    expect(transaction.lines[0]!.correlationId).toBe(id);
    expect(transaction.summary).toMatchObject({ status: 'exception', failureReason: 'upstream-connect-failed', httpStatus: 502 });
    expect(transaction.summary.serviceContexts[0].status).toBe('exception');
    expect(transaction.legs).toHaveLength(2);
    expect(transaction.legs[0]).toMatchObject({ finalStatus: 'Fail', protocolInfo: { http: { status: 502 } } });
    expect(transaction.legs[1]).toMatchObject({ finalStatus: 'Error', protocolInfo: { http: { status: 0 } } });
    expect(transaction.legs[1]!.error).toMatch(/ECONNREFUSED/);
  });

  it('answers 404 for a path no API listens on and records it as a failure without an API', async () => {
    const unused = await fixture.backend((_, response) => response.end('never'));
    const gw = await startGateway(unused.url);
    const response = await request(`${gw.url}/nowhere/else?x=1`);
    const body = (await response.body.json()) as { error: string; correlationId: string };

    expect(response.statusCode).toBe(404);
    expect(body).toEqual({ error: 'no API listens on /nowhere/else', correlationId: response.headers['x-correlation-id'] });
    expect(unused.seen).toHaveLength(0);
    const transaction = await fixture.onlyTransactionAfterStop();
    expect(transaction.summary).toMatchObject({
      status: 'failure',
      failureReason: 'no-route',
      httpStatus: 404,
      serviceContexts: [],
      apiId: null,
      path: '/nowhere/else',
    });
    expect(transaction.legs).toHaveLength(1);
    expect(transaction.legs[0]!.finalStatus).toBe('Fail');
    expect(transaction.circuitPath[0]).toMatchObject({ policy: 'No API', filters: [{ name: 'route', status: 'Fail' }] });
  });

  it('records client-aborted-request when the client hangs up halfway through the request body, and cuts the back-end request', async () => {
    let backendRequestComplete: Promise<boolean> = new Promise(() => undefined);
    const sink = await fixture.backend((incoming) => {
      backendRequestComplete = new Promise((resolve) => incoming.once('close', () => resolve(incoming.complete)));
    });
    const gw = await startGateway(sink.url);
    const socket = await openSocket(gw.url);
    const part = Buffer.alloc(64 * 1024, 0x62);
    socket.write(
      `POST /api/upload HTTP/1.1\r\nHost: ${new URL(gw.url).host}\r\nContent-Type: application/octet-stream\r\nContent-Length: 1000000\r\n\r\n`,
    );
    socket.write(part);
    await eventually(async () => ((sink.seen[0]?.bodyBytes ?? 0) > 0 ? true : undefined), 5_000, 'the back end to receive body bytes');
    socket.destroy();

    const transaction = await loggedTransaction();
    expect(transaction.summary).toMatchObject({ status: 'exception', failureReason: 'client-aborted-request', httpStatus: 0, method: 'POST' });
    expect(transaction.legs).toHaveLength(2);
    expect(transaction.legs[0]!.finalStatus).toBe('Error');
    expect(transaction.legs[0]!.protocolInfo.http.bytesReceived).toBeGreaterThan(0);
    expect(transaction.legs[0]!.protocolInfo.http.bytesReceived).toBeLessThanOrEqual(part.length);
    expect(transaction.legs[1]!.finalStatus).toBe('Error');
    expect(await backendRequestComplete).toBe(false);
  });

  it('records client-aborted-response when the client hangs up while the response streams, and cuts the back-end response', async () => {
    let backendResponseClosed: Promise<void> = new Promise(() => undefined);
    const streaming = await fixture.backend((_, response) => {
      response.writeHead(200, { 'content-type': 'text/plain' });
      response.write('first-chunk');
      const more = setInterval(() => response.write('more'), 100);
      backendResponseClosed = new Promise((resolve) =>
        response.once('close', () => {
          clearInterval(more);
          resolve();
        }),
      );
    });
    const gw = await startGateway(streaming.url);
    const socket = await openSocket(gw.url);
    const received = readUntil(socket, (text) => text.includes('first-chunk'));
    socket.write(`GET /api/stream HTTP/1.1\r\nHost: ${new URL(gw.url).host}\r\n\r\n`);
    const head = await received;
    socket.destroy();
    const id = /x-correlation-id: ([0-9a-f]{24})/i.exec(head)?.[1];
    expect(head).toMatch(/^HTTP\/1.1 200 OK\r\n/);

    const transaction = await loggedTransaction();
    expect(transaction.lines[0]!.correlationId).toBe(id);
    expect(transaction.summary).toMatchObject({ status: 'exception', failureReason: 'client-aborted-response', httpStatus: 200 });
    expect(transaction.legs[0]!.finalStatus).toBe('Error');
    expect(transaction.legs[0]!.protocolInfo.http.bytesSent).toBeGreaterThanOrEqual('first-chunk'.length);
    expect(transaction.legs[1]!.finalStatus).toBe('Error');
    await backendResponseClosed;
  });

  it('cuts the client connection and records upstream-reset when the back end resets after the headers', async () => {
    let reset = (): void => undefined;
    const flaky = await fixture.backend((incoming, response) => {
      response.writeHead(200, { 'content-type': 'text/plain', 'content-length': '100000' });
      response.write('partial');
      reset = () => incoming.socket.resetAndDestroy();
    });
    const gw = await startGateway(flaky.url);
    const response = await request(`${gw.url}/api/download`);
    expect(response.statusCode).toBe(200);
    const chunks = response.body[Symbol.asyncIterator]();
    expect(((await chunks.next()).value as Buffer).toString()).toBe('partial');
    reset();
    await expect(chunks.next()).rejects.toThrow();

    const transaction = await fixture.onlyTransactionAfterStop();
    expect(transaction.lines[0]!.correlationId).toBe(response.headers['x-correlation-id']);
    expect(transaction.summary).toMatchObject({ status: 'exception', failureReason: 'upstream-reset', httpStatus: 200 });
    expect(transaction.legs[0]!.finalStatus).toBe('Error');
    expect(transaction.legs[1]!.finalStatus).toBe('Error');
    expect(transaction.legs[1]!.protocolInfo.http.bytesReceived).toBe('partial'.length);
  });
});
