import { readdir, readFile, stat } from 'node:fs/promises';
import { fileURLToPath } from 'node:url';
import { request } from 'undici';
import { describe, expect, it } from 'vitest';
import { baseConfig } from '../../test/support/backends.js';
import { useGatewayFixture } from '../../test/support/fixture.js';
import { byTransaction, runCli, type GatewayProcess, type TransactionLines } from '../../test/support/gateway-process.js';

const MB = 1024 * 1024;
const PACKED_LINK = /^file:\/\/\/.+\/test_gw_payloads_(\d{4}-\d{2}-\d{2})-(\d+)\.bin#offset=(\d+)&length=(\d+)$/;

const fixture = useGatewayFixture({ demo: true });

function startPacked(payloads: Record<string, any> = {}): Promise<GatewayProcess> {
  const config = baseConfig(fixture.workspace, fixture.demo.url, { trafficLog: { payloads: { enabled: true, layout: 'packed', ...payloads } } });
  return fixture.start(config);
}

interface PackedLink {
  file: string;
  day: string;
  n: number;
  offset: number;
  length: number;
}

function packedLink(link: string): PackedLink {
  const match = PACKED_LINK.exec(link);
  if (match === null) throw new Error(`not a packed payload link: ${link}`);
  const [, day, n, offset, length] = match as unknown as [string, string, string, string, string];
  return { file: fileURLToPath(link.slice(0, link.indexOf('#'))), day, n: Number(n), offset: Number(offset), length: Number(length) };
}

/** What `tollgate payload <link>` prints, as bytes; fails when it does not exit 0. */
async function printed(link: string): Promise<Buffer> {
  const result = await runCli(['payload', link]);
  expect(result.stderr).toBe('');
  expect(result.code).toBe(0);
  return result.stdoutBytes;
}

async function postJson(gw: GatewayProcess, body: string): Promise<string> {
  const response = await request(`${gw.url}/api/echo`, { method: 'POST', body, headers: { 'content-type': 'application/json' } });
  expect(response.statusCode).toBe(200);
  expect(await response.body.text()).toBe(body);
  return response.headers['x-correlation-id'] as string;
}

/** The four links of a POST through one back end: request body (leg 0 received, leg 1 sent), response body (leg 1 received, leg 0 sent). */
function postLinks(transaction: TransactionLines): { request: string; response: string } {
  const [client, upstream] = transaction.legs.map((leg) => leg.protocolInfo);
  // A body that passed unchanged is stored once: both places link to the same bytes.
  expect(client.recvPayload).toBe(upstream.sentPayload);
  expect(upstream.recvPayload).toBe(client.sentPayload);
  return { request: client.recvPayload, response: upstream.recvPayload };
}


describe('packed payload layout', () => {
  it('links a POST and a GET to byte ranges of one .bin file, each body redacted and stored once', async () => {
    const gw = await startPacked();
    const sent = '{"name": "Rëx",\n  "password" : "hunter2", "weight": 1.50e1, "tags":[ "a" ]}';
    const postId = await postJson(gw, sent);
    const get = await request(`${gw.url}/api/pets/2`);
    const getBody = Buffer.from(await get.body.arrayBuffer());
    const getId = get.headers['x-correlation-id'] as string;

    const transactions = await fixture.transactionsAfterStop();
    const redacted = Buffer.from(sent.replace('"hunter2"', '"[REDACTED]"'));
    const post = postLinks(transactions.get(postId)!);
    const getLegs = transactions.get(getId)!.legs.map((leg) => leg.protocolInfo);
    expect(getLegs[0].recvPayload).toBeNull();
    expect(getLegs[1].sentPayload).toBeNull();
    expect(getLegs[1].recvPayload).toBe(getLegs[0].sentPayload);

    const links = [post.request, post.response, getLegs[1].recvPayload as string].map(packedLink);
    const day = links[0]!.day;
    const file = fixture.workspace.path('payloads', `test_gw_payloads_${day}-1.bin`);
    expect(links.map((link) => link.file)).toEqual([file, file, file]);
    expect(links.map((link) => link.length)).toEqual([redacted.length, redacted.length, getBody.length]);
    expect(await fixture.workspace.payloadFiles()).toEqual([`test_gw_payloads_${day}-1.bin`]);
    // Three bodies, each once: nothing else is in the file.
    expect((await stat(file)).size).toBe(2 * redacted.length + getBody.length);

    expect(await printed(post.request)).toEqual(redacted);
    expect(await printed(post.response)).toEqual(redacted);
    expect(await printed(getLegs[1].recvPayload)).toEqual(getBody);
  });

  it('rolls to the next numbered file at maxFileSizeMb, and links into the first file stay valid', async () => {
    const maxFileSizeMb = 0.05;
    const gw = await startPacked({ maxFileSizeMb });
    const bodies = new Map<string, string>();
    for (let i = 0; i < 12; i++) {
      const body = JSON.stringify({ i, password: `secret-${i}`, pad: String(i % 10).repeat(9_000) });
      bodies.set(await postJson(gw, body), body);
    }

    const transactions = await fixture.transactionsAfterStop();
    const stored = [...bodies].map(([id, body]) => ({ links: postLinks(transactions.get(id)!), redacted: Buffer.from(body.replace(/"secret-\d+"/, '"[REDACTED]"')) }));
    const files = (await fixture.workspace.payloadFiles()).sort((a, b) => a.localeCompare(b, 'en', { numeric: true }));
    const day = packedLink(stored[0]!.links.request).day;
    expect(files.length).toBeGreaterThanOrEqual(4);
    expect(files).toEqual(Array.from({ length: files.length }, (_, i) => `test_gw_payloads_${day}-${i + 1}.bin`));
    for (const name of files) expect((await stat(fixture.workspace.path('payloads', name))).size).toBeLessThanOrEqual(maxFileSizeMb * MB);
    for (const { links, redacted } of stored) {
      for (const link of [links.request, links.response].map(packedLink)) {
        expect(link.length).toBe(redacted.length);
        expect(link.offset + link.length).toBeLessThanOrEqual((await stat(link.file)).size);
      }
    }

    const first = stored[0]!;
    const last = stored.at(-1)!;
    expect(packedLink(first.links.request).n).toBe(1);
    expect(packedLink(last.links.request).n).toBe(files.length);
    expect(await printed(first.links.request)).toEqual(first.redacted);
    expect(await printed(first.links.response)).toEqual(first.redacted);
    expect(await printed(last.links.response)).toEqual(last.redacted);
  });

  it('continues with the next file number after a restart, leaving the files links point to as they were', async () => {
    const firstBody = '{"run":1,"password":"one"}';
    const firstId = await postJson(await startPacked(), firstBody);
    const firstLinks = postLinks((await fixture.transactionsAfterStop()).get(firstId)!);
    const firstFile = packedLink(firstLinks.request).file;
    const firstFileBytes = await readFile(firstFile);

    const secondBody = '{"run":2,"password":"two"}';
    const secondId = await postJson(await startPacked(), secondBody);
    const secondLinks = postLinks((await fixture.transactionsAfterStop()).get(secondId)!);

    const before = packedLink(firstLinks.request);
    const after = packedLink(secondLinks.request);
    expect(after.file).toBe(fixture.workspace.path('payloads', `test_gw_payloads_${before.day}-${before.n + 1}.bin`));
    expect(after.offset).toBe(0);
    expect(await readFile(firstFile)).toEqual(firstFileBytes);
    expect((await readdir(fixture.workspace.payloadDir)).sort()).toEqual([`test_gw_payloads_${before.day}-1.bin`, `test_gw_payloads_${before.day}-2.bin`]);
    expect((await printed(firstLinks.request)).toString()).toBe('{"run":1,"password":"[REDACTED]"}');
    expect((await printed(secondLinks.response)).toString()).toBe('{"run":2,"password":"[REDACTED]"}');
  });
});

describe('packed payload files and the disk quota', () => {
  function startQuiet(payloads: Record<string, any>, maxDiskSpaceMb: number): Promise<GatewayProcess> {
    // The traffic log goes to standard output, so only payload files count against the quota.
    const config = baseConfig(fixture.workspace, fixture.demo.url, {
      trafficLog: { output: 'stdout', maxDiskSpaceMb, payloads: { enabled: true, layout: 'packed', ...payloads } },
    });
    return fixture.start(config);
  }

  async function postMany(gw: GatewayProcess, count: number): Promise<{ links: { request: string; response: string }; body: string }[]> {
    const ids: [string, string][] = [];
    for (let i = 0; i < count; i++) {
      const body = JSON.stringify({ i, pad: String(i % 10).repeat(9_000) });
      ids.push([await postJson(gw, body), body]);
    }
    await gw.stop();
    const transactions = byTransaction(gw.stdoutLines());
    return ids.map(([id, body]) => ({ links: postLinks(transactions.get(id)!), body }));
  }

  it('deletes the oldest finished files to meet the quota; their links then fail with a clear error', async () => {
    const gw = await startQuiet({ maxFileSizeMb: 0.05 }, 0.1);
    const stored = await postMany(gw, 12);
    const first = packedLink(stored[0]!.links.request);
    const last = stored.at(-1)!;

    const files = await fixture.workspace.payloadFiles();
    expect(files).not.toContain(`test_gw_payloads_${first.day}-1.bin`);
    expect(files).toContain(`test_gw_payloads_${first.day}-${packedLink(last.links.request).n}.bin`);
    expect((await printed(last.links.request)).toString()).toBe(last.body);
    const gone = await runCli(['payload', stored[0]!.links.request]);
    expect(gone.code).toBe(1);
    expect(gone.stdout).toBe('');
    expect(gone.stderr).toBe(`tollgate: ${first.file}: no such file (the disk quota may have deleted it)\n`);
  });

  it('never deletes the file being written, even when it alone is over the quota', async () => {
    const gw = await startQuiet({ maxFileSizeMb: 1 }, 0.05);
    const stored = await postMany(gw, 6);

    const day = packedLink(stored[0]!.links.request).day;
    expect(await fixture.workspace.payloadFiles()).toEqual([`test_gw_payloads_${day}-1.bin`]);
    for (const { links, body } of stored) expect((await printed(links.response)).toString()).toBe(body);
  });
});
