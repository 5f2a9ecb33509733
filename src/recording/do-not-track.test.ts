import { request } from 'undici';
import { describe, expect, it } from 'vitest';
import { baseConfig } from '../../test/support/backends.js';
import { useGatewayFixture } from '../../test/support/fixture.js';
import { byTransaction } from '../../test/support/gateway-process.js';

const fixture = useGatewayFixture({ demo: true });

async function get(path: string): Promise<string> {
  const response = await request(`${fixture.gateway!.url}${path}`);
  expect(response.statusCode).toBe(200);
  await response.body.text();
  return response.headers['x-correlation-id'] as string;
}

async function start(overrides: Record<string, any>): Promise<void> {
  const config = baseConfig(fixture.workspace, fixture.demo.url, { ...overrides, trafficLog: { payloads: { enabled: true } } });
  await fixture.start(config);
}

/** The payload file names, without their folders, sorted. */
async function payloadNames(): Promise<string[]> {
  return (await fixture.workspace.payloadFiles()).map((file) => file.split('/').pop()!).sort();
}

/** The payload files a recorded GET leaves: the back end's response and the client's. */
function getPayloads(id: string): string[] {
  return [`${id}-0-sent`, `${id}-1-received`];
}

describe('requests that must leave no trace', () => {
  it('records nothing for an API marked doNotTrack, while other APIs are recorded', async () => {
    await start({
      apis: [
        { id: 'hidden', name: 'Hidden', listenPath: '/hidden/', target: fixture.demo.url, doNotTrack: true },
        { id: 'seen', name: 'Seen', listenPath: '/seen/', target: fixture.demo.url },
      ],
    });
    await get('/hidden/pets/1');
    await get('/hidden/echo');
    const seenId = await get('/seen/pets/1');
    await fixture.gateway!.stop();

    const transactions = byTransaction(await fixture.workspace.logLines());
    expect([...transactions.keys()]).toEqual([seenId]);
    expect(await payloadNames()).toEqual(getPayloads(seenId));
  });

  it('records nothing for an endpoint marked doNotTrack, matched by method and path pattern', async () => {
    await start({
      api: {
        endpoints: [
          { method: 'GET', path: '/pets/{id}', doNotTrack: true },
          { method: 'GET', path: '/hello', doNotTrack: false },
        ],
      },
    });
    await get('/api/pets/1');
    await get('/api/pets/2');
    const listId = await get('/api/pets');
    const helloId = await get('/api/hello');
    await fixture.gateway!.stop();

    const transactions = byTransaction(await fixture.workspace.logLines());
    expect([...transactions.keys()].sort()).toEqual([listId, helloId].sort());
    expect(transactions.get(helloId)!.summary.trackedEndpoint).toBe('GET /hello');
    expect(await payloadNames()).toEqual([...getPayloads(listId), ...getPayloads(helloId)].sort());
  });

  it('records nothing for clients in analytics.ignoredIps (CIDR), yet proxies them', async () => {
    await start({ analytics: { ignoredIps: ['127.0.0.0/8'] } });
    await get('/api/pets/1');
    await get('/api/hello');
    await fixture.gateway!.stop();
    // The log holds the gateway's own start and stop trace lines, and nothing of the traffic.
    expect((await fixture.workspace.logLines()).filter((line) => line.trace === undefined)).toEqual([]);
    expect(await fixture.workspace.payloadFiles()).toEqual([]);
  });

  it('still records clients outside the ignored addresses', async () => {
    await start({ analytics: { ignoredIps: ['10.0.0.0/8', '192.0.2.7', '::2'] } });
    const id = await get('/api/pets/1');
    await fixture.gateway!.stop();
    expect([...byTransaction(await fixture.workspace.logLines()).keys()]).toEqual([id]);
  });

  it('records nothing when analytics.enabled is false', async () => {
    await start({ analytics: { enabled: false } });
    await get('/api/pets/1');
    await fixture.gateway!.stop();
    // The log holds the gateway's own start and stop trace lines, and nothing of the traffic.
    expect((await fixture.workspace.logLines()).filter((line) => line.trace === undefined)).toEqual([]);
    expect(await fixture.workspace.payloadFiles()).toEqual([]);
  });
});
