import { readdir, stat } from 'node:fs/promises';
import { request } from 'undici';
import { describe, expect, it } from 'vitest';
import { baseConfig } from '../../test/support/backends.js';
import { useGatewayFixture } from '../../test/support/fixture.js';
import { byTransaction, gatewayStartFailure, type GatewayProcess } from '../../test/support/gateway-process.js';

const fixture = useGatewayFixture({ demo: true });

function startGateway(trafficLog: Record<string, any>, env: NodeJS.ProcessEnv): Promise<GatewayProcess> {
  const config = baseConfig(fixture.workspace, fixture.demo.url, { trafficLog, api: { detailedRecording: 'full' } });
  return fixture.start(config, env);
}

/** One POST through the gateway; returns its correlation id. */
async function postEcho(gw: GatewayProcess): Promise<string> {
  const body = JSON.stringify({ hello: 'world' });
  const response = await request(`${gw.url}/api/echo`, { method: 'POST', body, headers: { 'content-type': 'application/json' } });
  expect(response.statusCode).toBe(200);
  expect(await response.body.text()).toBe(body);
  return response.headers['x-correlation-id'] as string;
}

async function stopGateway(): Promise<void> {
  expect(await fixture.gateway?.stop()).toBe(0);
}

async function exists(path: string): Promise<boolean> {
  return stat(path).then(
    () => true,
    () => false,
  );
}

async function startFailure(env: NodeJS.ProcessEnv): Promise<string> {
  return gatewayStartFailure(await fixture.workspace.writeConfig(baseConfig(fixture.workspace, fixture.demo.url)), env);
}

describe('TOLLGATE_TRAFFIC_LOG_OUTPUT', () => {
  it('=stdout writes the traffic lines to standard output and no log file', async () => {
    const gw = await startGateway({ output: 'file' }, { TOLLGATE_TRAFFIC_LOG_OUTPUT: 'stdout' });
    expect(gw.stderr).toContain('traffic log: stdout');
    const id = await postEcho(gw);
    await stopGateway();

    const lines = gw.stdoutLines();
    expect(lines.filter((line) => line.trace === undefined).map((line) => line.correlationId)).toEqual([id, id, id, id]);
    expect(lines.filter((line) => line.trace !== undefined).map((line) => line.trace?.data)).toEqual([
      expect.stringMatching(/^gateway gw started/),
      expect.stringMatching(/^gateway gw stopping/),
      'gateway gw stopped serving; writing out the last records',
    ]);
    const transaction = byTransaction(lines).get(id)!;
    expect(transaction.summary).toMatchObject({ path: '/api/echo', method: 'POST', httpStatus: 200, status: 'success', apiId: 'api' });
    expect(transaction.legs.map((leg) => leg.leg)).toEqual([0, 1]);
    expect(transaction.legs[1]!.protocolInfo.http.uri).toBe('/echo');
    expect(transaction.circuitPath[0]!.filters.map((filter: { name: string }) => filter.name)).toEqual(['route', 'upstream']);
    expect(await exists(fixture.workspace.logDir)).toBe(false);
  });

  it('=none writes neither a log file, nor traffic lines, nor payload files', async () => {
    const gw = await startGateway({ output: 'file', payloads: { enabled: true } }, { TOLLGATE_TRAFFIC_LOG_OUTPUT: 'none' });
    expect(gw.stderr).toContain('traffic log: none, payloads: off');
    await postEcho(gw);
    await stopGateway();

    expect(gw.stdout).toBe('');
    expect(await exists(fixture.workspace.logDir)).toBe(false);
    expect(await exists(fixture.workspace.payloadDir)).toBe(false);
  });

  it('=file writes the log file though the config says none', async () => {
    const gw = await startGateway({ output: 'none' }, { TOLLGATE_TRAFFIC_LOG_OUTPUT: 'file' });
    const id = await postEcho(gw);
    await stopGateway();

    expect(gw.stdout).toBe('');
    expect(await readdir(fixture.workspace.logDir)).toEqual(['test_gw_traffic.log']);
    const transaction = byTransaction(await fixture.workspace.logLines()).get(id);
    expect(transaction?.summary.httpStatus).toBe(200);
    expect(transaction?.legs).toHaveLength(2);
  });

  it('an empty value leaves the config in charge', async () => {
    const gw = await startGateway({ output: 'stdout' }, { TOLLGATE_TRAFFIC_LOG_OUTPUT: '' });
    const id = await postEcho(gw);
    await stopGateway();
    expect(byTransaction(gw.stdoutLines()).has(id)).toBe(true);
  });
});

describe('TOLLGATE_TRAFFIC_LOG_PAYLOAD', () => {
  it('=true stores payload files though the config says false', async () => {
    const gw = await startGateway({ payloads: { enabled: false } }, { TOLLGATE_TRAFFIC_LOG_PAYLOAD: 'true' });
    expect(gw.stderr).toContain(`payloads: on (${fixture.workspace.payloadDir})`);
    const id = await postEcho(gw);
    await stopGateway();

    const names = (await fixture.workspace.payloadFiles()).map((file) => file.split('/').pop());
    expect(names).toEqual([`${id}-0-received`, `${id}-0-sent`, `${id}-1-received`, `${id}-1-sent`]);
    const legs = byTransaction(await fixture.workspace.logLines()).get(id)!.legs;
    expect(legs[0]!.protocolInfo.recvPayload).toMatch(/^file:\/\//);
  });

  it('=false stores no payload files though the config says true', async () => {
    const gw = await startGateway({ payloads: { enabled: true } }, { TOLLGATE_TRAFFIC_LOG_PAYLOAD: 'false' });
    expect(gw.stderr).toContain('payloads: off');
    const id = await postEcho(gw);
    await stopGateway();

    expect(await fixture.workspace.payloadFiles()).toEqual([]);
    const legs = byTransaction(await fixture.workspace.logLines()).get(id)!.legs;
    expect(legs.every((leg) => leg.protocolInfo.recvPayload === null && leg.protocolInfo.sentPayload === null)).toBe(true);
    // Payloads off does not turn detailed recording of headers off.
    expect(legs[0]!.protocolInfo.recvHeader).toMatch(/^POST \/api\/echo HTTP\/1.1\r\n/);
  });
});

describe('bad environment values', () => {
  it('TOLLGATE_TRAFFIC_LOG_OUTPUT=disk stops the gateway before it listens, naming the variable and the allowed values', async () => {
    const message = await startFailure({ TOLLGATE_TRAFFIC_LOG_OUTPUT: 'disk' });
    expect(message).toMatch(/exited with code [1-9]\d* before listening/);
    expect(message).toMatch(/TOLLGATE_TRAFFIC_LOG_OUTPUT: expected one of none, file, stdout, found "disk"/);
    expect(await exists(fixture.workspace.logDir)).toBe(false);
  });

  it('TOLLGATE_TRAFFIC_LOG_PAYLOAD=yes stops the gateway before it listens, naming the variable and the allowed values', async () => {
    const message = await startFailure({ TOLLGATE_TRAFFIC_LOG_PAYLOAD: 'yes' });
    expect(message).toMatch(/exited with code [1-9]\d* before listening/);
    expect(message).toMatch(/TOLLGATE_TRAFFIC_LOG_PAYLOAD: expected one of true, false, found "yes"/);
  });
});
