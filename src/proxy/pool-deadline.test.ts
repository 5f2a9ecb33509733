import type { Socket } from 'node:net';
import { performance } from 'node:perf_hooks';
import { Agent, request } from 'undici';
import { describe, expect, it } from 'vitest';
import { baseConfig } from '../../test/support/backends.js';
import { useGatewayFixture } from '../../test/support/fixture.js';
import { byTransaction, eventually } from '../../test/support/gateway-process.js';

const fixture = useGatewayFixture();

const RESPONSE_HEADERS_MS = 800;
const POOL_SIZE = 2;
const REQUESTS = 12;

describe('a request waiting for a pooled back-end connection', () => {
  it('answers 504 within responseHeadersMs of arrival whether it waited for a free connection or for the answer, and is never sent later', async () => {
    const connections = new Set<Socket>();
    // Accepts and reads every request, and never answers.
    const silent = await fixture.backend(() => undefined);
    silent.server.on('connection', (socket: Socket) => {
      connections.add(socket);
      socket.on('close', () => connections.delete(socket));
    });
    const gw = await fixture.start(
      baseConfig(fixture.workspace, silent.url, { gateway: { maxConnectionsPerTarget: POOL_SIZE, timeouts: { responseHeadersMs: RESPONSE_HEADERS_MS } } }),
    );
    // One client connection per request, so that all of them reach the gateway at once.
    const client = new Agent({ connections: REQUESTS });
    fixture.onCleanup(() => client.close());

    const outcomes = await Promise.all(
      Array.from({ length: REQUESTS }, async (_, index) => {
        const sent = performance.now();
        const response = await request(`${gw.url}/api/wait/${index}`, { dispatcher: client });
        const body = (await response.body.json()) as { error: string; correlationId: string };
        return { status: response.statusCode, body, elapsed: performance.now() - sent };
      }),
    );

    for (const { status, body, elapsed } of outcomes) {
      expect(status).toBe(504);
      expect(body.error).toBe('the back end did not answer in time (upstream-headers-timeout)');
      // A timer never fires early; a loaded machine makes "at the deadline" a range.
      expect(elapsed).toBeGreaterThanOrEqual(RESPONSE_HEADERS_MS - 100);
      expect(elapsed).toBeLessThan(RESPONSE_HEADERS_MS + 1_700);
    }

    expect(await gw.stop()).toBe(0);
    // The gateway's process is gone: once the back end has seen every connection close, it has
    // read every byte the gateway ever sent it.
    await eventually(async () => (connections.size === 0 ? true : undefined), 5_000, 'the back end to see every connection close');
    const transactions = [...byTransaction(await fixture.workspace.logLines()).values()];
    expect(transactions.map((transaction) => transaction.lines[0]!.correlationId).sort()).toEqual(outcomes.map(({ body }) => body.correlationId).sort());
    const waitedForAnswer = transactions.filter((transaction) => /sent no response headers within 800 ms/.test(transaction.summary.failureMessage));
    const waitedForConnection = transactions.filter((transaction) => /no connection to the back end became free within 800 ms/.test(transaction.summary.failureMessage));
    expect(waitedForAnswer.length + waitedForConnection.length).toBe(REQUESTS);
    // The pool's connections were taken at once; a connection freed by an earlier 504 may carry
    // one more request whose deadline had not yet come (the requests arrive spread over a moment).
    expect(waitedForAnswer.length).toBeGreaterThanOrEqual(POOL_SIZE);
    expect(waitedForConnection.length).toBeGreaterThan(0);
    for (const transaction of transactions) {
      expect(transaction.summary).toMatchObject({ httpStatus: 504, status: 'exception', failureReason: 'upstream-headers-timeout' });
    }
    // Only the requests that got a connection reached the back end, and nothing was sent later.
    expect(silent.seen.map((seen) => seen.url).sort()).toEqual(waitedForAnswer.map((transaction) => transaction.summary.path.replace('/api', '')).sort());
    for (const transaction of waitedForConnection) {
      expect(transaction.legs[1]).toMatchObject({ finalStatus: 'Error', timeToHeaders: null, protocolInfo: { http: { bytesSent: 0 } } });
    }
  });
});
