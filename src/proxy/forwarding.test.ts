import { createHash } from 'node:crypto';
import { connect } from 'node:net';
import { PassThrough } from 'node:stream';
import { request } from 'undici';
import { describe, expect, it } from 'vitest';
import { baseConfig, deadPort, type Backend } from '../../test/support/backends.js';
import { useGatewayFixture } from '../../test/support/fixture.js';
import { delay, eventually, rawExchange, type GatewayProcess } from '../../test/support/gateway-process.js';

const fixture = useGatewayFixture();

/** A back end that answers every request with its own name. */
function named(name: string): Promise<Backend> {
  return fixture.backend((_, response) => response.end(name));
}

function startGateway(target: string | string[], overrides: Record<string, any> = {}): Promise<GatewayProcess> {
  return fixture.start(baseConfig(fixture.workspace, target, overrides));
}


async function getText(url: string): Promise<{ status: number; text: string; id: string }> {
  const response = await request(url);
  return { status: response.statusCode, text: await response.body.text(), id: response.headers['x-correlation-id'] as string };
}

describe('forwarding to the back end', () => {
  it('answers Expect: 100-continue itself and sends the body on, with a Via header', async () => {
    const echo = await fixture.backend((incoming, response) => {
      let size = 0;
      incoming.on('data', (chunk: Buffer) => (size += chunk.length));
      incoming.on('end', () => response.end(JSON.stringify({ size, expect: incoming.headers.expect ?? null, via: incoming.headers.via })));
    });
    const gw = await startGateway(echo.url);
    const host = new URL(gw.url).host;
    const { hostname, port } = new URL(gw.url);
    const answer = await new Promise<string>((resolve, reject) => {
      const socket = connect(Number(port), hostname, () =>
        socket.write(`POST /api/upload HTTP/1.1\r\nHost: ${host}\r\nContent-Length: 5\r\nExpect: 100-continue\r\nVia: 1.0 client-proxy\r\nConnection: close\r\n\r\n`),
      );
      let text = '';
      socket.on('data', (chunk: Buffer) => {
        text += chunk.toString('latin1');
        if (text.startsWith('HTTP/1.1 100 Continue\r\n\r\n') && !text.includes('200')) socket.write('hello');
      });
      socket.once('end', () => resolve(text));
      socket.once('error', reject);
    });
    expect(answer).toMatch(/^HTTP\/1.1 100 Continue\r\n\r\nHTTP\/1.1 200 OK\r\n/);
    expect(JSON.parse(answer.slice(answer.lastIndexOf('\r\n\r\n') + 4))).toEqual({ size: 5, expect: null, via: '1.0 client-proxy, 1.1 tollgate' });
  });

  it('waits through interim 1xx responses for the final one', async () => {
    const early = await fixture.backend((_, response) => {
      response.writeEarlyHints({ link: '</style.css>; rel=preload; as=style' });
      setTimeout(() => response.end('final'), 20);
    });
    const gw = await startGateway(early.url);
    const { status, text, id } = await getText(`${gw.url}/api/page`);
    expect([status, text]).toEqual([200, 'final']);
    const transaction = (await fixture.transactionsAfterStop(1)).get(id)!;
    expect(transaction.summary).toMatchObject({ httpStatus: 200, failureReason: null });
  });

  it('routes and forwards the path with dot segments resolved, as the back end would read it', async () => {
    const api = await named('api');
    const admin = await named('admin');
    const gw = await startGateway(api.url, {
      apis: [
        { id: 'api', name: 'API', listenPath: '/api/', target: api.url },
        { id: 'admin', name: 'Admin', listenPath: '/admin/', target: admin.url, stripListenPath: false },
      ],
    });
    expect((await rawExchange(gw.url, 'GET /api/../admin/x HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n')).endsWith('admin')).toBe(true);
    expect((await rawExchange(gw.url, 'GET /api/%2e%2e/admin/y HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n')).endsWith('admin')).toBe(true);
    expect(admin.seen.map((seen) => seen.url)).toEqual(['/admin/x', '/admin/y']);
    expect(api.seen).toEqual([]);
  });

  it('adds correlation and forwarding headers, drops hop-by-hop headers and passes end-to-end ones', async () => {
    const echo = await fixture.backend((_, response) => response.end('ok'));
    const gw = await startGateway(echo.url);
    const host = new URL(gw.url).host;
    const response = await rawExchange(
      gw.url,
      `GET /api/things HTTP/1.1\r\nHost: ${host}\r\nConnection: close, X-Secret-Hop\r\nX-Secret-Hop: drop me\r\n` +
        `Keep-Alive: timeout=5\r\nTE: trailers\r\nProxy-Authorization: Basic c2VjcmV0\r\nUpgrade: h2c\r\n` +
        `X-Forwarded-For: 203.0.113.7\r\nX-Correlation-ID: spoofed\r\nAuthorization: Bearer token\r\nX-Custom: kept\r\nAccept: text/plain\r\n\r\n`,
    );
    const clientId = /\r\nX-Correlation-ID: (\S+)\r\n/i.exec(response)?.[1];

    expect(response).toMatch(/^HTTP\/1.1 200 OK\r\n/);
    expect(clientId).toMatch(/^[0-9a-f]{24}$/);
    expect(Math.abs(Number.parseInt(clientId!.slice(0, 8), 16) - Date.now() / 1000)).toBeLessThan(60);
    expect(echo.seen).toHaveLength(1);
    const seen = echo.seen[0]!.headers;
    expect(seen['x-correlation-id']).toBe(clientId);
    expect(seen['x-forwarded-for']).toBe('203.0.113.7, 127.0.0.1');
    expect(seen['x-forwarded-proto']).toBe('http');
    expect(seen['x-forwarded-host']).toBe(host);
    expect(seen.host).toBe(new URL(echo.url).host);
    for (const hop of ['x-secret-hop', 'keep-alive', 'te', 'proxy-authorization', 'upgrade']) expect(seen).not.toHaveProperty(hop);
    expect(seen.connection ?? '').not.toMatch(/x-secret-hop|close/i);
    expect(seen).toMatchObject({ authorization: 'Bearer token', 'x-custom': 'kept', accept: 'text/plain' });
  });

  it('sends the client address alone as X-Forwarded-For when the request carries none', async () => {
    const echo = await fixture.backend((_, response) => response.end('ok'));
    const gw = await startGateway(echo.url);
    expect((await getText(`${gw.url}/api/x`)).status).toBe(200);
    expect(echo.seen[0]!.headers['x-forwarded-for']).toBe('127.0.0.1');
  });

  it('drops hop-by-hop response headers and replaces a correlation id the back end sends', async () => {
    const answering = await fixture.backend((_, response) => {
      response.setHeader('Connection', 'X-Backend-Hop');
      response.setHeader('X-Backend-Hop', 'internal');
      response.setHeader('X-Correlation-ID', 'from-the-back-end');
      response.setHeader('X-Served-By', 'back end');
      response.end('ok');
    });
    const gw = await startGateway(answering.url);
    const response = await request(`${gw.url}/api/x`);
    await response.body.text();
    expect(response.headers['x-served-by']).toBe('back end');
    expect(response.headers).not.toHaveProperty('x-backend-hop');
    expect(response.headers['x-correlation-id']).toMatch(/^[0-9a-f]{24}$/);
  });

  it('strips the listen path or keeps it, keeps the query string and puts the target path in front', async () => {
    const echo = await fixture.backend((incoming, response) => response.end(incoming.url));
    const gw = await startGateway(echo.url, {
      apis: [
        { id: 'strip', name: 'Strip', listenPath: '/strip/', target: `${echo.url}/base` },
        { id: 'keep', name: 'Keep', listenPath: '/keep/', target: echo.url, stripListenPath: false },
      ],
    });
    expect((await getText(`${gw.url}/strip/items/7?x=1&y=a%20b`)).text).toBe('/base/items/7?x=1&y=a%20b');
    expect((await getText(`${gw.url}/strip`)).text).toBe('/base/');
    expect((await getText(`${gw.url}/keep/items/7?q=1`)).text).toBe('/keep/items/7?q=1');
    expect(echo.seen.map((seen) => seen.url)).toEqual(['/base/items/7?x=1&y=a%20b', '/base/', '/keep/items/7?q=1']);
  });

  it('routes to the longest matching listen path, and only on whole path segments', async () => {
    const v1 = await fixture.backend((incoming, response) => response.end(`v1 ${incoming.url}`));
    const v2 = await fixture.backend((incoming, response) => response.end(`v2 ${incoming.url}`));
    const gw = await startGateway(v1.url, {
      apis: [
        { id: 'api', name: 'API', listenPath: '/api/', target: v1.url },
        { id: 'api-v2', name: 'API v2', listenPath: '/api/v2/', target: v2.url },
      ],
    });
    const answers: Record<string, string> = {};
    for (const path of ['/api/v2/pets', '/api/v2', '/api/v1/pets', '/api/v2x']) answers[path] = (await getText(`${gw.url}${path}`)).text;
    expect(answers).toEqual({
      '/api/v2/pets': 'v2 /pets',
      '/api/v2': 'v2 /',
      '/api/v1/pets': 'v1 /v1/pets',
      '/api/v2x': 'v1 /v2x',
    });

    const transactions = [...(await fixture.transactionsAfterStop(4)).values()];
    expect(transactions.map((transaction) => [transaction.summary.path, transaction.summary.apiId])).toEqual([
      ['/api/v2/pets', 'api-v2'],
      ['/api/v2', 'api-v2'],
      ['/api/v1/pets', 'api'],
      ['/api/v2x', 'api'],
    ]);
  });

  it('takes the targets of an API in turn', async () => {
    const a = await named('a');
    const b = await named('b');
    const gw = await startGateway([a.url, b.url]);
    const answers: string[] = [];
    for (let i = 0; i < 6; i++) answers.push((await getText(`${gw.url}/api/x`)).text);
    expect(answers).toEqual(['a', 'b', 'a', 'b', 'a', 'b']);
  });

  it('retries an idempotent request on the next target when one refuses, then skips the dead one while it cools down', async () => {
    const dead = await deadPort();
    const live = await named('live');
    const gw = await startGateway([`http://127.0.0.1:${dead}`, live.url], { api: { retries: 1 }, gateway: { targetCooldownMs: 60_000 } });
    const answers = [];
    for (let i = 0; i < 4; i++) answers.push(await getText(`${gw.url}/api/x`));
    expect(answers.map((answer) => [answer.status, answer.text])).toEqual(Array(4).fill([200, 'live']));
    expect(live.seen).toHaveLength(4);

    const transactions = await fixture.transactionsAfterStop(4);
    const [first, ...rest] = answers.map((answer) => transactions.get(answer.id)!);
    expect(first!.legs).toHaveLength(3);
    expect(first!.legs[1]).toMatchObject({ finalStatus: 'Error', protocolInfo: { http: { remotePort: String(dead) } } });
    expect(first!.legs[1]!.error).toMatch(/ECONNREFUSED/);
    expect(first!.legs[2]).toMatchObject({ finalStatus: 'Pass', protocolInfo: { http: { remotePort: new URL(live.url).port, status: 200 } } });
    expect(first!.summary).toMatchObject({ status: 'success', httpStatus: 200, failureReason: null });
    for (const transaction of rest) {
      expect(transaction.legs).toHaveLength(2);
      expect(transaction.legs[1]!.protocolInfo.http.remotePort).toBe(new URL(live.url).port);
    }
  });

  it('tries a dead target again once its cooldown is over', async () => {
    const dead = await deadPort();
    const live = await named('live');
    const gw = await startGateway([`http://127.0.0.1:${dead}`, live.url], { api: { retries: 1 }, gateway: { targetCooldownMs: 300 } });
    const first = await getText(`${gw.url}/api/x`);
    await delay(600);
    const second = await getText(`${gw.url}/api/x`);
    expect([first.text, second.text]).toEqual(['live', 'live']);

    const transactions = await fixture.transactionsAfterStop(2);
    for (const answer of [first, second]) {
      const legs = transactions.get(answer.id)!.legs;
      expect(legs.map((leg) => [leg.protocolInfo.http.remotePort, leg.finalStatus]).slice(1)).toEqual([
        [String(dead), 'Error'],
        [new URL(live.url).port, 'Pass'],
      ]);
    }
  });

  it('sends the whole body again when it retries an idempotent PUT on the next target', async () => {
    const counting = await fixture.backend((incoming, response) => {
      let received = 0;
      incoming.on('data', (chunk: Buffer) => (received += chunk.length));
      incoming.on('end', () => response.end(String(received)));
    });
    const gw = await startGateway([`http://127.0.0.1:${await deadPort()}`, counting.url], { api: { retries: 1 } });
    const response = await request(`${gw.url}/api/things/1`, { method: 'PUT', body: 'p'.repeat(200_000) });
    expect(response.statusCode).toBe(200);
    expect(await response.body.text()).toBe('200000');

    const transaction = (await fixture.transactionsAfterStop(1)).get(response.headers['x-correlation-id'] as string)!;
    expect(transaction.legs.map((leg) => leg.finalStatus)).toEqual(['Pass', 'Error', 'Pass']);
    expect(transaction.legs[1]!.protocolInfo.http.bytesSent).toBe(0);
    expect(transaction.legs[2]!.protocolInfo.http.bytesSent).toBe(200_000);
  });

  it('does not retry a POST when its target refuses, even with retries configured', async () => {
    const live = await named('live');
    const gw = await startGateway([`http://127.0.0.1:${await deadPort()}`, live.url], { api: { retries: 1 } });
    const response = await request(`${gw.url}/api/orders`, { method: 'POST', body: '{"n":1}', headers: { 'content-type': 'application/json' } });
    await response.body.text();

    expect(response.statusCode).toBe(502);
    expect(live.seen).toHaveLength(0);
    const transaction = (await fixture.transactionsAfterStop(1)).get(response.headers['x-correlation-id'] as string)!;
    expect(transaction.legs).toHaveLength(2);
    expect(transaction.legs[1]!.finalStatus).toBe('Error');
    expect(transaction.summary).toMatchObject({ status: 'exception', failureReason: 'upstream-connect-failed', httpStatus: 502 });
  });

  it('streams a chunked request body to the back end as it arrives and delivers it whole', async () => {
    const hashing = await fixture.backend((incoming, response) => {
      const hash = createHash('sha256');
      incoming.on('data', (chunk: Buffer) => hash.update(chunk));
      incoming.on('end', () => response.end(hash.digest('hex')));
    });
    const gw = await startGateway(hashing.url);
    const first = Buffer.alloc(100_000, 0x31);
    const second = Buffer.alloc(150_000, 0x32);
    const body = new PassThrough();
    const pending = request(`${gw.url}/api/upload`, { method: 'POST', body });
    body.write(first);
    // The back end sees the first part before the client has sent the rest: nothing is buffered whole.
    await eventually(async () => ((hashing.seen[0]?.bodyBytes ?? 0) > 0 ? true : undefined), 5_000, 'the first part at the back end');
    body.end(second);
    const response = await pending;

    expect(await response.body.text()).toBe(createHash('sha256').update(first).update(second).digest('hex'));
    const seen = hashing.seen[0]!;
    expect(seen.headers['transfer-encoding']).toBe('chunked');
    expect(seen.headers).not.toHaveProperty('content-length');
    expect(seen.bodyBytes).toBe(first.length + second.length);
    const transaction = (await fixture.transactionsAfterStop(1)).get(response.headers['x-correlation-id'] as string)!;
    expect(transaction.legs[0]!.protocolInfo.http.bytesReceived).toBe(first.length + second.length);
    expect(transaction.legs[1]!.protocolInfo.http.bytesSent).toBe(first.length + second.length);
  });
});
