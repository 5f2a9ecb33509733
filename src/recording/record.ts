import { isUtf8 } from 'node:buffer';
import type { ApiIdentity, CircuitStep, Consumer, FailureReason, FinalStatus, Protocol, RecordingLevel, TransactionStatus } from './transaction.js';

/** Bumped whenever a field changes meaning or goes away; adding a field does not bump it. */
export const RECORD_VERSION = 1;

/**
 * A header block as it may be recorded: the start line and a flat name/value list, with every
 * secret value already replaced. Values stay the raw strings or bytes seen on the wire, so a
 * renderer can copy them without decoding.
 */
export interface RecordedHeaders {
  readonly startLine: string;
  readonly fields: readonly (string | Buffer)[];
}

/** Why a body that passed was not stored. */
export type PayloadNotStored =
  /** The bytes held for redaction across all transactions reached `analytics.payloadMemoryMb`. */
  | 'memory-limit'
  /** The payload writer was too far behind (`trafficLog.payloads.maxWriteDelayMs`). */
  | 'queue-full'
  /** The disk refused it (full, gone, no permission); the reason was reported. */
  | 'write-failed'
  /** A compressed body that could not be decoded to redact it. */
  | 'undecodable';

/** A stored body: where it is and what of it was kept. */
export interface StoredPayload {
  /** `file://` URI of the body (with `#offset=N&length=M` in the packed layout). */
  readonly link: string;
  /** Bytes stored (after redaction and decoding). */
  readonly bytes: number;
  /** Cut at `maxPayloadBytes`. */
  readonly truncated: boolean;
}

/** What became of one direction's body on one leg: stored, not stored (and why), or none. */
export type PayloadOutcome = StoredPayload | PayloadNotStored | null;

/** A redacted body kept in the record itself (`analytics.recordBodies`), cut at `maxPayloadBytes`. */
export interface RecordedBody {
  readonly bytes: Buffer;
  readonly truncated: boolean;
}

export interface LegRecord {
  readonly index: number;
  /** Epoch ms when this leg began. */
  readonly startedAt: number;
  /** The open traffic log's duration: to response headers for back-end legs, the whole exchange for leg 0. */
  readonly durationMs: number;
  readonly timeToHeadersMs: number | null;
  readonly timeToLastByteMs: number | null;
  readonly method: string;
  /** Request target with secret query parameters redacted. */
  readonly uri: string;
  readonly vhost: string;
  readonly status: number;
  readonly statusText: string;
  readonly bytesReceived: number;
  readonly bytesSent: number;
  readonly remoteName: string;
  readonly remoteAddr: string;
  readonly remotePort: number;
  readonly localAddr: string;
  readonly localPort: number;
  /** Null when the recording level does not record header blocks. */
  readonly recvHeader: RecordedHeaders | null;
  readonly sentHeader: RecordedHeaders | null;
  readonly recvPayload: PayloadOutcome;
  readonly sentPayload: PayloadOutcome;
  /** With `analytics.recordBodies`: the bodies themselves, redacted. */
  readonly recvBody: RecordedBody | null;
  readonly sentBody: RecordedBody | null;
  readonly finalStatus: FinalStatus | null;
  readonly error: string | null;
}

export interface Latency {
  readonly totalMs: number;
  /** Time spent waiting on back ends: each back-end leg from its start to its last byte. */
  readonly upstreamMs: number;
  readonly gatewayMs: number;
}

/**
 * Everything recorded about one transaction, built once when it is finished and its bodies are
 * settled: redacted, with the recording level applied. Every output (the event log, analytics
 * records, rows) renders this and nothing else; none of them redacts.
 */
export interface TransactionRecord {
  readonly version: typeof RECORD_VERSION;
  /** The correlation id. */
  readonly id: string;
  /** Epoch ms when the gateway began the transaction. */
  readonly startedAt: number;
  readonly api: ApiIdentity | null;
  readonly consumer: Consumer | null;
  readonly trackedEndpoint: string | null;
  readonly method: string;
  /** Request target as received, secret query parameters redacted. */
  readonly uri: string;
  /** Path as received, without the query string. */
  readonly path: string;
  readonly normalisedPath: string;
  readonly protocol: Protocol;
  readonly host: string;
  readonly userAgent: string;
  readonly clientAddr: string;
  readonly clientPort: number;
  readonly localAddr: string;
  readonly localPort: number;
  readonly status: number;
  readonly statusText: string;
  readonly outcome: TransactionStatus;
  readonly tags: readonly string[];
  readonly upgraded: boolean;
  readonly failureReason: FailureReason | null;
  readonly failureMessage: string | null;
  readonly latency: Latency;
  readonly level: RecordingLevel;
  readonly legs: readonly LegRecord[];
  readonly circuit: readonly CircuitStep[];
}

export function isStored(outcome: PayloadOutcome): outcome is StoredPayload {
  return outcome !== null && typeof outcome === 'object';
}

/**
 * Header bytes are opaque to HTTP; records are UTF-8. Valid UTF-8 is read as UTF-8 (and a
 * string Node decoded byte by byte as Latin-1 is put back together), anything else as Latin-1.
 */
function headerText(value: string | Buffer): string {
  if (typeof value !== 'string') return isUtf8(value) ? value.toString('utf8') : value.toString('latin1');
  let latin1Only = true;
  let ascii = true;
  for (let i = 0; i < value.length; i++) {
    const code = value.charCodeAt(i);
    if (code > 0x7f) ascii = false;
    if (code > 0xff) latin1Only = false;
  }
  if (ascii || !latin1Only) return value;
  const bytes = Buffer.from(value, 'latin1');
  return isUtf8(bytes) ? bytes.toString('utf8') : value;
}

/** The header block as text: start line, `Name: value` lines, a blank line, CRLF separated. */
export function headerBlockText(block: RecordedHeaders): string {
  let text = `${block.startLine}\r\n`;
  const { fields } = block;
  for (let i = 0; i < fields.length; i += 2) text += `${headerText(fields[i] as string | Buffer)}: ${headerText(fields[i + 1] as string | Buffer)}\r\n`;
  return `${text}\r\n`;
}
