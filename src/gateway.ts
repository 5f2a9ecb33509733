import { readFileSync } from 'node:fs';
import { createServer as createHttpServer, type Server } from 'node:http';
import { createServer as createHttpsServer } from 'node:https';
import type { AddressInfo } from 'node:net';
import { hostname } from 'node:os';
import { resolve } from 'node:path';
import { payloadStorageOn, type Config } from './config/schema.js';
import { OperationalLog } from './operations/operational-log.js';
import { ThrottledReporter } from './operations/throttled-reporter.js';
import { createRequestHandler, type ProxyContext } from './proxy/handler.js';
import { InFlight } from './proxy/in-flight.js';
import { createClientErrorHandler, createConnectHandler } from './proxy/malformed-request.js';
import { createRoute, createRouter } from './proxy/router.js';
import { PoolRegistry, TargetSet } from './proxy/targets.js';
import { createUpgradeHandler } from './proxy/websocket.js';
import { FilePayloadStore } from './recording/file-payload-store.js';
import { PackedPayloadStore } from './recording/packed-payload-store.js';
import { HeldBytes } from './recording/payload-capture.js';
import type { PayloadStore } from './recording/payload-store.js';
import { pathNormaliser } from './recording/path-normaliser.js';
import { RecordingPipeline, type RecordConsumer } from './recording/pipeline.js';
import { RecordingPolicies } from './recording/policy.js';
import { RecordBuilder } from './recording/record-builder.js';
import { Redactor } from './recording/redactor.js';
import type { AppendFileEvents } from './storage/append-file.js';
import { DiskQuota } from './storage/disk-quota.js';
import { EventFormatter } from './traffic-log/event-formatter.js';
import { openTrafficLog } from './traffic-log/traffic-log.js';
import { openAnalyticsShipper } from './buffer/open-buffer.js';
import { VERSION } from './version.js';

const MB = 1024 * 1024;
/** How long cut requests get to finish and be recorded at shutdown. */
const CUT_SETTLE_MS = 2_000;
/** Bodies that may wait for the payload writer, besides its delay bound. */
const MAX_QUEUED_PAYLOAD_BYTES = 64 * MB;

export interface GatewayOptions {
  /** Overrides `gateway.instance` (workers are `<instance>-<n>`). */
  instance?: string;
  /** Operational messages (never traffic) for standard error: start-up, write failures, shutdown. */
  notify: (message: string) => void;
}

export interface RunningGateway {
  server: Server;
  url: string;
  instance: string;
  /** Opens the files being written anew (SIGHUP: a log rotator moved them). */
  reopen(): void;
  /** Stops accepting, lets requests in flight finish (up to the shutdown timeout), flushes every log. */
  close(): Promise<void>;
}

/** What was given up while the gateway ran, for its last message; empty when nothing was. */
function dropSummary(logDropped: number, analyticsDropped: number, bodiesOverMemory: number): string {
  const parts: string[] = [];
  if (logDropped > 0) parts.push(`${logDropped} transaction(s) dropped by the traffic log`);
  if (analyticsDropped > 0) parts.push(`${analyticsDropped} analytics record(s) dropped by the analytics buffer`);
  if (bodiesOverMemory > 0) parts.push(`${bodiesOverMemory} body(ies) not stored for analytics.payloadMemoryMb`);
  return parts.length === 0 ? '' : `; ${parts.join(', ')}`;
}

export async function startGateway(config: Config, options: GatewayOptions): Promise<RunningGateway> {
  const { gateway, trafficLog: logConfig, analytics } = config;
  const instance = options.instance ?? gateway.instance;
  const operations = new OperationalLog(options.notify);
  const errors = new ThrottledReporter(operations.error);

  const payloadsOn = payloadStorageOn(logConfig);
  const payloadDirectory = resolve(logConfig.payloads.directory);
  const quota =
    logConfig.output === 'file' || payloadsOn
      ? new DiskQuota({
          maxBytes: logConfig.maxDiskSpaceMb * MB,
          logDirectory: logConfig.output === 'file' ? resolve(logConfig.directory) : null,
          payloadDirectory: payloadsOn ? payloadDirectory : null,
          events: { error: errors.for('disk quota'), info: operations.info },
        })
      : null;
  const fileEvents = (component: string): AppendFileEvents => ({
    written: (path, bytes) => quota?.fileWritten(path, bytes),
    finished: (path, renamedFrom) => quota?.fileFinished(path, renamedFrom),
    error: errors.for(component),
    info: operations.info,
  });

  const formatter = new EventFormatter({
    hostname: hostname(),
    domainId: gateway.domain,
    groupId: gateway.group,
    groupName: gateway.group,
    serviceId: instance,
    serviceName: instance,
    version: VERSION,
  });
  const trafficLog = openTrafficLog({
    config: logConfig,
    group: gateway.group,
    instance,
    formatter,
    events: fileEvents('traffic log'),
    onDrop: errors.for('traffic log'),
  });
  if (trafficLog !== null) operations.attach(trafficLog);

  let payloads: PayloadStore | null = null;
  if (payloadsOn) {
    payloads =
      logConfig.payloads.layout === 'packed'
        ? new PackedPayloadStore({
            directory: payloadDirectory,
            base: `${gateway.group}_${instance}`,
            maxFileBytes: logConfig.payloads.maxFileSizeMb * MB,
            maxPendingBytes: MAX_QUEUED_PAYLOAD_BYTES,
            events: fileEvents('payload store'),
          })
        : new FilePayloadStore({
            directory: payloadDirectory,
            spillDirectory: `${payloadDirectory}/.spill/${gateway.group}_${instance}`,
            maxDelayMs: logConfig.payloads.maxWriteDelayMs,
            maxQueuedBytes: MAX_QUEUED_PAYLOAD_BYTES,
            quota,
            onError: errors.for('payload store'),
          });
  }

  const shipper = openAnalyticsShipper(config, {
    group: gateway.group,
    instance,
    onDrop: errors.for('analytics buffer'),
    onError: errors.for('analytics buffer'),
  });
  const consumers: RecordConsumer[] = [trafficLog, shipper].filter((consumer) => consumer !== null);
  const redactor = new Redactor(analytics.redact);
  const heldBytes = new HeldBytes(analytics.payloadMemoryMb * MB);
  const pipeline = new RecordingPipeline({
    builder: new RecordBuilder(redactor, pathNormaliser(analytics.normaliseUrls), {
      apiKeyHeader: analytics.apiKeyHeader?.toLowerCase() ?? null,
      keyAliases: analytics.keyAliases,
    }),
    redactor,
    payloads,
    recordBodies: analytics.recordBodies,
    maxPayloadBytes: analytics.maxPayloadBytes,
    heldBytes,
    consumers,
    onError: (component, error) => errors.for(component)(error),
  });
  const policies = new RecordingPolicies(analytics, payloads !== null || analytics.recordBodies, consumers.length > 0);

  const pools = new PoolRegistry(gateway.maxConnectionsPerTarget);
  const routes = config.apis.map((api) => {
    const timeouts = { ...gateway.timeouts, ...api.timeouts };
    const targets = new TargetSet(typeof api.target === 'string' ? [api.target] : api.target, pools, timeouts.connectMs, gateway.targetCooldownMs);
    return createRoute(api, targets, timeouts, policies);
  });
  const inFlight = new InFlight();
  const protocol = gateway.tls === undefined ? 'http' : 'https';
  const context: ProxyContext = { route: createRouter(routes), policies, pipeline, protocol, inFlight, refusal: () => shipper?.refusal() ?? null };

  // requireHostHeader: the gateway refuses such requests itself, so that they are recorded.
  const serverOptions = {
    maxHeaderSize: gateway.maxRequestHeaderBytes,
    keepAliveTimeout: gateway.keepAliveTimeoutMs,
    // A client that is slow to send its headers gets 408; once they are in, the back end's timeouts apply.
    headersTimeout: gateway.requestHeadersTimeoutMs,
    requestTimeout: 0,
    connectionsCheckingInterval: Math.min(1_000, gateway.requestHeadersTimeoutMs),
    requireHostHeader: false,
  };
  const server =
    gateway.tls === undefined
      ? createHttpServer(serverOptions)
      : createHttpsServer({ ...serverOptions, cert: readFileSync(gateway.tls.cert), key: readFileSync(gateway.tls.key) });
  if (gateway.maxConnections !== undefined) server.maxConnections = gateway.maxConnections;
  server.on('request', createRequestHandler(context));
  server.on('upgrade', createUpgradeHandler(context, server));
  server.on('connect', createConnectHandler(context));
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
  const url = `${protocol}://${host}:${port}`;
  quota?.start(logConfig.diskCheckIntervalSec * 1000);
  operations.info(`gateway ${instance} started (pid ${process.pid}), serving ${url}`);

  let closing: Promise<void> | null = null;
  return {
    server,
    instance,
    url,
    reopen() {
      operations.info('reopening the traffic log and payload files (SIGHUP)');
      trafficLog?.reopen();
      payloads?.reopen();
    },
    close() {
      closing ??= (async () => {
        operations.info(`gateway ${instance} stopping: ${inFlight.count} request(s) in flight`);
        inFlight.draining = true;
        const closed = new Promise<void>((resolve) => server.close(() => resolve()));
        server.closeIdleConnections();
        const drained = await inFlight.idle(gateway.shutdownTimeoutMs);
        if (!drained) {
          operations.error(`shutdown: ${inFlight.count} request(s) still in flight after ${gateway.shutdownTimeoutMs} ms, closing them`);
          inFlight.cutAll(() => server.closeAllConnections());
          // A cut exchange is finished by its sockets' close events: wait for them, so it is
          // recorded before the traffic log closes.
          await inFlight.idle(CUT_SETTLE_MS);
        }
        server.closeAllConnections();
        await closed;
        await pools.close();
        operations.info(`gateway ${instance} stopped serving; writing out the last records`);
        // From here on, operational messages go to standard error only: the log is being closed.
        if (trafficLog !== null) operations.detach(trafficLog);
        await pipeline.close();
        await quota?.stop();
        errors.flush();
        operations.info(`gateway ${instance} stopped${dropSummary(trafficLog?.dropped ?? 0, shipper?.dropped ?? 0, heldBytes.refused)}`);
      })();
      return closing;
    },
  };
}
