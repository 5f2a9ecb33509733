import { readFileSync } from 'node:fs';
import { createServer as createHttpServer, type Server } from 'node:http';
import { createServer as createHttpsServer } from 'node:https';
import type { AddressInfo } from 'node:net';
import { hostname } from 'node:os';
import type { Config } from './config/schema.js';
import { createRequestHandler } from './proxy/handler.js';
import { InFlight } from './proxy/in-flight.js';
import { createClientErrorHandler } from './proxy/malformed-request.js';
import { createRoute, createRouter } from './proxy/router.js';
import { PoolRegistry, TargetSet } from './proxy/targets.js';
import { createUpgradeHandler } from './proxy/websocket.js';
import { PayloadStore } from './recording/payload-store.js';
import { Recorder } from './recording/recorder.js';
import { Redactor } from './recording/redactor.js';
import { EventFormatter } from './traffic-log/event-formatter.js';
import { openTrafficLog } from './traffic-log/traffic-log.js';
import { ThrottledReporter } from './throttled-reporter.js';
import { VERSION } from './version.js';

/** How long cut requests get to finish and be recorded at shutdown. */
const CUT_SETTLE_MS = 2_000;

export interface GatewayOptions {
  /** Overrides `gateway.instance` (workers are `<instance>-<n>`). */
  instance?: string;
  /** Operational messages (never traffic): start-up, write failures, shutdown. */
  notify: (message: string) => void;
}

export interface RunningGateway {
  server: Server;
  url: string;
  instance: string;
  /** Stops accepting, lets requests in flight finish (up to the shutdown timeout), flushes every log. */
  close(): Promise<void>;
}

export async function startGateway(config: Config, options: GatewayOptions): Promise<RunningGateway> {
  const { gateway, trafficLog: logConfig } = config;
  const instance = options.instance ?? gateway.instance;
  const redactor = new Redactor(config.analytics.redact);
  const errors = new ThrottledReporter(options.notify);

  const formatter = new EventFormatter(
    {
      hostname: hostname(),
      domainId: gateway.domain,
      groupId: gateway.group,
      groupName: gateway.group,
      serviceId: instance,
      serviceName: instance,
      version: VERSION,
    },
    redactor,
  );
  const trafficLog = openTrafficLog({ config: logConfig, group: gateway.group, instance, formatter, onError: errors.for('traffic log') });
  const payloadStore =
    trafficLog !== null && logConfig.payloads.enabled
      ? new PayloadStore(logConfig.payloads.directory, redactor, errors.for('payload store'))
      : null;
  const recorder = new Recorder({
    analytics: config.analytics,
    payloadsEnabled: payloadStore !== null,
    redactor,
    payloadStore,
    consumers: trafficLog === null ? [] : [trafficLog],
  });

  const pools = new PoolRegistry(gateway.maxConnectionsPerTarget);
  const routes = config.apis.map((api) => {
    const timeouts = { ...gateway.timeouts, ...api.timeouts };
    const targets = new TargetSet(typeof api.target === 'string' ? [api.target] : api.target, pools, timeouts.connectMs, gateway.targetCooldownMs);
    return createRoute(api, targets, timeouts);
  });
  const inFlight = new InFlight();
  const protocol = gateway.tls === undefined ? 'http' : 'https';
  const context = { route: createRouter(routes), recorder, protocol, inFlight } as const;

  const serverOptions = { maxHeaderSize: gateway.maxRequestHeaderBytes, keepAliveTimeout: gateway.keepAliveTimeoutMs, requestTimeout: 0 };
  const server =
    gateway.tls === undefined
      ? createHttpServer(serverOptions)
      : createHttpsServer({ ...serverOptions, cert: readFileSync(gateway.tls.cert), key: readFileSync(gateway.tls.key) });
  if (gateway.maxConnections !== undefined) server.maxConnections = gateway.maxConnections;
  server.on('request', createRequestHandler(context));
  server.on('upgrade', createUpgradeHandler(context));
  server.on('clientError', createClientErrorHandler(context));
  // A client's socket is quiet while its back end thinks: it may wait as long as any API lets a back end.
  server.timeout = Math.max(...routes.map((route) => Math.max(route.timeouts.idleMs, route.timeouts.responseHeadersMs)), gateway.timeouts.idleMs);

  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(gateway.port, gateway.host, () => {
      server.off('error', reject);
      resolve();
    });
  });
  const { address, port } = server.address() as AddressInfo;
  const host = address.includes(':') ? `[${address}]` : address;

  let closing: Promise<void> | null = null;
  return {
    server,
    instance,
    url: `${protocol}://${host}:${port}`,
    close() {
      closing ??= (async () => {
        const closed = new Promise<void>((resolve) => server.close(() => resolve()));
        server.closeIdleConnections();
        const drained = await inFlight.idle(gateway.shutdownTimeoutMs);
        if (!drained) {
          options.notify(`shutdown: ${inFlight.count} request(s) still in flight after ${gateway.shutdownTimeoutMs} ms, closing them`);
          inFlight.cutAll(() => server.closeAllConnections());
          // A cut exchange is finished by its sockets' close events: wait for them, so it is
          // recorded before the traffic log closes.
          await inFlight.idle(CUT_SETTLE_MS);
        }
        server.closeAllConnections();
        await closed;
        await recorder.close();
        await pools.close();
        errors.flush();
      })();
      return closing;
    },
  };
}
