import { connect, type Socket } from 'node:net';
import { describe, expect, it } from 'vitest';
import { baseConfig } from '../../test/support/backends.js';
import { useGatewayFixture } from '../../test/support/fixture.js';
import { byTransaction } from '../../test/support/gateway-process.js';

const fixture = useGatewayFixture();

function openSocket(url: string): Promise<Socket> {
  const { hostname, port } = new URL(url);
  return new Promise((resolve, reject) => {
    const socket = connect(Number(port), hostname, () => resolve(socket));
    socket.once('error', reject);
  });
}

/**
 * Sends the requests one after the other on one connection, each once the previous response's
 * head has arrived (the last should close the connection), and returns all the bytes received.
 */
async function converse(url: string, requests: string[]): Promise<{ transcript: string; clientPort: number }> {
  const socket = await openSocket(url);
  const clientPort = socket.localPort!;
  let transcript = '';
  let waiting: (() => void) | null = null;
  let heads = 0;
  socket.on('data', (chunk: Buffer) => {
    transcript += chunk.toString('latin1');
    if (transcript.split('\r\n\r\n').length - 1 > heads) waiting?.();
  });
  const closed = new Promise<void>((resolve) => socket.once('close', () => resolve()));
  for (const [index, text] of requests.entries()) {
    const headArrived = new Promise<void>((resolve) => (waiting = resolve));
    socket.write(text);
    if (index === requests.length - 1) break;
    await headArrived;
    heads++;
  }
  await closed;
  return { transcript, clientPort };
}

/** Splits a transcript of responses without bodies, then one with its body last. */
function splitResponses(transcript: string, bodiless: number): { heads: string[]; last: string } {
  const heads: string[] = [];
  let at = 0;
  for (let i = 0; i < bodiless; i++) {
    // Each bodiless response ends with its head: the next one starts right after it.
    expect(transcript.startsWith('HTTP/1.1 ', at), `response ${i + 1} at byte ${at}: ${transcript.slice(at, at + 40)}`).toBe(true);
    const end = transcript.indexOf('\r\n\r\n', at) + 4;
    heads.push(transcript.slice(at, end));
    at = end;
  }
  expect(transcript.startsWith('HTTP/1.1 ', at), `last response at byte ${at}: ${transcript.slice(at, at + 40)}`).toBe(true);
  return { heads, last: transcript.slice(at) };
}

function header(head: string, name: string): string | undefined {
  return new RegExp(`\r\n${name}: ([^\r]*)\r\n`, 'i').exec(head)?.[1];
}

describe('responses without a body', () => {
  it('passes HEAD, 204 and 304 on without a body, keeps the connection usable and records no body bytes or payload files', async () => {
    const backend = await fixture.backend((incoming, response) => {
      if (incoming.url === '/document') {
        response.writeHead(200, { 'content-type': 'text/plain', 'content-length': '1234' });
        response.end();
      } else if (incoming.url === '/deleted') {
        response.writeHead(204, { 'x-deleted': 'yes' });
        response.end();
      } else if (incoming.url === '/cached') {
        response.writeHead(304, { etag: '"v1"', 'cache-control': 'max-age=60' });
        response.end();
      } else {
        response.writeHead(200, { 'content-type': 'text/plain', 'content-length': '5' });
        response.end('after');
      }
    });
    const gw = await fixture.start(baseConfig(fixture.workspace, backend.url, { trafficLog: { payloads: { enabled: true } } }));
    const host = new URL(gw.url).host;

    const { transcript, clientPort } = await converse(gw.url, [
      `HEAD /api/document HTTP/1.1\r\nHost: ${host}\r\n\r\n`,
      `DELETE /api/deleted HTTP/1.1\r\nHost: ${host}\r\n\r\n`,
      `GET /api/cached HTTP/1.1\r\nHost: ${host}\r\nIf-None-Match: "v1"\r\n\r\n`,
      `GET /api/after HTTP/1.1\r\nHost: ${host}\r\nConnection: close\r\n\r\n`,
    ]);

    const { heads, last } = splitResponses(transcript, 3);
    const [head, noContent, notModified] = heads as [string, string, string];
    expect(head).toMatch(/^HTTP\/1.1 200 OK\r\n/);
    expect(header(head, 'content-length')).toBe('1234');
    expect(header(head, 'content-type')).toBe('text/plain');
    expect(noContent).toMatch(/^HTTP\/1.1 204 No Content\r\n/);
    expect(header(noContent, 'x-deleted')).toBe('yes');
    expect(header(noContent, 'transfer-encoding')).toBeUndefined();
    expect(notModified).toMatch(/^HTTP\/1.1 304 Not Modified\r\n/);
    expect(header(notModified, 'etag')).toBe('"v1"');
    expect(header(notModified, 'transfer-encoding')).toBeUndefined();
    expect(last).toMatch(/^HTTP\/1.1 200 OK\r\n[^]*\r\n\r\nafter$/);
    expect(backend.seen.map((seen) => `${seen.method} ${seen.url}`)).toEqual(['HEAD /document', 'DELETE /deleted', 'GET /cached', 'GET /after']);

    await gw.stop();
    const transactions = byTransaction(await fixture.workspace.logLines());
    const ids = [...heads, last].map((response) => header(response, 'x-correlation-id')!);
    expect([...transactions.keys()].sort()).toEqual([...ids].sort());
    const [headId, noContentId, notModifiedId, afterId] = ids as [string, string, string, string];
    for (const [id, method, status] of [
      [headId, 'HEAD', 200],
      [noContentId, 'DELETE', 204],
      [notModifiedId, 'GET', 304],
    ] as const) {
      const { summary, legs } = transactions.get(id)!;
      expect(summary, id).toMatchObject({ method, httpStatus: status, status: 'success', failureReason: null });
      expect(legs, id).toHaveLength(2);
      for (const leg of legs) {
        expect(leg, `${method} leg ${leg.leg}`).toMatchObject({
          finalStatus: 'Pass',
          protocolInfo: { recvPayload: null, sentPayload: null, http: { status, bytesSent: 0, bytesReceived: 0 } },
        });
      }
      // One keep-alive connection carried every request.
      expect(legs[0]!.protocolInfo.http.remotePort).toBe(String(clientPort));
    }
    const after = transactions.get(afterId)!;
    expect(after.legs[0]!.protocolInfo.http.remotePort).toBe(String(clientPort));
    expect(after.legs[0]!.protocolInfo.http.bytesSent).toBe(5);

    // The one response with a body is the only one with payload files.
    const files = (await fixture.workspace.payloadFiles()).map((file) => file.split('/').pop());
    expect(files).toEqual([`${afterId}-0-sent`, `${afterId}-1-received`]);
  }, 10_000);
});
