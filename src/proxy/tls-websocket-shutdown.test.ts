import { once } from 'node:events';
import type { IncomingMessage } from 'node:http';
import { connect, type AddressInfo, type Socket } from 'node:net';
import { Agent, request } from 'undici';
import { describe, expect, it } from 'vitest';
import WebSocket, { WebSocketServer } from 'ws';
import { baseConfig, deadPort } from '../../test/support/backends.js';
import { useGatewayFixture } from '../../test/support/fixture.js';
import { byTransaction, eventually, rawExchange, type GatewayProcess } from '../../test/support/gateway-process.js';

const fixture = useGatewayFixture();

function startGateway(target: string, overrides: Record<string, any> = {}): Promise<GatewayProcess> {
  return fixture.start(baseConfig(fixture.workspace, target, overrides));
}

/** A WebSocket back end that greets each client and echoes what it gets. */
async function startEchoSocketServer(): Promise<{ url: string; upgrades: IncomingMessage[] }> {
  const server = new WebSocketServer({ host: '127.0.0.1', port: 0 });
  await once(server, 'listening');
  const upgrades: IncomingMessage[] = [];
  server.on('connection', (socket, upgrade) => {
    upgrades.push(upgrade);
    socket.send('welcome');
    socket.on('message', (data) => socket.send(`echo:${String(data)}`));
  });
  fixture.onCleanup(async () => {
    for (const client of server.clients) client.terminate();
    await new Promise<void>((resolve) => server.close(() => resolve()));
  });
  return { url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`, upgrades };
}

/**
 * Queues a socket's messages from the start: the back end's greeting can arrive with the 101 and
 * be emitted before an `await` on the upgrade has resumed.
 */
function inbox(socket: WebSocket): () => Promise<string> {
  const queued: string[] = [];
  const waiting: ((message: string) => void)[] = [];
  socket.on('message', (data) => {
    const next = waiting.shift();
    if (next) next(String(data));
    else queued.push(String(data));
  });
  return () => (queued.length > 0 ? Promise.resolve(queued.shift() as string) : new Promise((resolve) => waiting.push(resolve)));
}

function openSocket(url: string): Promise<Socket> {
  const { hostname, port } = new URL(url);
  return new Promise((resolve, reject) => {
    const socket = connect(Number(port), hostname, () => resolve(socket));
    socket.once('error', reject);
  });
}

/** Whether a new TCP connection to the gateway is refused. */
function refusesConnections(url: string): Promise<boolean> {
  const { hostname, port } = new URL(url);
  return new Promise((resolve) => {
    const socket = connect(Number(port), hostname, () => {
      socket.destroy();
      resolve(false);
    });
    socket.once('error', (error: Error & { code?: string }) => resolve(error.code === 'ECONNREFUSED'));
  });
}

describe('TLS listener', () => {
  it('serves HTTPS with the configured certificate and tells the back end the client used https', async () => {
    const echo = await fixture.backend((_, response) => response.end('over tls'));
    const gw = await startGateway(echo.url, { gateway: { tls: await fixture.workspace.selfSignedCertificate() } });
    expect(gw.url).toMatch(/^https:\/\/127\.0\.0\.1:\d+$/);
    const agent = new Agent({ connect: { rejectUnauthorized: false } });
    fixture.onCleanup(() => agent.close());

    const response = await request(`${gw.url}/api/secure`, { dispatcher: agent });
    expect(response.statusCode).toBe(200);
    expect(await response.body.text()).toBe('over tls');
    expect(echo.seen[0]!.headers['x-forwarded-proto']).toBe('https');

    await gw.stop();
    const transaction = byTransaction(await fixture.workspace.logLines()).get(response.headers['x-correlation-id'] as string)!;
    expect(transaction.summary).toMatchObject({ protocol: 'https', status: 'success', httpStatus: 200 });
  });

  it('refuses a plain HTTP request on the TLS port', async () => {
    const echo = await fixture.backend((_, response) => response.end('never'));
    const gw = await startGateway(echo.url, { gateway: { tls: await fixture.workspace.selfSignedCertificate() } });
    await expect(request(`${gw.url.replace('https:', 'http:')}/api/x`)).rejects.toThrow();
    expect(echo.seen).toHaveLength(0);
  });
});

describe('WebSocket upgrade', () => {
  it('joins client and back end both ways and records the connection as one upgraded transaction', async () => {
    const server = await startEchoSocketServer();
    const gw = await startGateway(server.url, { api: { tags: ['realtime'], tagHeaders: ['X-Team'] } });
    const client = new WebSocket(`${gw.url.replace('http:', 'ws:')}/api/chat`, { headers: { 'X-Team': 'blue' } });
    fixture.onCleanup(async () => client.terminate());
    const nextMessage = inbox(client);
    const [upgrade] = (await once(client, 'upgrade')) as [IncomingMessage];
    const id = upgrade.headers['x-correlation-id'] as string;

    expect(await nextMessage()).toBe('welcome');
    client.send('hello');
    expect(await nextMessage()).toBe('echo:hello');
    client.close(1000, 'done');
    const [code] = (await once(client, 'close')) as [number];
    expect(code).toBe(1000);

    expect(id).toMatch(/^[0-9a-f]{24}$/);
    expect(server.upgrades[0]!.url).toBe('/chat');
    expect(server.upgrades[0]!.headers['x-correlation-id']).toBe(id);
    await gw.stop();
    const transactions = byTransaction(await fixture.workspace.logLines());
    expect([...transactions.keys()]).toEqual([id]);
    const { summary, legs } = transactions.get(id)!;
    expect(summary).toMatchObject({ httpStatus: 101, upgraded: true, status: 'success', failureReason: null, tags: ['x-team-blue', 'realtime'] });
    expect(legs).toHaveLength(2);
    for (const leg of legs) {
      expect(leg.finalStatus).toBe('Pass');
      expect(leg.protocolInfo.http.bytesSent).toBeGreaterThan(0);
      expect(leg.protocolInfo.http.bytesReceived).toBeGreaterThan(0);
    }
  });

  it('answers the handshake with 502 and a JSON body when the back end is down, recorded as an upgrade that failed to connect', async () => {
    const gw = await startGateway(`http://127.0.0.1:${await deadPort()}`);
    const answer = await rawExchange(
      gw.url,
      `GET /api/chat HTTP/1.1\r\nHost: ${new URL(gw.url).host}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n` +
        'Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n',
    );
    expect(answer).toMatch(/^HTTP\/1.1 502 Bad Gateway\r\n/);
    expect(answer).toMatch(/\r\nContent-Type: application\/json\r\n/i);
    const id = /\r\nX-Correlation-ID: ([0-9a-f]{24})\r\n/i.exec(answer)?.[1];
    const body = JSON.parse(answer.slice(answer.indexOf('\r\n\r\n') + 4)) as { error: string; correlationId: string };
    expect(body).toEqual({ error: 'the back end refused the upgrade (upstream-connect-failed)', correlationId: id });

    await gw.stop();
    const transactions = byTransaction(await fixture.workspace.logLines());
    expect([...transactions.keys()]).toEqual([id]);
    const { summary, legs } = transactions.get(id!)!;
    expect(summary).toMatchObject({ upgraded: true, httpStatus: 502, status: 'exception', failureReason: 'upstream-connect-failed' });
    expect(legs.map((leg) => leg.finalStatus)).toEqual(['Fail', 'Error']);
    expect(legs[1]!.error).toMatch(/ECONNREFUSED/);
  });

  it('stops waiting for the back end when the client resets during the handshake, and records it', async () => {
    const handshakes: Socket[] = [];
    const slow = await fixture.backend(() => undefined);
    slow.server.on('upgrade', (_: IncomingMessage, socket: Socket) => {
      socket.on('error', () => undefined);
      handshakes.push(socket);
    });
    fixture.onCleanup(async () => handshakes.forEach((socket) => socket.destroy()));
    const gw = await startGateway(slow.url, { gateway: { shutdownTimeoutMs: 1_000 } });
    const client = await openSocket(gw.url);
    client.on('error', () => undefined);
    client.write(
      `GET /api/chat HTTP/1.1\r\nHost: ${new URL(gw.url).host}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n` +
        'Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n',
    );
    await eventually(async () => (handshakes.length === 1 ? true : undefined), 5_000, 'the handshake at the back end');
    client.resetAndDestroy();

    // The back end never answers: the gateway gives up its handshake when the client leaves.
    const transaction = await eventually(async () => [...byTransaction(await fixture.workspace.logLines()).values()][0], 5_000, 'the transaction');
    expect(transaction.summary).toMatchObject({ upgraded: true, httpStatus: 0, status: 'exception', failureReason: 'client-aborted-request' });
    expect(transaction.legs.map((leg) => leg.finalStatus)).toEqual(['Error', 'Error']);
  });
});

describe('graceful shutdown', () => {
  it('stops accepting on SIGTERM, finishes the request in flight and records it before exiting', async () => {
    let answer = (): void => undefined;
    const slow = await fixture.backend((_, response) => {
      answer = () => response.end('late but whole');
    });
    const gw = await startGateway(slow.url);
    const pending = request(`${gw.url}/api/slow`);
    await eventually(async () => (slow.seen.length === 1 ? true : undefined), 5_000, 'the request at the back end');

    const exited = gw.stop();
    await eventually(async () => ((await refusesConnections(gw.url)) ? true : undefined), 5_000, 'the gateway to stop accepting');
    expect(gw.child.exitCode).toBeNull();
    answer();
    const response = await pending;
    expect(response.statusCode).toBe(200);
    expect(await response.body.text()).toBe('late but whole');
    expect(await exited).toBe(0);

    const transactions = byTransaction(await fixture.workspace.logLines());
    expect(transactions.size).toBe(1);
    expect(transactions.get(response.headers['x-correlation-id'] as string)!.summary).toMatchObject({
      status: 'success',
      httpStatus: 200,
      failureReason: null,
    });
  });

  it('cuts a request still in flight when shutdownTimeoutMs has passed, records it as gateway-shutdown and exits 0', async () => {
    const silent = await fixture.backend(() => undefined);
    const gw = await startGateway(silent.url, { gateway: { shutdownTimeoutMs: 300 } });
    const outcome = request(`${gw.url}/api/never`).then(
      (response) => response.statusCode,
      (error: Error) => error,
    );
    await eventually(async () => (silent.seen.length === 1 ? true : undefined), 5_000, 'the request at the back end');

    expect(await gw.stop()).toBe(0);
    expect(await outcome).toBeInstanceOf(Error);
    const transactions = [...byTransaction(await fixture.workspace.logLines()).values()];
    expect(transactions).toHaveLength(1);
    expect(transactions[0]!.summary).toMatchObject({ status: 'exception', failureReason: 'gateway-shutdown', httpStatus: 0 });
    expect(transactions[0]!.legs.map((leg) => leg.finalStatus)).toEqual(['Error', 'Error']);
  });

  it('closes a WebSocket still open when shutdownTimeoutMs has passed, records it and exits 0', async () => {
    const server = await startEchoSocketServer();
    const gw = await startGateway(server.url, { gateway: { shutdownTimeoutMs: 300 } });
    const client = new WebSocket(`${gw.url.replace('http:', 'ws:')}/api/chat`);
    fixture.onCleanup(async () => client.terminate());
    const nextMessage = inbox(client);
    const [upgrade] = (await once(client, 'upgrade')) as [IncomingMessage];
    expect(await nextMessage()).toBe('welcome');
    const closed = once(client, 'close');

    expect(await gw.stop()).toBe(0);
    await closed;
    const transactions = byTransaction(await fixture.workspace.logLines());
    expect([...transactions.keys()]).toEqual([upgrade.headers['x-correlation-id']]);
    expect([...transactions.values()][0]!.summary).toMatchObject({ httpStatus: 101, upgraded: true, failureReason: 'gateway-shutdown' });
  });
});
