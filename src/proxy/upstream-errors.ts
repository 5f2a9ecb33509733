import type { FailureReason } from '../recording/transaction.js';

export interface UpstreamFailure {
  reason: FailureReason;
  /** Status for the client when no response has started yet. */
  status: 502 | 504;
  /** The request never reached the back end, so another target or attempt may be tried. */
  connectFailed: boolean;
}

const CONNECT_FAILURES = new Set(['ECONNREFUSED', 'ENOTFOUND', 'EHOSTUNREACH', 'ENETUNREACH', 'EAI_AGAIN', 'EADDRNOTAVAIL']);

/** Sorts an undici/socket error into why the back-end call failed. */
export function classifyUpstreamError(error: Error & { code?: string }): UpstreamFailure {
  const code = error.code ?? '';
  if (code === 'UND_ERR_CONNECT_TIMEOUT') return { reason: 'upstream-connect-timeout', status: 504, connectFailed: true };
  if (CONNECT_FAILURES.has(code)) return { reason: 'upstream-connect-failed', status: 502, connectFailed: true };
  if (code === 'UND_ERR_HEADERS_TIMEOUT') return { reason: 'upstream-headers-timeout', status: 504, connectFailed: false };
  if (code === 'UND_ERR_BODY_TIMEOUT') return { reason: 'upstream-idle-timeout', status: 504, connectFailed: false };
  if (code === 'UND_ERR_SOCKET' || code === 'ECONNRESET' || code === 'EPIPE') {
    return { reason: 'upstream-reset', status: 502, connectFailed: false };
  }
  return { reason: 'upstream-error', status: 502, connectFailed: false };
}

/**
 * The back end did not answer within `responseHeadersMs` of the request's arrival: classified
 * like undici's own headers timeout, whether the time went waiting for a free connection or
 * waiting for the answer.
 */
export function responseDeadlineError(timeoutMs: number, waitedForConnection: boolean): Error & { code: string } {
  const message = waitedForConnection
    ? `no connection to the back end became free within ${timeoutMs} ms (all of the pool's connections were busy)`
    : `the back end sent no response headers within ${timeoutMs} ms`;
  return Object.assign(new Error(message), { code: 'UND_ERR_HEADERS_TIMEOUT' });
}
