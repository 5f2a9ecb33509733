import { request } from 'undici';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { baseConfig, startDemo, type Backend } from '../../test/support/backends.js';
import { byTransaction, GatewayProcess, Workspace } from '../../test/support/gateway-process.js';

let workspace: Workspace;
let backend: Backend;
let gateway: GatewayProcess | undefined;

beforeEach(async () => {
  workspace = await Workspace.create();
  backend = await startDemo();
});

afterEach(async () => {
  await gateway?.stop();
  gateway = undefined;
  await backend.close();
  await workspace.remove();
});

async function get(path: string): Promise<string> {
  const response = await request(`${gateway!.url}${path}`);
  expect(response.statusCode).toBe(200);
  await response.body.text();
  return response.headers['x-correlation-id'] as string;
}

async function start(overrides: Record<string, any>): Promise<void> {
  const config = baseConfig(workspace, backend.url, { ...overrides, trafficLog: { payloads: { enabled: true } } });
  gateway = await GatewayProcess.start(await workspace.writeConfig(config));
}

describe('requests that must leave no trace', () => {
  it('records nothing for an API marked doNotTrack, while other APIs are recorded', async () => {
    await start({
      apis: [
        { id: 'hidden', name: 'Hidden', listenPath: '/hidden/', target: backend.url, doNotTrack: true },
        { id: 'seen', name: 'Seen', listenPath: '/seen/', target: backend.url },
      ],
    });
    await get('/hidden/pets/1');
    await get('/hidden/echo');
    const seenId = await get('/seen/pets/1');
    await gateway!.stop();

    const transactions = byTransaction(await workspace.logLines());
    expect([...transactions.keys()]).toEqual([seenId]);
    expect((await workspace.payloadFiles()).every((file) => file.includes(seenId))).toBe(true);
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
    await gateway!.stop();

    const transactions = byTransaction(await workspace.logLines());
    expect([...transactions.keys()].sort()).toEqual([listId, helloId].sort());
    expect(transactions.get(helloId)!.summary.trackedEndpoint).toBe('GET /hello');
    expect((await workspace.payloadFiles()).some((file) => !file.includes(listId) && !file.includes(helloId))).toBe(false);
  });

  it('records nothing for clients in analytics.ignoredIps (CIDR), yet proxies them', async () => {
    await start({ analytics: { ignoredIps: ['127.0.0.0/8'] } });
    await get('/api/pets/1');
    await get('/api/hello');
    await gateway!.stop();
    expect(await workspace.logLines()).toEqual([]);
    expect(await workspace.payloadFiles()).toEqual([]);
  });

  it('still records clients outside the ignored addresses', async () => {
    await start({ analytics: { ignoredIps: ['10.0.0.0/8', '192.0.2.7', '::2'] } });
    const id = await get('/api/pets/1');
    await gateway!.stop();
    expect([...byTransaction(await workspace.logLines()).keys()]).toEqual([id]);
  });

  it('records nothing when analytics.enabled is false', async () => {
    await start({ analytics: { enabled: false } });
    await get('/api/pets/1');
    await gateway!.stop();
    expect(await workspace.logLines()).toEqual([]);
    expect(await workspace.payloadFiles()).toEqual([]);
  });
});
