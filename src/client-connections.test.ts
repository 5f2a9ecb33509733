import { once } from 'node:events';
import { connect, type Socket } from 'node:net';
import { describe, expect, it } from 'vitest';
import { baseConfig } from '../test/support/backends.js';
import { useGatewayFixture } from '../test/support/fixture.js';
import { eventually, type GatewayProcess } from '../test/support/gateway-process.js';

const fixture = useGatewayFixture({ demo: true });

function startGateway(gateway: Record<string, any>): Promise<GatewayProcess> {
  return fixture.start(baseConfig(fixture.workspace, fixture.demo.url, { gateway }));
}

/** Opens a client connection and has one HEAD answered on it; the connection stays open, idle. */
async function answeredConnection(url: string): Promise<{ socket: Socket; answer: string }> {
  const { hostname, port } = new URL(url);
  const socket = connect(Number(port), hostname);
  fixture.onCleanup(async () => void socket.destroy());
  socket.write('HEAD /api/hello HTTP/1.1\r\nHost: gateway\r\n\r\n');
  let answer = '';
  await new Promise<void>((resolve, reject) => {
    socket.on('data', (chunk: Buffer) => {
      answer += chunk.toString('latin1');
      if (answer.includes('\r\n\r\n')) resolve();
    });
    socket.once('error', reject);
    socket.once('close', () => reject(new Error(`closed before an answer (${JSON.stringify(answer)})`)));
  });
  expect(answer).toMatch(/^HTTP\/1\.1 200 /);
  return { socket, answer };
}

describe('client connections', () => {
  it('closes an idle keep-alive connection after gateway.keepAliveTimeoutMs', async () => {
    const gw = await startGateway({ keepAliveTimeoutMs: 1_000 });
    const { socket, answer } = await answeredConnection(gw.url);
    const idleSince = Date.now();
    expect(answer).toMatch(/\r\nKeep-Alive: timeout=1\r\n/i);

    await once(socket, 'close');
    const idleMs = Date.now() - idleSince;
    expect(idleMs).toBeGreaterThanOrEqual(1_000);
    // The default keeps it 65 s; Node adds 1 s of grace to the advertised timeout.
    expect(idleMs).toBeLessThan(10_000);
  });

  it('with gateway.maxConnections: 2, closes a third connection while two are open', async () => {
    const gw = await startGateway({ maxConnections: 2 });
    const first = await answeredConnection(gw.url);
    await answeredConnection(gw.url);

    await expect(answeredConnection(gw.url)).rejects.toThrow(/closed before an answer|ECONNRESET|EPIPE/);

    first.socket.destroy();
    // Once the gateway has seen the first one close, a new connection is served again.
    await eventually(() => answeredConnection(gw.url).catch(() => undefined), 5_000, 'a connection to be accepted');
  });
});
