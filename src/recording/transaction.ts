import { performance } from 'node:perf_hooks';
import type { PayloadCapture } from './payload-capture.js';
import type { PayloadOutcome, RecordedBody } from './record.js';

export type FinalStatus = 'Pass' | 'Fail' | 'Error';
export type TransactionStatus = 'success' | 'failure' | 'exception' | 'unknown';
export type Protocol = 'http' | 'https';

/** Why a transaction did not complete normally; null when it did. */
export type FailureReason =
  | 'no-route'
  | 'malformed-request'
  | 'upstream-connect-failed'
  | 'upstream-connect-timeout'
  | 'upstream-headers-timeout'
  | 'upstream-idle-timeout'
  | 'upstream-reset'
  | 'upstream-error'
  | 'client-aborted-request'
  | 'client-aborted-response'
  | 'gateway-shutdown'
  | 'analytics-buffer-full';

/**
 * A header block kept as the raw pieces seen on the wire; it is redacted and rendered only once
 * the transaction is finished, never on the request path.
 */
export type HeaderBlock =
  | {
      startLine: string;
      /** Flat name/value list, as Node's rawHeaders or undici's raw header buffers. */
      fields: readonly (string | Buffer)[];
    }
  /** The block exactly as written, CRLF separated, ending with the blank line. */
  | { written: string };

export type RecordingLevel = 'off' | 'headers' | 'full' | 'errors';

/** What is recorded about requests to one API endpoint: decided once per route, shared by its requests. */
export interface RecordingPolicy {
  /** False for doNotTrack APIs and endpoints, and when analytics are off. */
  readonly tracked: boolean;
  /** detailedRecording in effect: endpoint, else API, else global. */
  readonly level: RecordingLevel;
  /** Whether bodies may be stored (payload storage is on and the level may keep them). */
  readonly capturesBodies: boolean;
}

/** The policy of a request that records nothing. */
export const NOT_RECORDED: RecordingPolicy = { tracked: false, level: 'off', capturesBodies: false };

export interface ApiIdentity {
  id: string;
  name: string;
  version: string;
  orgId: string;
  listenPath: string;
}

/** Who called, known by a key it sent (`analytics.apiKeyHeader`); null for anonymous traffic. */
export interface Consumer {
  /** SHA-256 of the key, hex (never the key itself). */
  keyHash: string;
  alias: string | null;
}

/** One exchange: leg 0 is client <-> gateway, legs 1..n are gateway <-> back end attempts. */
export class Leg {
  /** Epoch ms when this exchange began. */
  readonly startedAt: number;
  readonly startMono: number;
  /** ms from leg start until response headers were received (back end) or sent (client). */
  headersMs = -1;
  /** ms from leg start until the last byte of the response passed. */
  lastByteMs = -1;
  /** Body bytes the gateway received / sent on this leg. */
  bytesReceived = 0;
  bytesSent = 0;
  method = '';
  uri = '';
  vhost = '';
  status = 0;
  statusText = '';
  remoteName = '';
  remoteAddr = '';
  remotePort = 0;
  localAddr = '';
  localPort = 0;
  recvHeader: HeaderBlock | null = null;
  sentHeader: HeaderBlock | null = null;
  /** The recorded copies of the bodies received / sent on this leg (the same body may be shared). */
  recvCapture: PayloadCapture | null = null;
  sentCapture: PayloadCapture | null = null;
  /** What became of those bodies, set once they are stored. */
  recvPayload: PayloadOutcome = null;
  sentPayload: PayloadOutcome = null;
  /** The redacted bodies themselves, kept for the record with `analytics.recordBodies`. */
  recvBody: RecordedBody | null = null;
  sentBody: RecordedBody | null = null;
  finalStatus: FinalStatus | null = null;
  error: string | null = null;

  constructor(
    readonly index: number,
    transactionStartedAt: number,
    transactionStartMono: number,
  ) {
    this.startMono = performance.now();
    this.startedAt = transactionStartedAt + Math.round(this.startMono - transactionStartMono);
  }

  /** Duration in the open traffic log sense: to headers for back-end legs, whole exchange for leg 0. */
  get durationMs(): number {
    const end = this.index === 0 ? this.lastByteMs : this.headersMs;
    return end < 0 ? Math.max(this.lastByteMs, 0) : end;
  }
}

export interface CircuitStep {
  name: string;
  type: string;
  status: FinalStatus;
  /** ms from transaction start to the step's start. */
  offsetMs: number;
  durationMs: number;
  message: string | null;
}

/** The one in-memory record of a transaction, filled as it happens and formatted when it ends. */
export class Transaction {
  readonly startedAt = Date.now();
  readonly startMono = performance.now();
  endMono = -1;
  api: ApiIdentity | null = null;
  /** Endpoint pattern matched (for tracking), as `METHOD /path`, or null. */
  trackedEndpoint: string | null = null;
  method: string;
  /** Request target as received (path and query). */
  uri: string;
  /** Path without the query string. */
  path: string;
  protocol: Protocol;
  host = '';
  userAgent = '';
  clientAddr = '';
  clientPort = 0;
  localAddr = '';
  localPort = 0;
  status = 0;
  statusText = '';
  /** Tags of the API definition. */
  apiTags: readonly string[] = [];
  /** Values of the API's tag headers, as `name, value` pairs; they become `<name>-<value>` tags once redacted. */
  tagHeaders: string[] | null = null;
  upgraded = false;
  failure: FailureReason | null = null;
  failureMessage: string | null = null;
  policy: RecordingPolicy = NOT_RECORDED;
  readonly legs: Leg[] = [];
  readonly circuit: CircuitStep[] = [];

  constructor(
    readonly id: string,
    method: string,
    uri: string,
    protocol: Protocol,
  ) {
    this.method = method;
    this.uri = uri;
    // A fragment has no place in a request target, but a client may send one: it is not part of the path (and may hold a token).
    const pathEnd = uri.search(/[?#]/);
    this.path = pathEnd === -1 ? uri : uri.slice(0, pathEnd);
    this.protocol = protocol;
    this.legs.push(new Leg(0, this.startedAt, this.startMono));
  }

  get clientLeg(): Leg {
    return this.legs[0] as Leg;
  }

  addUpstreamLeg(): Leg {
    const leg = new Leg(this.legs.length, this.startedAt, this.startMono);
    this.legs.push(leg);
    return leg;
  }

  step(name: string, type: string, startMono: number, status: FinalStatus, message: string | null = null): void {
    const now = performance.now();
    this.circuit.push({ name, type, status, offsetMs: startMono - this.startMono, durationMs: now - startMono, message });
  }

  fail(reason: FailureReason, message: string): void {
    if (this.failure === null) {
      this.failure = reason;
      this.failureMessage = message;
    }
  }

  get totalMs(): number {
    return (this.endMono < 0 ? performance.now() : this.endMono) - this.startMono;
  }

  /** Time spent waiting on back ends: each back-end leg from its start to its last byte. */
  get upstreamMs(): number {
    let sum = 0;
    for (let i = 1; i < this.legs.length; i++) {
      const leg = this.legs[i] as Leg;
      sum += leg.lastByteMs >= 0 ? leg.lastByteMs : Math.max(leg.headersMs, 0);
    }
    return sum;
  }


  get outcome(): TransactionStatus {
    if (this.failure !== null && this.failure !== 'no-route' && this.failure !== 'malformed-request' && this.failure !== 'analytics-buffer-full') return 'exception';
    if (this.status === 0) return 'unknown';
    return this.status >= 400 ? 'failure' : 'success';
  }

  /** Whether header blocks are recorded, given the final status. */
  get recordsHeaders(): boolean {
    const level = this.policy.level;
    return level === 'headers' || level === 'full' || (level === 'errors' && this.isError);
  }

  /** Whether bodies are stored, given the final status. */
  get recordsBodies(): boolean {
    const { level, capturesBodies } = this.policy;
    return capturesBodies && (level === 'full' || (level === 'errors' && this.isError));
  }

  get isError(): boolean {
    return this.status >= 400 || this.status === 0 || this.failure !== null;
  }
}
