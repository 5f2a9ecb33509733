import type { IncomingMessage, ServerResponse } from 'node:http';
import { performance } from 'node:perf_hooks';
import { newCorrelationId } from '../recording/correlation-id.js';
import type { Recorder } from '../recording/recorder.js';
import { Transaction, type Protocol } from '../recording/transaction.js';
import { ProxyExchange, sendGatewayError } from './exchange.js';
import { upstreamRequestHeaders } from './headers.js';
import type { InFlight } from './in-flight.js';
import { canonicalPath, matchEndpoint, type RouteMatch } from './router.js';

export interface ProxyContext {
  route: (path: string) => RouteMatch | null;
  recorder: Recorder;
  protocol: Protocol;
  inFlight: InFlight;
}

/** Fills the client side of a new transaction (leg 0) from the incoming request. */
export function beginTransaction(request: IncomingMessage, protocol: Protocol): Transaction {
  const transaction = new Transaction(newCorrelationId(), request.method ?? 'GET', request.url ?? '/', protocol);
  const socket = request.socket;
  const client = transaction.clientLeg;
  transaction.host = request.headers.host ?? '';
  transaction.userAgent = request.headers['user-agent'] ?? '';
  transaction.clientAddr = client.remoteAddr = socket.remoteAddress ?? '';
  transaction.clientPort = client.remotePort = socket.remotePort ?? 0;
  transaction.localAddr = client.localAddr = socket.localAddress ?? '';
  transaction.localPort = client.localPort = socket.localPort ?? 0;
  client.method = transaction.method;
  client.uri = transaction.uri;
  client.vhost = transaction.host;
  client.remoteName = transaction.clientAddr;
  client.recvHeader = { startLine: `${transaction.method} ${transaction.uri} HTTP/${request.httpVersion}`, fields: request.rawHeaders };
  return transaction;
}

/**
 * Binds a routed request to its API: identity, matched endpoint, recording policy and tags.
 * Returns whether the transaction is recorded.
 */
export function applyRoute(transaction: Transaction, request: IncomingMessage, { route, rest }: RouteMatch, recorder: Recorder): boolean {
  const endpoint = matchEndpoint(route, transaction.method, rest);
  transaction.api = route.identity;
  transaction.trackedEndpoint = endpoint?.label ?? null;
  const tracked = recorder.tracks(transaction.clientAddr, route.api.doNotTrack, endpoint?.config ?? null);
  if (!tracked) return false;
  transaction.policy = recorder.policyFor(route.api.detailedRecording, endpoint?.config ?? null);
  for (const name of route.tagHeaders) {
    const value = request.headers[name];
    if (value === undefined) continue;
    transaction.tags.push(`${name}-${recorder.redactor.headerValue(name, Array.isArray(value) ? value.join(',') : value)}`);
  }
  for (const tag of route.api.tags) transaction.tags.push(tag);
  return true;
}

/** Path and query for the back end, below its target URL's own path. */
export function forwardPathOf(transaction: Transaction, { route, rest }: RouteMatch, canonical: string): string {
  const queryAt = transaction.uri.indexOf('?');
  return (route.api.stripListenPath ? rest : canonical) + (queryAt === -1 ? '' : transaction.uri.slice(queryAt));
}

function hasBody(request: IncomingMessage): boolean {
  const length = request.headers['content-length'];
  return (length !== undefined && length !== '0') || request.headers['transfer-encoding'] !== undefined;
}

export function createRequestHandler(context: ProxyContext): (request: IncomingMessage, response: ServerResponse) => void {
  const { recorder, protocol, inFlight } = context;

  return function handleRequest(request, response) {
    const transaction = beginTransaction(request, protocol);
    inFlight.enter();
    const routeStart = performance.now();
    const path = canonicalPath(transaction.path);
    const match = context.route(path);

    if (match === null) {
      transaction.step('route', 'router', routeStart, 'Fail', 'no API listens on this path');
      transaction.fail('no-route', `no API listens on ${transaction.path}`);
      transaction.status = 404;
      transaction.statusText = 'Not Found';
      const tracked = recorder.tracks(transaction.clientAddr, false, null);
      transaction.policy = recorder.policyFor(undefined, null);
      const capture = tracked ? recorder.capture(transaction, 0, 'sent', 'application/json') : null;
      response.on('close', () => {
        transaction.endMono = performance.now();
        const client = transaction.clientLeg;
        client.lastByteMs = transaction.endMono - client.startMono;
        client.finalStatus = response.writableFinished ? 'Fail' : 'Error';
        inFlight.leave();
        if (tracked) recorder.finish(transaction);
      });
      sendGatewayError(response, transaction, 404, `no API listens on ${transaction.path}`, capture);
      return;
    }

    const { route } = match;
    const tracked = applyRoute(transaction, request, match, recorder);
    transaction.step('route', 'router', routeStart, 'Pass', route.api.name);

    const body = hasBody(request) ? request : null;
    if (body !== null && tracked) {
      const { 'content-type': contentType = '', 'content-encoding': contentEncoding = '' } = request.headers;
      transaction.clientLeg.recvCapture = recorder.capture(transaction, 0, 'received', contentType, contentEncoding);
    }
    const forwardPath = forwardPathOf(transaction, match, path);
    const upstreamStart = performance.now();
    const exchange = new ProxyExchange(request, response, transaction, {
      recorder,
      inFlight,
      route,
      forwardPath,
      upstreamHeaders: upstreamRequestHeaders(request.rawHeaders, request.headers.connection, {
        clientAddr: transaction.clientAddr,
        protocol,
        host: transaction.host,
        correlationId: transaction.id,
      }),
      body,
      tracked,
      onDone: (done) => {
        const failed = done.failure !== null;
        done.step('upstream', 'proxy', upstreamStart, failed ? 'Error' : done.status >= 500 ? 'Fail' : 'Pass', done.failureMessage);
        inFlight.leave();
        if (tracked) recorder.finish(done);
      },
    });
    exchange.start();
  };
}
