import type { IncomingMessage, ServerResponse } from 'node:http';
import { performance } from 'node:perf_hooks';
import { newCorrelationId } from '../recording/correlation-id.js';
import type { RecordingPipeline } from '../recording/pipeline.js';
import type { RecordingPolicies } from '../recording/policy.js';
import { Transaction, type Protocol } from '../recording/transaction.js';
import { ProxyExchange, sendGatewayError } from './exchange.js';
import { upstreamRequestHeaders } from './headers.js';
import type { InFlight } from './in-flight.js';
import { canonicalPath, matchEndpoint, type RouteMatch } from './router.js';

export interface ProxyContext {
  route: (path: string) => RouteMatch | null;
  policies: RecordingPolicies;
  pipeline: RecordingPipeline;
  protocol: Protocol;
  inFlight: InFlight;
  /** Why new requests are refused for now (a full analytics buffer under `whenFull: reject`), or null. */
  refusal: () => string | null;
}

/** The header list a request arrived with, when the gateway had to rewrite it before Node parsed it again. */
const arrivedWith = new WeakMap<IncomingMessage['socket'], string[]>();

/** Remembers the headers a request really arrived with, for the request parsed next on `socket`. */
export function rememberArrivedHeaders(socket: IncomingMessage['socket'], rawHeaders: string[]): void {
  arrivedWith.set(socket, rawHeaders);
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
  let fields: string[] = request.rawHeaders;
  const arrived = arrivedWith.get(socket);
  if (arrived !== undefined) {
    arrivedWith.delete(socket);
    fields = arrived;
  }
  client.recvHeader = { startLine: `${transaction.method} ${transaction.uri} HTTP/${request.httpVersion}`, fields };
  return transaction;
}

/**
 * Binds a routed request to its API: identity, matched endpoint, recording policy and tags.
 * Returns whether the transaction is recorded.
 */
export function applyRoute(transaction: Transaction, request: IncomingMessage, { route, rest }: RouteMatch, policies: RecordingPolicies): boolean {
  const endpoint = matchEndpoint(route, transaction.method, rest);
  transaction.api = route.identity;
  transaction.trackedEndpoint = endpoint?.label ?? null;
  const policy = endpoint?.policy ?? route.policy;
  if (!policies.tracks(policy, transaction.clientAddr)) return false;
  transaction.policy = policy;
  transaction.apiTags = route.api.tags;
  for (const name of route.tagHeaders) {
    const value = request.headers[name];
    if (value === undefined) continue;
    transaction.tagHeaders ??= [];
    transaction.tagHeaders.push(name, Array.isArray(value) ? value.join(',') : value);
  }
  return true;
}

/** Path and query for the back end, below its target URL's own path. */
export function forwardPathOf(transaction: Transaction, { route, rest }: RouteMatch, canonical: string): string {
  const { uri } = transaction;
  const queryAt = uri.indexOf('?');
  // A fragment is the client's business: it is not forwarded.
  const fragmentAt = uri.indexOf('#');
  const query = queryAt === -1 || (fragmentAt !== -1 && fragmentAt < queryAt) ? '' : uri.slice(queryAt, fragmentAt === -1 ? undefined : fragmentAt);
  return (route.api.stripListenPath ? rest : canonical) + query;
}

function hasBody(request: IncomingMessage): boolean {
  const length = request.headers['content-length'];
  return (length !== undefined && length !== '0') || request.headers['transfer-encoding'] !== undefined;
}

export function createRequestHandler(context: ProxyContext): (request: IncomingMessage, response: ServerResponse) => void {
  const { policies, pipeline, protocol, inFlight } = context;

  /** Hands a transaction the gateway ended itself to the pipeline, as a gateway answer. */
  function finishOwn(transaction: Transaction, finalStatus: 'Fail' | 'Error'): void {
    transaction.endMono = performance.now();
    const client = transaction.clientLeg;
    client.lastByteMs = transaction.endMono - client.startMono;
    client.finalStatus = finalStatus;
    inFlight.leave();
    if (transaction.policy.tracked) pipeline.finish(transaction);
  }

  /** Answers with a JSON error of the gateway's own, recorded like any response. */
  function answerItself(request: IncomingMessage, response: ServerResponse, transaction: Transaction, status: number, statusText: string, message: string): void {
    if (policies.tracks(policies.gatewayAnswers, transaction.clientAddr)) transaction.policy = policies.gatewayAnswers;
    transaction.status = status;
    transaction.statusText = statusText;
    response.on('close', () => finishOwn(transaction, response.writableFinished ? 'Fail' : 'Error'));
    // The body goes nowhere: let it drain so the connection can carry the next request.
    request.resume();
    inFlight.closeWhileDraining(response);
    sendGatewayError(response, transaction, status, message, pipeline.capture(transaction, 0, 'sent', 'application/json', ''));
  }

  function answerNoRoute(request: IncomingMessage, response: ServerResponse, transaction: Transaction, routeStart: number): void {
    const message = `no API listens on ${transaction.path}`;
    transaction.step('route', 'router', routeStart, 'Fail', 'no API listens on this path');
    transaction.fail('no-route', message);
    answerItself(request, response, transaction, 404, 'Not Found', message);
  }

  /**
   * Refuses an HTTP/1.1 request without Host (RFC 9112 section 3.2) and closes the connection,
   * as Node would do unseen: this way it is recorded.
   */
  function refuseWithoutHost(request: IncomingMessage, response: ServerResponse, transaction: Transaction): void {
    const message = 'an HTTP/1.1 request without a Host header';
    transaction.fail('malformed-request', message);
    response.shouldKeepAlive = false;
    answerItself(request, response, transaction, 400, 'Bad Request', `malformed request (${message})`);
  }

  function refuseWhileUnrecordable(request: IncomingMessage, response: ServerResponse, transaction: Transaction, reason: string): void {
    transaction.fail('analytics-buffer-full', reason);
    answerItself(request, response, transaction, 503, 'Service Unavailable', reason);
  }

  function proxy(request: IncomingMessage, response: ServerResponse, transaction: Transaction, match: RouteMatch, path: string, routeStart: number): void {
    const tracked = applyRoute(transaction, request, match, policies);
    transaction.step('route', 'router', routeStart, 'Pass', match.route.api.name);
    const refusal = tracked ? context.refusal() : null;
    if (refusal !== null) return refuseWhileUnrecordable(request, response, transaction, refusal);
    const body = hasBody(request) ? request : null;
    if (body !== null && tracked) {
      const { 'content-type': contentType = '', 'content-encoding': contentEncoding = '' } = request.headers;
      transaction.clientLeg.recvCapture = pipeline.capture(transaction, 0, 'received', contentType, contentEncoding);
    }
    const upstreamStart = performance.now();
    const exchange = new ProxyExchange(request, response, transaction, {
      pipeline,
      inFlight,
      route: match.route,
      forwardPath: forwardPathOf(transaction, match, path),
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
        if (tracked) pipeline.finish(done);
      },
    });
    exchange.start();
  }

  /**
   * A request pipelined behind one whose response is still being written waits for its turn on
   * the connection: Node queues its response until then, and never sends it at all when the
   * earlier one ends the connection. Forwarding it before would reach the back end with no way
   * to answer or record it; so it is forwarded only once it owns the connection, and recorded as
   * never answered if the connection ends first.
   */
  function awaitTurn(request: IncomingMessage, response: ServerResponse, transaction: Transaction, start: () => void): void {
    const onClosed = (): void => {
      response.off('socket', onTurn);
      transaction.fail('client-aborted-request', 'the connection ended before the gateway could answer: an earlier request on it closed it; nothing was forwarded');
      if (policies.tracks(policies.gatewayAnswers, transaction.clientAddr)) transaction.policy = policies.gatewayAnswers;
      finishOwn(transaction, 'Error');
    };
    const onTurn = (): void => {
      request.off('close', onClosed);
      start();
    };
    response.once('socket', onTurn);
    request.once('close', onClosed);
  }

  return function handleRequest(request, response) {
    const transaction = beginTransaction(request, protocol);
    inFlight.enter();
    const start = (): void => {
      if (request.headers.host === undefined && request.httpVersion === '1.1') return refuseWithoutHost(request, response, transaction);
      const routeStart = performance.now();
      const path = canonicalPath(transaction.path);
      const match = context.route(path);
      if (match === null) answerNoRoute(request, response, transaction, routeStart);
      else proxy(request, response, transaction, match, path, routeStart);
    };
    if (response.socket === null) awaitTurn(request, response, transaction, start);
    else start();
  };
}
