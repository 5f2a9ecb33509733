import type { IncomingMessage, Server } from 'node:http';
import type { Socket } from 'node:net';
import type { Duplex } from 'node:stream';
import { performance } from 'node:perf_hooks';
import { applyRoute, beginTransaction, forwardPathOf, rememberArrivedHeaders, type ProxyContext } from './handler.js';
import { upstreamRequestHeaders } from './headers.js';
import { canonicalPath } from './router.js';
import { answerOnSocket, responseHead } from './socket-answer.js';
import { classifyUpstreamError } from './upstream-errors.js';

function isWebSocket(request: IncomingMessage): boolean {
  return request.headers.upgrade?.trim().toLowerCase() === 'websocket';
}

/**
 * Hands a request back to Node's HTTP parser as a plain request: the same bytes with `upgrade`
 * taken out of its Connection header. The upgrade offer is declined (RFC 9110 section 7.8 lets a
 * server ignore it) and the request is proxied like any other, body framing included.
 */
function reparseWithoutUpgrade(server: Server, secure: boolean, request: IncomingMessage, socket: Socket, bodyHead: Buffer): void {
  const raw = request.rawHeaders;
  let head = `${request.method} ${request.url} HTTP/${request.httpVersion}\r\n`;
  for (let i = 0; i < raw.length; i += 2) {
    let value = raw[i + 1] as string;
    if ((raw[i] as string).toLowerCase() === 'connection') {
      value = value
        .split(',')
        .filter((token) => token.trim().toLowerCase() !== 'upgrade')
        .join(',');
      if (value.trim() === '') continue;
    }
    head += `${raw[i]}: ${value}\r\n`;
  }
  rememberArrivedHeaders(socket, raw);
  socket.unshift(Buffer.concat([Buffer.from(`${head}\r\n`, 'latin1'), bodyHead]));
  server.emit(secure ? 'secureConnection' : 'connection', socket);
}

/**
 * Passes a WebSocket handshake to the back end, then joins the two sockets. The whole
 * connection is one transaction, recorded when both sides have closed. Other upgrade offers
 * (h2c, ...) are declined and their requests proxied as plain requests.
 */
export function createUpgradeHandler(context: ProxyContext, server: Server): (request: IncomingMessage, socket: Duplex, head: Buffer) => void {
  const { policies, pipeline, protocol, inFlight } = context;

  return function handleUpgrade(request, duplex, head) {
    // Node hands every HTTP upgrade the connection's socket.
    const socket = duplex as Socket;
    if (!isWebSocket(request)) return reparseWithoutUpgrade(server, protocol === 'https', request, socket, head);
    const transaction = beginTransaction(request, protocol);
    const cancelUpgrade = new AbortController();
    inFlight.enter();
    const release = inFlight.holdUpgraded(() => {
      transaction.fail('gateway-shutdown', 'the gateway shut down before the exchange completed');
      cancelUpgrade.abort();
      socket.destroy();
    });
    transaction.upgraded = true;
    const client = transaction.clientLeg;
    const path = canonicalPath(transaction.path);
    const match = context.route(path);
    let tracked = match === null && policies.tracks(policies.gatewayAnswers, transaction.clientAddr);
    if (tracked) transaction.policy = policies.gatewayAnswers;
    let finished = false;
    const finish = (): void => {
      if (finished) return;
      finished = true;
      transaction.endMono = performance.now();
      client.lastByteMs = transaction.endMono - client.startMono;
      client.finalStatus ??= transaction.failure === null ? 'Pass' : 'Error';
      client.bytesReceived = socket.bytesRead;
      release();
      inFlight.leave();
      if (tracked) pipeline.finish(transaction);
    };
    const refuse = (status: number, statusText: string, message: string): void => {
      answerOnSocket(socket, transaction, status, statusText, message);
      finish();
    };
    socket.on('error', () => undefined);

    if (match === null) {
      transaction.fail('no-route', `no API listens on ${transaction.path}`);
      return refuse(404, 'Not Found', `no API listens on ${transaction.path}`);
    }
    const { route } = match;
    tracked = applyRoute(transaction, request, match, policies);
    const target = route.targets.pick(Date.now());
    const leg = transaction.addUpstreamLeg();
    leg.method = transaction.method;
    leg.uri = target.basePath + forwardPathOf(transaction, match, path);
    leg.vhost = leg.remoteName = leg.remoteAddr = target.hostname;
    leg.remotePort = target.port;
    const headers = upstreamRequestHeaders(request.rawHeaders, request.headers.connection, {
      clientAddr: transaction.clientAddr,
      protocol,
      host: transaction.host,
      correlationId: transaction.id,
    });
    leg.sentHeader = { startLine: `${leg.method} ${leg.uri} HTTP/1.1`, fields: headers };
    const upgradeStart = performance.now();
    // A client that leaves during the handshake ends the wait for the back end.
    const clientLeft = (): void => cancelUpgrade.abort(new Error('the client closed the connection during the handshake'));
    socket.once('close', clientLeft);

    target.pool
      .upgrade({
        path: leg.uri,
        method: request.method ?? 'GET',
        headers,
        protocol: 'websocket',
        signal: AbortSignal.any([AbortSignal.timeout(route.timeouts.responseHeadersMs), cancelUpgrade.signal]),
      })
      .then(({ headers: answer, socket: duplexUpstream }) => {
        socket.off('close', clientLeft);
        const upstream = duplexUpstream as Socket;
        leg.headersMs = client.headersMs = performance.now() - leg.startMono;
        leg.status = client.status = transaction.status = 101;
        leg.statusText = client.statusText = transaction.statusText = 'Switching Protocols';
        const responseHeaders: string[] = [];
        for (const [name, value] of Object.entries(answer)) {
          for (const one of Array.isArray(value) ? value : [value ?? '']) responseHeaders.push(name, one);
        }
        responseHeaders.push('X-Correlation-ID', transaction.id);
        leg.recvHeader = { startLine: 'HTTP/1.1 101 Switching Protocols', fields: responseHeaders };
        client.sentHeader = leg.recvHeader;
        transaction.step('upgrade', 'proxy', upgradeStart, 'Pass');
        if (socket.destroyed) {
          upstream.destroy();
          leg.finalStatus = 'Error';
          leg.error = 'abandoned: the client went away';
          transaction.fail('client-aborted-request', 'the client closed the connection before the upgrade completed');
          return finish();
        }
        socket.write(responseHead(101, 'Switching Protocols', responseHeaders));
        if (head.length > 0) upstream.write(head);
        socket.pipe(upstream);
        upstream.pipe(socket);
        let open = 2;
        const closed = (): void => {
          if (--open > 0) return;
          leg.bytesSent = upstream.bytesWritten;
          leg.bytesReceived = upstream.bytesRead;
          leg.lastByteMs = performance.now() - leg.startMono;
          leg.finalStatus = 'Pass';
          client.bytesSent = socket.bytesWritten;
          finish();
        };
        upstream.on('error', () => socket.destroy());
        socket.on('close', () => {
          upstream.destroy();
          closed();
        });
        upstream.on('close', () => {
          socket.destroy();
          closed();
        });
      })
      .catch((error: Error & { code?: string }) => {
        leg.lastByteMs = performance.now() - leg.startMono;
        leg.finalStatus = 'Error';
        leg.error = error.message;
        if (socket.destroyed) {
          transaction.fail('client-aborted-request', 'the client closed the connection before the upgrade completed');
          transaction.step('upgrade', 'proxy', upgradeStart, 'Error', error.message);
          client.finalStatus = 'Error';
          return finish();
        }
        socket.off('close', clientLeft);
        const failure =
          error.name === 'TimeoutError'
            ? { reason: 'upstream-headers-timeout' as const, status: 504 as const }
            : classifyUpstreamError(error);
        transaction.fail(failure.reason, error.message);
        transaction.step('upgrade', 'proxy', upgradeStart, 'Error', error.message);
        if (failure.status === 504) refuse(504, 'Gateway Timeout', 'the back end did not answer the upgrade in time');
        else refuse(502, 'Bad Gateway', `the back end refused the upgrade (${failure.reason})`);
      });
  };
}
