import { describe, expect, it } from 'vitest';
import { baseConfig } from '../../test/support/backends.js';
import { useGatewayFixture } from '../../test/support/fixture.js';
import { byTransaction, rawExchange } from '../../test/support/gateway-process.js';

const fixture = useGatewayFixture({ demo: true });

async function startGateway(gateway: Record<string, unknown> = {}) {
  return fixture.start(baseConfig(fixture.workspace, fixture.demo.url, { gateway }));
}

describe('requests the HTTP parser refuses', () => {
  it('answers bad syntax with 400 and records it as a malformed request', async () => {
    const gateway = await startGateway();
    const answer = await rawExchange(gateway.url, 'THIS IS NOT HTTP\r\n\r\n');
    expect(answer).toMatch(/^HTTP\/1.1 400 Bad Request\r\n/);
    const id = /X-Correlation-ID: ([0-9a-f]{24})/.exec(answer)?.[1];
    expect(id).toBeDefined();
    expect(JSON.parse(answer.slice(answer.indexOf('\r\n\r\n') + 4)).error).toMatch(/malformed request/);

    await gateway.stop();
    const transaction = byTransaction(await fixture.workspace.logLines()).get(id!)!;
    expect(transaction.summary).toMatchObject({ status: 'failure', httpStatus: 400, failureReason: 'malformed-request', serviceContexts: [] });
    expect(transaction.summary.failureMessage).toMatch(/^HPE_/);
    expect(transaction.legs).toHaveLength(1);
    expect(transaction.legs[0]!.finalStatus).toBe('Fail');
  });

  it('answers headers over maxRequestHeaderBytes with 431 and records it', async () => {
    const gateway = await startGateway({ maxRequestHeaderBytes: 1024 });
    const answer = await rawExchange(gateway.url, `GET /api/hello HTTP/1.1\r\nHost: x\r\nX-Big: ${'a'.repeat(4000)}\r\n\r\n`);
    expect(answer).toMatch(/^HTTP\/1.1 431 Request Header Fields Too Large\r\n/);

    await gateway.stop();
    const summaries = [...byTransaction(await fixture.workspace.logLines()).values()].map((transaction) => transaction.summary);
    expect(summaries).toEqual([expect.objectContaining({ httpStatus: 431, failureReason: 'malformed-request' })]);
  });

  it('answers request headers that stall past requestHeadersTimeoutMs with 408 and records it as a malformed request', async () => {
    const gateway = await startGateway({ requestHeadersTimeoutMs: 500 });
    const started = performance.now();
    const answer = await rawExchange(gateway.url, 'GET /api/hello HTTP/1.1\r\nHost: x\r\nX-Unfinished: ');
    const elapsed = performance.now() - started;
    expect(answer).toMatch(/^HTTP\/1.1 408 Request Timeout\r\n/);
    expect(elapsed).toBeGreaterThanOrEqual(450);
    expect(elapsed).toBeLessThan(2_500);
    const id = /X-Correlation-ID: ([0-9a-f]{24})/.exec(answer)?.[1];

    await gateway.stop();
    const transaction = byTransaction(await fixture.workspace.logLines()).get(id!)!;
    expect(transaction.summary).toMatchObject({ status: 'failure', httpStatus: 408, failureReason: 'malformed-request', serviceContexts: [] });
    expect(transaction.legs).toHaveLength(1);
  });

  it('keeps serving well-formed requests on other connections', async () => {
    const gateway = await startGateway();
    await rawExchange(gateway.url, 'GARBAGE\r\n\r\n');
    const answer = await rawExchange(gateway.url, 'GET /api/hello HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n');
    expect(answer).toMatch(/^HTTP\/1.1 200 OK\r\n/);
  });
});
