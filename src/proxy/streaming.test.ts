import { readFile } from 'node:fs/promises';
import { Readable } from 'node:stream';
import { fileURLToPath } from 'node:url';
import { request } from 'undici';
import { describe, expect, it } from 'vitest';
import { baseConfig } from '../../test/support/backends.js';
import { useGatewayFixture } from '../../test/support/fixture.js';
import { byTransaction } from '../../test/support/gateway-process.js';

const MB = 1024 * 1024;
const BODY_BYTES = 200 * MB;
// V8 frees the buffers of chunks that passed lazily: it collects once some tens of MB of
// external memory have piled up (seen here: 11-55 MB). "Flat" therefore means bounded well
// below the body size, which buffering would add whole.
const MAX_GROWTH = 80 * MB;

const fixture = useGatewayFixture({ demo: true });

async function residentBytes(pid: number): Promise<number> {
  const status = await readFile(`/proc/${pid}/status`, 'utf8');
  const kb = /VmRSS:\s+(\d+) kB/.exec(status);
  return Number(kb?.[1] ?? 0) * 1024;
}

/** Samples the gateway's resident memory until stopped; returns the peak. */
function sampleMemory(pid: number): { stop(): Promise<number> } {
  let peak = 0;
  let running = true;
  const loop = (async () => {
    while (running) {
      peak = Math.max(peak, await residentBytes(pid));
      await new Promise((resolve) => setTimeout(resolve, 20));
    }
  })();
  return {
    async stop() {
      running = false;
      await loop;
      return peak;
    },
  };
}

function upload(size: number): Readable {
  const chunk = Buffer.alloc(64 * 1024, 0x62);
  let left = size;
  return new Readable({
    read() {
      if (left <= 0) return void this.push(null);
      const piece = left >= chunk.length ? chunk : chunk.subarray(0, left);
      left -= piece.length;
      this.push(piece);
    },
  });
}

describe('streaming through the gateway', () => {
  it('streams a 200 MB upload with full recording while the gateway memory stays flat', async () => {
    const config = baseConfig(fixture.workspace, fixture.demo.url, { trafficLog: { payloads: { enabled: true } } });
    const gateway = await fixture.start(config);
    for (let i = 0; i < 20; i++) await (await request(`${gateway.url}/api/echo`, { method: 'POST', body: 'warm-up' })).body.text();
    const before = await residentBytes(gateway.pid);

    const sampler = sampleMemory(gateway.pid);
    const response = await request(`${gateway.url}/api/drain`, {
      method: 'POST',
      body: upload(BODY_BYTES),
      headers: { 'content-type': 'application/octet-stream', 'content-length': String(BODY_BYTES) },
    });
    const answer = (await response.body.json()) as { received: number };
    const peak = await sampler.stop();

    expect(answer.received).toBe(BODY_BYTES);
    expect(peak - before).toBeLessThan(MAX_GROWTH);

    await gateway.stop();
    const transaction = byTransaction(await fixture.workspace.logLines()).get(response.headers['x-correlation-id'] as string)!;
    const [client, upstream] = transaction.legs;
    expect(client!.protocolInfo.http.bytesReceived).toBe(BODY_BYTES);
    expect(upstream!.protocolInfo.http.bytesSent).toBe(BODY_BYTES);
    expect(client!.protocolInfo.recvPayloadTruncated).toBe(true);
    expect((await readFile(fileURLToPath(client!.protocolInfo.recvPayload))).length).toBe(MB);
  });

  it('streams a 200 MB download with full recording, flat memory, every byte delivered', async () => {
    const config = baseConfig(fixture.workspace, fixture.demo.url, { trafficLog: { payloads: { enabled: true } } });
    const gateway = await fixture.start(config);
    for (let i = 0; i < 20; i++) await (await request(`${gateway.url}/api/hello`)).body.text();
    const before = await residentBytes(gateway.pid);

    const sampler = sampleMemory(gateway.pid);
    const response = await request(`${gateway.url}/api/bytes?n=${BODY_BYTES}`);
    let received = 0;
    for await (const chunk of response.body) {
      received += (chunk as Buffer).length;
      // A slow reader: the gateway must hold back the back end, not buffer for us.
      if (received % (32 * MB) < 65_536) await new Promise((resolve) => setTimeout(resolve, 50));
    }
    const peak = await sampler.stop();

    expect(received).toBe(BODY_BYTES);
    expect(peak - before).toBeLessThan(MAX_GROWTH);
  });
});
