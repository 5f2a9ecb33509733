import { request } from 'undici';
import { describe, expect, it } from 'vitest';
import { baseConfig } from '../../test/support/backends.js';
import { useGatewayFixture } from '../../test/support/fixture.js';
import { byTransaction, type TransactionLines } from '../../test/support/gateway-process.js';

const fixture = useGatewayFixture();

const UUID = '0190b1f2-7c3a-7d4e-9f10-a1b2c3d4e5f6';
const ULID = '01ARZ3NDEKTSV4RRFFQ69G5FAV';
// Rounding to 3 decimals, once per figure.
const ROUNDING = 0.002;

/** GETs each path through a gateway in front of a back end that answers "ok"; returns the transactions by path. */
async function recordedPaths(paths: string[], analytics: Record<string, any>): Promise<Map<string, TransactionLines>> {
  const backend = await fixture.backend((_, response) => response.end('ok'));
  const gw = await fixture.start(baseConfig(fixture.workspace, backend.url, { analytics }));
  const ids: string[] = [];
  for (const path of paths) {
    const response = await request(`${gw.url}${path}`);
    expect(await response.body.text()).toBe('ok');
    ids.push(response.headers['x-correlation-id'] as string);
  }
  await gw.stop();
  const transactions = byTransaction(await fixture.workspace.logLines());
  expect(transactions.size).toBe(paths.length);
  return new Map(paths.map((path, index) => [path, transactions.get(ids[index]!)!]));
}

describe('normalisedPath in the traffic log', () => {
  it('replaces numeric ids, UUIDs, ULIDs and segments matching a custom pattern, in the summary and the operation', async () => {
    const path = `/api/users/42/orders/${UUID}/events/${ULID}/repos/abc-123/branches/main`;
    const transactions = await recordedPaths([`${path}?page=2`, '/api/health'], { normaliseUrls: { patterns: ['[a-z]{3}-\\d+'] } });

    const { summary, legs } = transactions.get(`${path}?page=2`)!;
    const normalised = '/api/users/{id}/orders/{uuid}/events/{ulid}/repos/{var}/branches/main';
    expect(summary.path).toBe(path);
    expect(summary.normalisedPath).toBe(normalised);
    expect(summary.serviceContexts[0].method).toBe(`GET ${normalised}`);
    expect(legs.map((leg) => leg.operation)).toEqual([`GET ${normalised}`, `GET ${normalised}`]);
    expect(transactions.get('/api/health')!.summary.normalisedPath).toBe('/api/health');
  });

  it('leaves each kind of id in place when its rule is turned off', async () => {
    const path = `/api/users/42/orders/${UUID}/events/${ULID}`;
    const transactions = await recordedPaths([path], { normaliseUrls: { numbers: false, uuids: false, ulids: false } });
    expect(transactions.get(path)!.summary.normalisedPath).toBe(path);
  });
});

describe('latency in the traffic log', () => {
  it('splits the total into the back end\'s time and the gateway\'s, consistent with each leg\'s timings', async () => {
    const headersAfterMs = 150;
    const bodyAfterMs = 100;
    const slow = await fixture.backend((_, response) => {
      setTimeout(() => {
        response.writeHead(200, { 'content-type': 'text/plain' });
        response.write('first ');
        setTimeout(() => response.end('last'), bodyAfterMs);
      }, headersAfterMs);
    });
    const gw = await fixture.start(baseConfig(fixture.workspace, slow.url));
    const response = await request(`${gw.url}/api/slow`);
    expect(await response.body.text()).toBe('first last');
    await gw.stop();

    const { summary, legs, lines } = byTransaction(await fixture.workspace.logLines()).get(response.headers['x-correlation-id'] as string)!;
    const { total, upstream, gateway } = summary.latency as { total: number; upstream: number; gateway: number };
    const [client, backend] = legs as [Record<string, any>, Record<string, any>];

    // The back end's leg: headers after its first wait, the last byte after both. (The gap
    // between them can look shorter: a busy event loop may see the headers late.)
    expect(backend.timeToHeaders).toBeGreaterThanOrEqual(headersAfterMs);
    expect(backend.timeToLastByte).toBeGreaterThanOrEqual(headersAfterMs + bodyAfterMs);
    expect(backend.timeToLastByte).toBeGreaterThan(backend.timeToHeaders);
    expect(backend.duration).toBe(Math.round(backend.timeToHeaders));
    // The client's leg began first and ended last.
    expect(client.timeToHeaders).toBeGreaterThanOrEqual(backend.timeToHeaders);
    expect(client.timeToLastByte).toBeGreaterThanOrEqual(backend.timeToLastByte);
    expect(client.timeToLastByte).toBeGreaterThan(client.timeToHeaders);
    expect(client.duration).toBe(Math.round(client.timeToLastByte));
    expect(lines.find((line) => line.transactionElement?.leg === 1)!.timestamp).toBeGreaterThanOrEqual(lines[0]!.timestamp);

    // upstream is the back end's leg whole; gateway is the rest of the total.
    expect(upstream).toBeCloseTo(backend.timeToLastByte, 2);
    expect(upstream).toBeGreaterThanOrEqual(headersAfterMs + bodyAfterMs);
    expect(total).toBeGreaterThanOrEqual(client.timeToLastByte);
    expect(total).toBeGreaterThanOrEqual(upstream);
    expect(gateway).toBeGreaterThan(0);
    expect(Math.abs(gateway - (total - upstream))).toBeLessThanOrEqual(ROUNDING);
    expect(summary.serviceContexts[0].duration).toBe(Math.round(total));
    for (const value of [total, upstream, gateway, client.timeToHeaders, client.timeToLastByte, backend.timeToHeaders, backend.timeToLastByte]) {
      expect(Math.round(value * 1000)).toBeCloseTo(value * 1000, 6);
    }
  });
});
