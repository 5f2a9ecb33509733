import type { IncomingMessage } from 'node:http';
import type { Socket } from 'node:net';
import { performance } from 'node:perf_hooks';
import type { Duplex } from 'node:stream';
import { newCorrelationId } from '../recording/correlation-id.js';
import { Transaction } from '../recording/transaction.js';
import { beginTransaction, type ProxyContext } from './handler.js';
import { answerOnSocket } from './socket-answer.js';

const ANSWERS: Record<string, [number, string]> = {
  HPE_HEADER_OVERFLOW: [431, 'Request Header Fields Too Large'],
  ERR_HTTP_REQUEST_TIMEOUT: [408, 'Request Timeout'],
};

/**
 * Whether an earlier request's response is already being written on this keep-alive connection
 * (the same test Node's own handler makes): an answer now would land inside that response.
 */
function responseUnderWay(socket: Socket): boolean {
  const current = (socket as Socket & { _httpMessage?: { headersSent: boolean } | null })._httpMessage;
  return current != null && current.headersSent;
}

/** Answers on the bare socket, closes it, and records the attempt as a malformed request. */
function refuse(context: ProxyContext, socket: Socket, transaction: Transaction, status: number, statusText: string, reason: string): void {
  const { policies, pipeline } = context;
  const client = transaction.clientLeg;
  transaction.fail('malformed-request', reason);
  answerOnSocket(socket, transaction, status, statusText, `malformed request (${reason})`);
  transaction.endMono = performance.now();
  client.lastByteMs = client.headersMs = transaction.endMono - client.startMono;
  if (policies.tracks(policies.gatewayAnswers, transaction.clientAddr)) {
    transaction.policy = policies.gatewayAnswers;
    pipeline.finish(transaction);
  }
}

/** A transaction for an attempt Node's parser gave no request object for, with the connection's addresses. */
function transactionOnSocket(context: ProxyContext, socket: Socket, method = '', uri = ''): Transaction {
  const transaction = new Transaction(newCorrelationId(), method, uri, context.protocol);
  const client = transaction.clientLeg;
  transaction.clientAddr = client.remoteAddr = client.remoteName = socket.remoteAddress ?? '';
  transaction.clientPort = client.remotePort = socket.remotePort ?? 0;
  transaction.localAddr = client.localAddr = socket.localAddress ?? '';
  transaction.localPort = client.localPort = socket.localPort ?? 0;
  client.method = method;
  client.uri = uri;
  return transaction;
}

const REQUEST_LINE = /^([!#$%&'*+.^_`|~0-9A-Za-z-]+) (\S+) HTTP\/\d\.\d\r?$/;

/**
 * Records a request the client sent after one with `Connection: close`, which Node's parser
 * refuses to read (HPE_CLOSED_CONNECTION). The earlier request is still being answered on this
 * connection, and Node closes it after that answer (RFC 9112 section 9.6: no further request is
 * processed): so nothing is said on the socket, and the later request is recorded as never
 * answered, with its request line when the refused bytes start with one.
 */
function recordIgnoredAfterClose(context: ProxyContext, socket: Socket, error: Error & { rawPacket?: Buffer; bytesParsed?: number }): void {
  const { policies, pipeline } = context;
  const ignored = error.rawPacket?.subarray(error.bytesParsed ?? 0) ?? Buffer.alloc(0);
  const lineEnd = ignored.indexOf('\n');
  const requestLine = REQUEST_LINE.exec(ignored.subarray(0, lineEnd === -1 ? 0 : lineEnd).toString('latin1'));
  const transaction = transactionOnSocket(context, socket, requestLine?.[1], requestLine?.[2]);
  transaction.fail('client-aborted-request', 'the connection ended before the gateway could answer: an earlier request on it asked to close it; nothing was forwarded');
  const client = transaction.clientLeg;
  transaction.endMono = performance.now();
  client.lastByteMs = transaction.endMono - client.startMono;
  client.finalStatus = 'Error';
  if (policies.tracks(policies.gatewayAnswers, transaction.clientAddr)) {
    transaction.policy = policies.gatewayAnswers;
    pipeline.finish(transaction);
  }
}

/**
 * Requests Node's HTTP parser refused (bad syntax, oversized headers, headers too slow): the
 * client gets a status naming the problem, and the attempt is recorded like any transaction.
 */
export function createClientErrorHandler(context: ProxyContext): (error: Error & { code?: string }, socket: Duplex) => void {
  /** Connections whose bytes after a `Connection: close` request were recorded: the parser refuses every later chunk too. */
  const closedByRequest = new WeakSet<Socket>();
  return function handleClientError(error, duplex) {
    const socket = duplex as Socket;
    if (error.code === 'HPE_CLOSED_CONNECTION') {
      if (!closedByRequest.has(socket)) recordIgnoredAfterClose(context, socket, error);
      closedByRequest.add(socket);
      if (!socket.writable) socket.destroy();
      return;
    }
    // A client leaving (a reset, a connection closed mid-request, which that request's own
    // transaction records) is not a request of its own.
    if (error.code === 'ECONNRESET' || error.code === 'HPE_INVALID_EOF_STATE' || !socket.writable || responseUnderWay(socket)) {
      socket.destroy();
      return;
    }
    const [status, statusText] = ANSWERS[error.code ?? ''] ?? [400, 'Bad Request'];
    refuse(context, socket, transactionOnSocket(context, socket), status, statusText, `${error.code ?? 'unknown'}: ${error.message}`);
  };
}

/** CONNECT asks for a tunnel: Tollgate is a reverse proxy, so it says no, and records that it did. */
export function createConnectHandler(context: ProxyContext): (request: IncomingMessage, socket: Duplex) => void {
  return function handleConnect(request, duplex) {
    const socket = duplex as Socket;
    socket.on('error', () => undefined);
    refuse(context, socket, beginTransaction(request, context.protocol), 405, 'Method Not Allowed', 'CONNECT: Tollgate is a reverse proxy and opens no tunnels');
  };
}
