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

/**
 * Requests Node's HTTP parser refused (bad syntax, oversized headers, headers too slow): the
 * client gets a status naming the problem, and the attempt is recorded like any transaction.
 */
export function createClientErrorHandler(context: ProxyContext): (error: Error & { code?: string }, socket: Duplex) => void {
  return function handleClientError(error, duplex) {
    const socket = duplex as Socket;
    // A client leaving (a reset, a connection closed mid-request, which that request's own
    // transaction records) is not a request of its own.
    if (error.code === 'ECONNRESET' || error.code === 'HPE_INVALID_EOF_STATE' || !socket.writable || responseUnderWay(socket)) {
      socket.destroy();
      return;
    }
    const [status, statusText] = ANSWERS[error.code ?? ''] ?? [400, 'Bad Request'];
    const transaction = new Transaction(newCorrelationId(), '', '', context.protocol);
    const client = transaction.clientLeg;
    transaction.clientAddr = client.remoteAddr = client.remoteName = socket.remoteAddress ?? '';
    transaction.clientPort = client.remotePort = socket.remotePort ?? 0;
    transaction.localAddr = client.localAddr = socket.localAddress ?? '';
    transaction.localPort = client.localPort = socket.localPort ?? 0;
    refuse(context, socket, transaction, status, statusText, `${error.code ?? 'unknown'}: ${error.message}`);
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
