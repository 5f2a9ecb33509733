import { readdir, readFile } from 'node:fs/promises';
import type { IncomingMessage } from 'node:http';
import { join } from 'node:path';
import { gunzipSync, gzipSync } from 'node:zlib';
import { fileURLToPath } from 'node:url';
import { request } from 'undici';
import { beforeEach, describe, expect, it } from 'vitest';
import { baseConfig, type Backend } from '../../test/support/backends.js';
import { useGatewayFixture } from '../../test/support/fixture.js';
import { byTransaction, rawExchange, type GatewayProcess, type TransactionLines } from '../../test/support/gateway-process.js';

const fixture = useGatewayFixture();
let backend: Backend;
/** Request bodies as the back end received them, in order. */
let receivedBodies: string[];

const RESPONSE_BODY = JSON.stringify({
  ok: true,
  access_token: 'SECRET-G',
  profile: { name: 'Rex', card_number: 'SECRET-H' },
});

const REQUEST_BODY = JSON.stringify({
  user: 'rex',
  password: 'SECRET-K',
  card_number: 'SECRET-L',
  nested: { deeper: { Password: 'SECRET-M', colour: 'blue' } },
  cards: [{ card_number: 'SECRET-N', label: 'main' }, 'plain'],
  note: 'keep me',
});

const SECRET_HEADERS = {
  authorization: 'Bearer SECRET-A',
  cookie: 'sid=SECRET-B',
  'x-api-key': 'SECRET-C',
  'x-session-token': 'SECRET-D',
  'proxy-authorization': 'Basic SECRET-J',
  'content-type': 'application/json',
  'x-harmless': 'visible',
};

const QUERY = '?token=SECRET-E&keep=1&sig=SECRET-I';
const REDACTED_QUERY = '?token=[REDACTED]&keep=1&sig=[REDACTED]';

// OAuth implicit flow: the token comes back in the fragment.
const REDIRECT_LOCATION = 'https://app.example/cb#access_token=SECRET-LOC&token_type=bearer';
const REDIRECT_CONTENT_LOCATION = '/r?code=SECRET-CL&keep=1#id_token=SECRET-CL2';

function readBody(incoming: IncomingMessage): Promise<Buffer> {
  return new Promise((resolve) => {
    const chunks: Buffer[] = [];
    incoming.on('data', (chunk: Buffer) => chunks.push(chunk));
    incoming.on('end', () => resolve(Buffer.concat(chunks)));
  });
}

beforeEach(async () => {
  receivedBodies = [];
  backend = await fixture.backend((incoming, outgoing) => {
    void readBody(incoming).then((body) => {
      receivedBodies.push(body.toString());
      if (incoming.url?.startsWith('/echo')) {
        // The body back as it came, with its content type and encoding (or none).
        const { 'content-type': type, 'content-encoding': encoding } = incoming.headers;
        outgoing.writeHead(200, { ...(type && { 'content-type': type }), ...(encoding && { 'content-encoding': encoding }) });
        outgoing.end(body);
        return;
      }
      if (incoming.url?.startsWith('/redirect')) {
        outgoing.writeHead(302, { location: REDIRECT_LOCATION, 'content-location': REDIRECT_CONTENT_LOCATION });
        outgoing.end();
        return;
      }
      if (incoming.url?.startsWith('/compressed')) {
        outgoing.writeHead(200, { 'content-type': 'application/json', 'content-encoding': 'gzip' });
        outgoing.end(gzipSync(RESPONSE_BODY));
        return;
      }
      outgoing.writeHead(200, { 'content-type': 'application/json; charset=utf-8', 'set-cookie': 'session=SECRET-F; HttpOnly' });
      outgoing.end(RESPONSE_BODY);
    });
  });
});

function startRecordingEverything(overrides: Record<string, any> = {}, env: NodeJS.ProcessEnv = {}): Promise<GatewayProcess> {
  const config = baseConfig(fixture.workspace, backend.url, {
    // Secret headers named as tag headers must not leak through the tags either.
    api: { detailedRecording: 'full', tagHeaders: ['X-Session-Token', 'Authorization'] },
    analytics: { redact: { headers: ['X-Session-Token'], queryParams: ['sig'], jsonFields: ['card_number'] }, ...overrides },
    trafficLog: { payloads: { enabled: true } },
  });
  return fixture.start(config, env);
}

/** The login request carrying every kind of secret. */
async function sendSecrets(gw: GatewayProcess) {
  const response = await request(`${gw.url}/api/login${QUERY}`, { method: 'POST', headers: SECRET_HEADERS, body: REQUEST_BODY });
  return { response, body: await response.body.text(), id: response.headers['x-correlation-id'] as string };
}

/** Every file below `directory` with its bytes. */
async function allFiles(directory: string): Promise<Map<string, Buffer>> {
  const files = new Map<string, Buffer>();
  for (const entry of await readdir(directory, { recursive: true, withFileTypes: true })) {
    if (entry.isFile()) {
      const path = join(entry.parentPath, entry.name);
      files.set(path, await readFile(path));
    }
  }
  return files;
}

function expectNoSecret(where: string, bytes: Buffer | string): void {
  const text = Buffer.isBuffer(bytes) ? bytes.toString('latin1') : bytes;
  const at = text.indexOf('SECRET');
  expect(at, `${where} holds ${text.slice(Math.max(at - 40, 0), at + 20)}`).toBe(-1);
}

async function expectNoSecretInWorkspace(): Promise<Map<string, Buffer>> {
  const files = await allFiles(fixture.workspace.dir);
  expect(files.size).toBeGreaterThan(1);
  for (const [path, bytes] of files) expectNoSecret(path, bytes);
  return files;
}

async function payloadJson(uri: string): Promise<unknown> {
  return JSON.parse(await readFile(fileURLToPath(uri), 'utf8')) as unknown;
}

/** Checks the records of the login transaction: redacted where the secrets were, intact elsewhere. */
async function expectRedactedRecord(transaction: TransactionLines): Promise<void> {
  const [client, upstream] = transaction.legs;
  expect(transaction.summary.path).toBe('/api/login');
  expect(transaction.summary.tags).toEqual(['x-session-token-[REDACTED]', 'authorization-[REDACTED]']);
  expect(client!.protocolInfo.http.uri).toBe(`/api/login${REDACTED_QUERY}`);
  expect(upstream!.protocolInfo.http.uri).toBe(`/login${REDACTED_QUERY}`);

  const received = client!.protocolInfo.recvHeader as string;
  expect(received.startsWith(`POST /api/login${REDACTED_QUERY} HTTP/1.1\r\n`)).toBe(true);
  for (const name of ['authorization', 'cookie', 'x-api-key', 'x-session-token', 'proxy-authorization']) {
    expect(received).toContain(`\r\n${name}: [REDACTED]\r\n`);
  }
  expect(received).toContain('\r\nx-harmless: visible\r\n');

  const sent = upstream!.protocolInfo.sentHeader as string;
  expect(sent.startsWith(`POST /login${REDACTED_QUERY} HTTP/1.1\r\n`)).toBe(true);
  for (const name of ['authorization', 'cookie', 'x-api-key', 'x-session-token']) expect(sent).toContain(`\r\n${name}: [REDACTED]\r\n`);
  expect(sent).toContain('\r\nx-harmless: visible\r\n');

  expect(upstream!.protocolInfo.recvHeader).toMatch(/\r\nset-cookie: \[REDACTED\]\r\n/i);
  expect(client!.protocolInfo.sentHeader).toMatch(/\r\nset-cookie: \[REDACTED\]\r\n/i);

  const redactedRequest = {
    user: 'rex',
    password: '[REDACTED]',
    card_number: '[REDACTED]',
    nested: { deeper: { Password: '[REDACTED]', colour: 'blue' } },
    cards: [{ card_number: '[REDACTED]', label: 'main' }, 'plain'],
    note: 'keep me',
  };
  expect(await payloadJson(client!.protocolInfo.recvPayload)).toEqual(redactedRequest);
  expect(await payloadJson(upstream!.protocolInfo.sentPayload)).toEqual(redactedRequest);
  const redactedResponse = { ok: true, access_token: '[REDACTED]', profile: { name: 'Rex', card_number: '[REDACTED]' } };
  expect(await payloadJson(upstream!.protocolInfo.recvPayload)).toEqual(redactedResponse);
  expect(await payloadJson(client!.protocolInfo.sentPayload)).toEqual(redactedResponse);
}

describe('redaction of recorded traffic', () => {
  it('keeps every secret out of every byte of the log and payload files, with [REDACTED] in their place', async () => {
    const gw = await startRecordingEverything();
    const { id } = await sendSecrets(gw);
    expect(await gw.stop()).toBe(0);

    const files = await expectNoSecretInWorkspace();
    expect([...files.keys()].filter((path) => path.startsWith(fixture.workspace.payloadDir))).toHaveLength(4);
    const transaction = byTransaction(await fixture.workspace.logLines()).get(id)!;
    await expectRedactedRecord(transaction);
    expectNoSecret('stderr', gw.stderr);
  });

  it('keeps every secret out of the traffic lines on stdout too', async () => {
    const gw = await startRecordingEverything({}, { TOLLGATE_TRAFFIC_LOG_OUTPUT: 'stdout' });
    const { id } = await sendSecrets(gw);
    expect(await gw.stop()).toBe(0);

    expectNoSecret('stdout', gw.stdout);
    expectNoSecret('stderr', gw.stderr);
    await expectNoSecretInWorkspace();
    const transaction = byTransaction(gw.stdoutLines()).get(id)!;
    await expectRedactedRecord(transaction);
  });

  it('keeps a token in a fragment of the request target out of the path, the operation and the 404 answer', async () => {
    const gw = await startRecordingEverything();
    // A client may send a fragment (browsers never do); Node passes it on.
    const routed = await rawExchange(gw.url, 'GET /api/echo#access_token=SECRET-Q HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n');
    const unrouted = await rawExchange(gw.url, 'GET /nowhere#access_token=SECRET-R HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n');
    expect(routed).toMatch(/^HTTP\/1.1 200 /);
    expect(unrouted).toMatch(/^HTTP\/1.1 404 /);
    expectNoSecret('the 404 answer', unrouted);
    expect(await gw.stop()).toBe(0);
    await expectNoSecretInWorkspace();
    const paths = [...byTransaction(await fixture.workspace.logLines()).values()].map((transaction) => transaction.summary.path);
    expect(paths.sort()).toEqual(['/api/echo', '/nowhere']);
    expect(receivedBodies).toEqual(['']);
  });

  it('redacts only the records: the back end gets the real secrets and the client the real response', async () => {
    const gw = await startRecordingEverything();
    const { response, body } = await sendSecrets(gw);

    expect(response.statusCode).toBe(200);
    expect(response.headers['set-cookie']).toBe('session=SECRET-F; HttpOnly');
    expect(body).toBe(RESPONSE_BODY);

    const seen = backend.seen[0]!;
    expect(seen.url).toBe(`/login${QUERY}`);
    expect(seen.headers.authorization).toBe('Bearer SECRET-A');
    expect(seen.headers.cookie).toBe('sid=SECRET-B');
    expect(seen.headers['x-api-key']).toBe('SECRET-C');
    expect(seen.headers['x-session-token']).toBe('SECRET-D');
    // Proxy-Authorization is hop-by-hop: meant for the gateway, never forwarded.
    expect(seen.headers['proxy-authorization']).toBeUndefined();
    expect(receivedBodies).toEqual([REQUEST_BODY]);
  });

  it('redacts compressed JSON bodies, storing them decoded, while both ends get the compressed bytes', async () => {
    const gw = await startRecordingEverything();
    const compressed = gzipSync(REQUEST_BODY);
    const response = await request(`${gw.url}/api/compressed`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', 'content-encoding': 'gzip' },
      body: compressed,
    });
    expect(gunzipSync(Buffer.from(await response.body.arrayBuffer())).toString()).toBe(RESPONSE_BODY);
    const id = response.headers['x-correlation-id'] as string;
    expect(await gw.stop()).toBe(0);

    await expectNoSecretInWorkspace();
    const [client, upstream] = byTransaction(await fixture.workspace.logLines()).get(id)!.legs;
    expect(upstream!.protocolInfo.http.bytesSent).toBe(compressed.length);
    expect(await payloadJson(client!.protocolInfo.recvPayload)).toMatchObject({ user: 'rex', password: '[REDACTED]', note: 'keep me' });
    expect(await payloadJson(upstream!.protocolInfo.recvPayload)).toMatchObject({ ok: true, access_token: '[REDACTED]' });
  });

  it('redacts form bodies in both directions', async () => {
    const gw = await startRecordingEverything();
    const body = 'user=rex&password=SECRET-FORM&card_number=SECRET-CARD&keep=1';
    const response = await request(`${gw.url}/api/echo`, { method: 'POST', headers: { 'content-type': 'application/x-www-form-urlencoded' }, body });
    expect(await response.body.text()).toBe(body);
    const id = response.headers['x-correlation-id'] as string;
    expect(await gw.stop()).toBe(0);

    await expectNoSecretInWorkspace();
    const [client, upstream] = byTransaction(await fixture.workspace.logLines()).get(id)!.legs;
    for (const uri of [client!.protocolInfo.recvPayload, upstream!.protocolInfo.recvPayload]) {
      expect(await readFile(fileURLToPath(uri), 'utf8')).toBe('user=rex&password=[REDACTED]&card_number=[REDACTED]&keep=1');
    }
  });

  it('does not store a JSON body in an encoding it cannot decode, and says so', async () => {
    const gw = await startRecordingEverything();
    const response = await request(`${gw.url}/api/echo`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', 'content-encoding': 'zstd' },
      body: REQUEST_BODY,
    });
    await response.body.text();
    const id = response.headers['x-correlation-id'] as string;
    expect(await gw.stop()).toBe(0);

    await expectNoSecretInWorkspace();
    const [client] = byTransaction(await fixture.workspace.logLines()).get(id)!.legs;
    expect(client!.protocolInfo.recvPayload).toBeNull();
    expect(gw.stderr).toMatch(/Content-Encoding "zstd" was not stored/);
  });

  it('redacts a secret cut in two by maxPayloadBytes, in both directions', async () => {
    const body = JSON.stringify({ pad: 'x'.repeat(300), items: [{ password: 'SECRET-TRUNCATED-0123456789' }], after: 'never stored' });
    const cut = body.indexOf('SECRET-TRUNCATED') + 'SECRET-TRU'.length;
    const gw = await startRecordingEverything({ maxPayloadBytes: cut });
    const response = await request(`${gw.url}/api/echo`, { method: 'POST', headers: { 'content-type': 'application/json' }, body });
    expect(await response.body.text()).toBe(body);
    const id = response.headers['x-correlation-id'] as string;
    expect(await gw.stop()).toBe(0);

    await expectNoSecretInWorkspace();
    const [client, upstream] = byTransaction(await fixture.workspace.logLines()).get(id)!.legs;
    expect(client!.protocolInfo.recvPayloadTruncated).toBe(true);
    expect(upstream!.protocolInfo.recvPayloadTruncated).toBe(true);
    const expected = `{"pad":"${'x'.repeat(300)}","items":[{"password":"[REDACTED]"`;
    for (const uri of [client!.protocolInfo.recvPayload, upstream!.protocolInfo.sentPayload, upstream!.protocolInfo.recvPayload, client!.protocolInfo.sentPayload]) {
      expect(await readFile(fileURLToPath(uri), 'utf8')).toBe(expected);
    }
    expect(receivedBodies).toEqual([body]);
  });

  it('stores a JSON body byte for byte but for the secret values: numbers, spacing, duplicate keys and __proto__ as they passed', async () => {
    const gw = await startRecordingEverything();
    const body =
      '{ "big": 12345678901234567890, "price": 1.10,\n  "dup": 1, "dup": 2, "password": "SECRET-1", "Password": ["SECRET-2"],\n' +
      '  "__proto__": {"card_number": 4111111111111111, "kept": true}, "pass\\u0077ord": {"x": "SECRET-3"} }';
    const { id } = await send(gw, '/api/echo', { method: 'POST', headers: { 'content-type': 'application/json' }, body });
    expect(await gw.stop()).toBe(0);

    await expectNoSecretInWorkspace();
    const expected =
      '{ "big": 12345678901234567890, "price": 1.10,\n  "dup": 1, "dup": 2, "password": "[REDACTED]", "Password": "[REDACTED]",\n' +
      '  "__proto__": {"card_number": "[REDACTED]", "kept": true}, "pass\\u0077ord": "[REDACTED]" }';
    const [client, upstream] = await legsOf(id);
    for (const uri of [client!.protocolInfo.recvPayload, upstream!.protocolInfo.recvPayload]) expect(await payloadText(uri)).toBe(expected);
  });

  it('redacts JSON sent as text/plain or without a content type, and stores other text as it passed', async () => {
    const gw = await startRecordingEverything();
    const json = '{"user":"rex","password":"SECRET-PLAIN","n":1.10}';
    const typed = await send(gw, '/api/echo', { method: 'POST', headers: { 'content-type': 'text/plain; charset=utf-8' }, body: json });
    const untyped = await send(gw, '/api/echo', { method: 'POST', body: `\n[${json}]` });
    const text = 'a note that says "password": kept';
    const notJson = await send(gw, '/api/echo', { method: 'POST', headers: { 'content-type': 'text/plain' }, body: text });
    expect(typed.body.toString()).toBe(json);
    expect(untyped.body.toString()).toBe(`\n[${json}]`);
    expect(receivedBodies).toEqual([json, `\n[${json}]`, text]);
    expect(await gw.stop()).toBe(0);

    await expectNoSecretInWorkspace();
    const redacted = '{"user":"rex","password":"[REDACTED]","n":1.10}';
    for (const [exchange, expected] of [[typed, redacted], [untyped, `\n[${redacted}]`], [notJson, text]] as const) {
      const [client, upstream] = await legsOf(exchange.id);
      expect(await payloadText(client!.protocolInfo.recvPayload)).toBe(expected);
      expect(await payloadText(upstream!.protocolInfo.recvPayload)).toBe(expected);
    }
    const [untypedClient, untypedUpstream] = await legsOf(untyped.id);
    expect(untypedClient!.protocolInfo.recvHeader).not.toMatch(/\r\ncontent-type:/i);
    expect(untypedUpstream!.protocolInfo.recvHeader).not.toMatch(/\r\ncontent-type:/i);
  });

  it('redacts fields with bracketed names in the query and in form bodies, plain and percent-encoded', async () => {
    const gw = await startRecordingEverything();
    const fields = 'user[password]=SECRET-1&token[]=SECRET-2&a[b][token]=SECRET-3&user%5Bpassword%5D=SECRET-4&token%5B%5D=SECRET-5&user[name]=rex';
    const redacted = 'user[password]=[REDACTED]&token[]=[REDACTED]&a[b][token]=[REDACTED]&user%5Bpassword%5D=[REDACTED]&token%5B%5D=[REDACTED]&user[name]=rex';
    const { id } = await send(gw, `/api/echo?${fields}`, { method: 'POST', headers: { 'content-type': 'application/x-www-form-urlencoded' }, body: fields });
    expect(backend.seen[0]!.url).toBe(`/echo?${fields}`);
    expect(await gw.stop()).toBe(0);

    await expectNoSecretInWorkspace();
    const [client, upstream] = await legsOf(id);
    expect(client!.protocolInfo.http.uri).toBe(`/api/echo?${redacted}`);
    expect(upstream!.protocolInfo.http.uri).toBe(`/echo?${redacted}`);
    expect((client!.protocolInfo.recvHeader as string).startsWith(`POST /api/echo?${redacted} HTTP/1.1\r\n`)).toBe(true);
    expect(await payloadText(client!.protocolInfo.recvPayload)).toBe(redacted);
    expect(await payloadText(upstream!.protocolInfo.recvPayload)).toBe(redacted);
  });

  it('redacts tokens in the fragment and query of Location, Content-Location and Referer, while the client gets them', async () => {
    const gw = await startRecordingEverything();
    const referer = 'https://app.example/#/callback?access_token=SECRET-REF&state=1';
    const { id, statusCode, headers } = await send(gw, '/api/redirect', { headers: { referer } });
    expect(statusCode).toBe(302);
    expect(headers.location).toBe(REDIRECT_LOCATION);
    expect(headers['content-location']).toBe(REDIRECT_CONTENT_LOCATION);
    expect(backend.seen[0]!.headers.referer).toBe(referer);
    expect(await gw.stop()).toBe(0);

    await expectNoSecretInWorkspace();
    const [client, upstream] = await legsOf(id);
    for (const header of [upstream!.protocolInfo.recvHeader, client!.protocolInfo.sentHeader]) {
      expect(header).toContain('\r\nlocation: https://app.example/cb#access_token=[REDACTED]&token_type=bearer\r\n');
      expect(header).toContain('\r\ncontent-location: /r?code=[REDACTED]&keep=1#id_token=[REDACTED]\r\n');
    }
    for (const header of [client!.protocolInfo.recvHeader, upstream!.protocolInfo.sentHeader]) {
      expect(header).toContain('\r\nreferer: https://app.example/#/callback?access_token=[REDACTED]&state=1\r\n');
    }
  });

  it('redacts the OAuth code, id_token and refresh_token by default, but keeps "code" fields of JSON bodies', async () => {
    const gw = await startRecordingEverything();
    const form = 'grant_type=authorization_code&code=SECRET-1&refresh_token=SECRET-2&redirect_uri=https%3A%2F%2Fapp%2Fcb';
    const tokenRequest = await send(gw, '/api/echo?code=SECRET-3&id_token=SECRET-4&refresh_token=SECRET-5&state=s', {
      method: 'POST',
      headers: { 'content-type': 'application/x-www-form-urlencoded' },
      body: form,
    });
    const json = '{"error":{"code":"NOT_FOUND"},"id_token":"SECRET-6","refresh_token":"SECRET-7"}';
    const jsonRequest = await send(gw, '/api/echo', { method: 'POST', headers: { 'content-type': 'application/json' }, body: json });
    expect(await gw.stop()).toBe(0);

    await expectNoSecretInWorkspace();
    const [formClient] = await legsOf(tokenRequest.id);
    expect(formClient!.protocolInfo.http.uri).toBe('/api/echo?code=[REDACTED]&id_token=[REDACTED]&refresh_token=[REDACTED]&state=s');
    expect(await payloadText(formClient!.protocolInfo.recvPayload)).toBe(
      'grant_type=authorization_code&code=[REDACTED]&refresh_token=[REDACTED]&redirect_uri=https%3A%2F%2Fapp%2Fcb',
    );
    const [jsonClient] = await legsOf(jsonRequest.id);
    expect(await payloadText(jsonClient!.protocolInfo.recvPayload)).toBe('{"error":{"code":"NOT_FOUND"},"id_token":"[REDACTED]","refresh_token":"[REDACTED]"}');
  });

  it('stores a compressed JSON body longer than maxPayloadBytes once decoded cut there, redacted, and marked truncated', async () => {
    const body = JSON.stringify({ user: 'rex', pad: 'x'.repeat(400), password: 'SECRET-GZ-0123456789', after: 'never stored' });
    const limit = body.indexOf('SECRET-GZ') + 'SECRET'.length;
    const compressed = gzipSync(body);
    // Only decoding makes it longer than the limit: the compressed body is captured whole.
    expect(compressed.length).toBeLessThan(limit);
    const gw = await startRecordingEverything({ maxPayloadBytes: limit });
    const { id, body: answer } = await send(gw, '/api/echo', {
      method: 'POST',
      headers: { 'content-type': 'application/json', 'content-encoding': 'gzip' },
      body: compressed,
    });
    expect(gunzipSync(answer).toString()).toBe(body);
    expect(await gw.stop()).toBe(0);

    await expectNoSecretInWorkspace();
    const [client, upstream] = await legsOf(id);
    const expected = `${body.slice(0, body.indexOf('"SECRET-GZ'))}"[REDACTED]"`;
    for (const leg of [client!, upstream!]) {
      expect(leg.protocolInfo.recvPayloadTruncated).toBe(true);
      expect(leg.protocolInfo.sentPayloadTruncated).toBe(true);
      expect(await payloadText(leg.protocolInfo.recvPayload)).toBe(expected);
      expect(await payloadText(leg.protocolInfo.sentPayload)).toBe(expected);
    }
  });
});

/** One request through the gateway: its status, headers, body and correlation id. */
async function send(gw: GatewayProcess, path: string, options: Parameters<typeof request>[1] = {}) {
  const response = await request(`${gw.url}${path}`, options);
  const body = Buffer.from(await response.body.arrayBuffer());
  return { statusCode: response.statusCode, headers: response.headers, body, id: response.headers['x-correlation-id'] as string };
}

async function legsOf(id: string): Promise<TransactionLines['legs']> {
  return byTransaction(await fixture.workspace.logLines()).get(id)!.legs;
}

function payloadText(uri: string): Promise<string> {
  return readFile(fileURLToPath(uri), 'utf8');
}

