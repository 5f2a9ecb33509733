import { performance } from 'node:perf_hooks';
import { request } from 'undici';
import { describe, expect, it } from 'vitest';
import { baseConfig, unansweredPort } from '../../test/support/backends.js';
import { useGatewayFixture } from '../../test/support/fixture.js';
import type { GatewayProcess } from '../../test/support/gateway-process.js';

const fixture = useGatewayFixture();

// A timer never fires early, but the two clocks (here and in the gateway) and the scheduling of
// a loaded machine make "at the timeout" a range.
const EARLY_MS = 25;
const LATE_MS = 2_000;

function startGateway(target: string, overrides: Record<string, any> = {}): Promise<GatewayProcess> {
  return fixture.start(baseConfig(fixture.workspace, target, overrides));
}


describe('back-end timeouts', () => {
  it('answers 504 upstream-connect-timeout after connectMs when the back end never accepts the connection', async () => {
    const connectMs = 400;
    const silent = await unansweredPort();
    fixture.onCleanup(() => silent.close());
    const gw = await startGateway(`http://127.0.0.1:${silent.port}`, { gateway: { timeouts: { connectMs } } });

    const sent = performance.now();
    const response = await request(`${gw.url}/api/pets/1`);
    const body = (await response.body.json()) as { error: string; correlationId: string };
    const elapsed = performance.now() - sent;

    expect(response.statusCode).toBe(504);
    expect(body).toEqual({ error: 'the back end did not answer in time (upstream-connect-timeout)', correlationId: response.headers['x-correlation-id'] });
    expect(elapsed).toBeGreaterThanOrEqual(connectMs - EARLY_MS);
    expect(elapsed).toBeLessThan(connectMs + LATE_MS);

    const transaction = await fixture.onlyTransactionAfterStop();
    expect(transaction.lines[0]!.correlationId).toBe(body.correlationId);
    expect(transaction.summary).toMatchObject({ status: 'exception', failureReason: 'upstream-connect-timeout', httpStatus: 504 });
    expect(transaction.legs).toHaveLength(2);
    expect(transaction.legs[0]).toMatchObject({ finalStatus: 'Fail', protocolInfo: { http: { status: 504 } } });
    expect(transaction.legs[1]).toMatchObject({ finalStatus: 'Error', timeToHeaders: null, protocolInfo: { http: { status: 0, bytesSent: 0 } } });
    expect(transaction.legs[1]!.timeToLastByte).toBeGreaterThanOrEqual(connectMs - EARLY_MS);
  });

  it('answers 504 when the back end sends no response headers within responseHeadersMs', async () => {
    const responseHeadersMs = 300;
    const slow = await fixture.backend(() => undefined);
    const gw = await startGateway(slow.url, { api: { timeouts: { responseHeadersMs } } });
    const sent = performance.now();
    const response = await request(`${gw.url}/api/slow`);
    const body = (await response.body.json()) as { error: string };
    const elapsed = performance.now() - sent;

    expect(response.statusCode).toBe(504);
    expect(body.error).toContain('upstream-headers-timeout');
    expect(elapsed).toBeGreaterThanOrEqual(responseHeadersMs - EARLY_MS);
    expect(elapsed).toBeLessThan(responseHeadersMs + LATE_MS);
    expect(slow.seen).toHaveLength(1);
    const transaction = await fixture.onlyTransactionAfterStop();
    expect(transaction.summary).toMatchObject({ status: 'exception', failureReason: 'upstream-headers-timeout', httpStatus: 504 });
    expect(transaction.legs[1]).toMatchObject({ finalStatus: 'Error', timeToHeaders: null });
  });

  it('cuts the exchange after idleMs without body data, records upstream-idle-timeout and cuts the client connection', async () => {
    const idleMs = 400;
    const stalling = await fixture.backend((_, response) => {
      response.writeHead(200, { 'content-type': 'text/plain', 'content-length': '100000' });
      response.write('first part');
    });
    const gw = await startGateway(stalling.url, { api: { timeouts: { idleMs } } });
    const sent = performance.now();
    const response = await request(`${gw.url}/api/download`);
    expect(response.statusCode).toBe(200);
    const chunks = response.body[Symbol.asyncIterator]();
    expect(((await chunks.next()).value as Buffer).toString()).toBe('first part');
    await expect(chunks.next()).rejects.toThrow();
    const elapsed = performance.now() - sent;

    expect(elapsed).toBeGreaterThanOrEqual(idleMs - EARLY_MS);
    expect(elapsed).toBeLessThan(idleMs + LATE_MS);
    const transaction = await fixture.onlyTransactionAfterStop();
    expect(transaction.lines[0]!.correlationId).toBe(response.headers['x-correlation-id']);
    expect(transaction.summary).toMatchObject({ status: 'exception', failureReason: 'upstream-idle-timeout', httpStatus: 200 });
    expect(transaction.legs.map((leg) => leg.finalStatus)).toEqual(['Error', 'Error']);
    expect(transaction.legs[1]!.protocolInfo.http.bytesReceived).toBe('first part'.length);
    expect(transaction.legs[0]!.protocolInfo.http.bytesSent).toBe('first part'.length);
    expect(transaction.legs[1]!.timeToLastByte - transaction.legs[1]!.timeToHeaders).toBeGreaterThanOrEqual(idleMs - EARLY_MS);
  });
});
