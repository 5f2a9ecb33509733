import { readFile } from 'node:fs/promises';
import { fileURLToPath } from 'node:url';
import { request } from 'undici';
import { describe, expect, it } from 'vitest';
import { baseConfig } from '../../test/support/backends.js';
import { useGatewayFixture } from '../../test/support/fixture.js';
import { byTransaction, eventually, type GatewayProcess } from '../../test/support/gateway-process.js';
import { payloadFolder } from './payload-store.js';

const fixture = useGatewayFixture({ demo: true });

function startWithPayloads(overrides: Record<string, any> = {}): Promise<GatewayProcess> {
  const config = baseConfig(fixture.workspace, fixture.demo.url, { ...overrides, trafficLog: { payloads: { enabled: true } } });
  return fixture.start(config);
}


describe('payload store', () => {
  it('stores -0-received, -1-sent, -1-received and -0-sent for a POST, with the bytes that passed', async () => {
    const gw = await startWithPayloads();
    const body = JSON.stringify({ name: 'Rex', kind: 'dog' });
    const response = await request(`${gw.url}/api/echo`, { method: 'POST', body, headers: { 'content-type': 'application/json' } });
    expect(response.statusCode).toBe(200);
    expect(await response.body.text()).toBe(body);
    const id = response.headers['x-correlation-id'] as string;

    const transaction = (await fixture.transactionsAfterStop(1)).get(id);
    expect(transaction).toBeDefined();
    const folder = payloadFolder(transaction!.lines[0]!.timestamp);
    expect(await fixture.workspace.payloadFiles()).toEqual(
      [`${id}-0-received`, `${id}-0-sent`, `${id}-1-received`, `${id}-1-sent`].map((name) => `${folder}/${name}`),
    );
    for (const name of ['0-received', '0-sent', '1-received', '1-sent']) {
      expect(await readFile(fixture.workspace.path('payloads', folder, `${id}-${name}`), 'utf8')).toBe(body);
    }
    const [client, upstream] = transaction!.legs;
    expect(fileURLToPath(client!.protocolInfo.recvPayload)).toBe(fixture.workspace.path('payloads', folder, `${id}-0-received`));
    expect(fileURLToPath(client!.protocolInfo.sentPayload)).toBe(fixture.workspace.path('payloads', folder, `${id}-0-sent`));
    expect(fileURLToPath(upstream!.protocolInfo.sentPayload)).toBe(fixture.workspace.path('payloads', folder, `${id}-1-sent`));
    expect(fileURLToPath(upstream!.protocolInfo.recvPayload)).toBe(fixture.workspace.path('payloads', folder, `${id}-1-received`));
    expect(client!.protocolInfo.http.bytesReceived).toBe(body.length);
    expect(upstream!.protocolInfo.http.bytesSent).toBe(body.length);
  });

  it('stores only -1-received and -0-sent for a GET, which has no request body', async () => {
    const gw = await startWithPayloads();
    const response = await request(`${gw.url}/api/pets/2`);
    const text = await response.body.text();
    const id = response.headers['x-correlation-id'] as string;

    const transaction = (await fixture.transactionsAfterStop(1)).get(id)!;
    const folder = payloadFolder(transaction.lines[0]!.timestamp);
    expect(await fixture.workspace.payloadFiles()).toEqual([`${folder}/${id}-0-sent`, `${folder}/${id}-1-received`]);
    expect(await readFile(fixture.workspace.path('payloads', folder, `${id}-1-received`), 'utf8')).toBe(text);
    expect(transaction.legs[0]!.protocolInfo.recvPayload).toBeNull();
    expect(transaction.legs[1]!.protocolInfo.sentPayload).toBeNull();
  });

  it('caps a stored body at maxPayloadBytes and marks it truncated, while the client gets it all', async () => {
    const gw = await startWithPayloads({ analytics: { maxPayloadBytes: 1000 } });
    const response = await request(`${gw.url}/api/bytes?n=300000`);
    expect((await response.body.arrayBuffer()).byteLength).toBe(300_000);
    const id = response.headers['x-correlation-id'] as string;

    const transaction = (await fixture.transactionsAfterStop(1)).get(id)!;
    const upstream = transaction.legs[1]!;
    expect(upstream.protocolInfo.recvPayloadTruncated).toBe(true);
    expect(upstream.protocolInfo.http.bytesReceived).toBe(300_000);
    expect((await readFile(fileURLToPath(upstream.protocolInfo.recvPayload))).length).toBe(1000);
  });

  it('streams a large body to its file and copies it whole under both names', async () => {
    const gw = await startWithPayloads({ analytics: { maxPayloadBytes: 10_000_000 } });
    const response = await request(`${gw.url}/api/bytes?n=3000000`);
    expect((await response.body.arrayBuffer()).byteLength).toBe(3_000_000);
    const transaction = (await fixture.transactionsAfterStop(1)).get(response.headers['x-correlation-id'] as string)!;
    for (const uri of [transaction.legs[1]!.protocolInfo.recvPayload, transaction.legs[0]!.protocolInfo.sentPayload]) {
      const stored = await readFile(fileURLToPath(uri));
      expect(stored.length).toBe(3_000_000);
      expect(stored.every((byte) => byte === 0x61)).toBe(true);
    }
  });

  it('stores bodies only for error responses when detailedRecording is errors', async () => {
    const gw = await startWithPayloads({ api: { detailedRecording: 'errors' } });
    const ok = await request(`${gw.url}/api/pets/1`);
    await ok.body.text();
    const missing = await request(`${gw.url}/api/pets/99`);
    await missing.body.text();
    const okId = ok.headers['x-correlation-id'] as string;
    const missingId = missing.headers['x-correlation-id'] as string;

    const transactions = await fixture.transactionsAfterStop(2);
    const files = await fixture.workspace.payloadFiles();
    expect(files.some((file) => file.includes(okId))).toBe(false);
    expect(files.filter((file) => file.includes(missingId)).map((file) => file.split('/').pop())).toEqual([
      `${missingId}-0-sent`,
      `${missingId}-1-received`,
    ]);
    expect(transactions.get(okId)!.legs[0]!.protocolInfo.recvHeader).toBeNull();
    expect(transactions.get(missingId)!.legs[0]!.protocolInfo.recvHeader).toMatch(/^GET \/api\/pets\/99 HTTP\/1.1\r\n/);
  });

  it('writes header blocks but no files for detailedRecording headers, and neither for off', async () => {
    const gw = await startWithPayloads({
      api: { detailedRecording: 'headers', endpoints: [{ method: 'GET', path: '/pets/{id}', detailedRecording: 'off' }] },
    });
    const headersOnly = await request(`${gw.url}/api/echo`, { method: 'POST', body: 'hello' });
    await headersOnly.body.text();
    const off = await request(`${gw.url}/api/pets/3`);
    await off.body.text();

    const transactions = await fixture.transactionsAfterStop(2);
    expect(await fixture.workspace.payloadFiles()).toEqual([]);
    const withHeaders = transactions.get(headersOnly.headers['x-correlation-id'] as string)!;
    expect(withHeaders.legs[1]!.protocolInfo.sentHeader).toMatch(/^POST \/echo HTTP\/1.1\r\n/);
    expect(withHeaders.legs[1]!.protocolInfo.recvPayload).toBeNull();
    const plain = transactions.get(off.headers['x-correlation-id'] as string)!;
    expect(plain.legs.map((leg) => leg.protocolInfo.recvHeader)).toEqual([null, null]);
  });

  it('writes no payload files when payload storage is off, whatever detailedRecording says', async () => {
    const config = baseConfig(fixture.workspace, fixture.demo.url, { api: { detailedRecording: 'full' } });
    const gw = await fixture.start(config);
    const response = await request(`${gw.url}/api/echo`, { method: 'POST', body: 'body' });
    await response.body.text();
    const transactions = await fixture.transactionsAfterStop(1);
    expect(await fixture.workspace.payloadFiles()).toEqual([]);
    const legs = transactions.get(response.headers['x-correlation-id'] as string)!.legs;
    expect(legs[0]!.protocolInfo.recvHeader).toContain('POST /api/echo');
    expect(legs.every((leg) => leg.protocolInfo.recvPayload === null && leg.protocolInfo.sentPayload === null)).toBe(true);
  });

  it('links each payload file only after it is complete on disk', async () => {
    const gw = await startWithPayloads();
    const response = await request(`${gw.url}/api/echo`, { method: 'POST', body: 'x'.repeat(200_000) });
    await response.body.text();
    const id = response.headers['x-correlation-id'] as string;
    const transaction = await eventually(async () => byTransaction(await fixture.workspace.logLines()).get(id), 5_000, 'the log line');
    const stored = await readFile(fileURLToPath(transaction.legs[0]!.protocolInfo.recvPayload));
    expect(stored.length).toBe(200_000);
  });
});
