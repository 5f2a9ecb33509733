import { isUtf8 } from 'node:buffer';
import { headerBlockText, isStored, type LegRecord, type PayloadNotStored, type PayloadOutcome, type RecordedBody, type TransactionRecord } from '../recording/record.js';
import type { FailureReason, FinalStatus, Protocol, TransactionStatus } from '../recording/transaction.js';

/** Bumped whenever a field changes meaning or goes away; adding a field does not bump it. */
export const ANALYTICS_RECORD_VERSION = 1;

/** One direction of one leg: what the record keeps of a message besides its numbers. */
export interface AnalyticsMessage {
  /** The header block, redacted, when the recording level records header blocks; else null. */
  headers: string | null;
  /** Link to the stored body (`file://...`), when payload storage kept it. */
  payload: string | null;
  /** Why a body that passed was not stored. */
  notStored: PayloadNotStored | null;
  /** With `analytics.recordBodies`: the redacted body, UTF-8 text or base64 (`bodyEncoding`). */
  body: string | null;
  bodyEncoding: 'utf8' | 'base64' | null;
  /** The stored body or `body` was cut at `maxPayloadBytes`. */
  truncated: boolean;
}

export interface AnalyticsLeg {
  /** 0: client <-> gateway; 1..n: each attempt to a back end. */
  index: number;
  /** Epoch ms when this leg began. */
  startedAt: number;
  method: string;
  uri: string;
  /** The other side: the client's address (leg 0) or the back end's host (legs 1..n). */
  remoteHost: string;
  remotePort: number;
  status: number;
  statusText: string;
  /** ms: the whole exchange for leg 0, to response headers for back-end legs. */
  duration: number;
  timeToHeaders: number | null;
  timeToLastByte: number | null;
  /** Body bytes the gateway sent and received on this leg. */
  bytesSent: number;
  bytesReceived: number;
  finalStatus: FinalStatus | null;
  error: string | null;
  received: AnalyticsMessage;
  sent: AnalyticsMessage;
}

/**
 * One transaction as the analytics pipeline carries it to stores: a rendering of the
 * `TransactionRecord`, already redacted, flat where stores filter and group.
 */
export interface AnalyticsRecord {
  version: typeof ANALYTICS_RECORD_VERSION;
  /** The correlation id. */
  id: string;
  /** Epoch ms when the gateway began the transaction. */
  timestamp: number;
  /** The timestamp's UTC parts, for grouping. */
  year: number;
  month: number;
  day: number;
  hour: number;
  /** Epoch ms after which a store may delete the record (`analytics.expireAfterSec`). */
  expireAt: number;
  /** The gateway process that recorded it (`<instance>` or `<instance>-<n>`). */
  instance: string;
  apiId: string | null;
  apiName: string | null;
  apiVersion: string | null;
  orgId: string | null;
  listenPath: string | null;
  trackedEndpoint: string | null;
  method: string;
  host: string;
  /** Request target, secret parameters redacted. */
  uri: string;
  path: string;
  normalisedPath: string;
  protocol: Protocol;
  clientAddr: string;
  userAgent: string;
  status: number;
  outcome: TransactionStatus;
  failureReason: FailureReason | null;
  failureMessage: string | null;
  /** ms, three decimals. */
  latencyTotal: number;
  latencyUpstream: number;
  latencyGateway: number;
  /** Body bytes from the client, and to it. */
  bytesIn: number;
  bytesOut: number;
  tags: string[];
  /** SHA-256 (hex) of the caller's key (`analytics.apiKeyHeader`), and its alias. */
  apiKeyHash: string | null;
  apiKeyAlias: string | null;
  upgraded: boolean;
  legs: AnalyticsLeg[];
}

export interface AnalyticsRendering {
  instance: string;
  /** Seconds a record is kept, for the API it belongs to (null: no API). */
  expireAfterSec(apiId: string | null): number;
}

function precise(value: number): number {
  return Math.round(Math.max(value, 0) * 1000) / 1000;
}

/** Text stays text; anything else (binary, or text with control characters) goes as base64. */
function encodedBody(body: RecordedBody | null): Pick<AnalyticsMessage, 'body' | 'bodyEncoding'> {
  if (body === null) return { body: null, bodyEncoding: null };
  const { bytes } = body;
  let text = isUtf8(bytes);
  for (let i = 0; text && i < bytes.length; i++) {
    const byte = bytes[i] as number;
    if (byte < 0x20 && byte !== 0x09 && byte !== 0x0a && byte !== 0x0d) text = false;
  }
  return text ? { body: bytes.toString('utf8'), bodyEncoding: 'utf8' } : { body: bytes.toString('base64'), bodyEncoding: 'base64' };
}

function message(headers: LegRecord['recvHeader'], payload: PayloadOutcome, body: RecordedBody | null): AnalyticsMessage {
  const stored = isStored(payload);
  return {
    headers: headers === null ? null : headerBlockText(headers),
    payload: stored ? payload.link : null,
    notStored: typeof payload === 'string' ? payload : null,
    ...encodedBody(body),
    truncated: (stored && payload.truncated) || (body?.truncated ?? false),
  };
}

function leg(record: LegRecord): AnalyticsLeg {
  return {
    index: record.index,
    startedAt: record.startedAt,
    method: record.method,
    uri: record.uri,
    remoteHost: record.remoteAddr,
    remotePort: record.remotePort,
    status: record.status,
    statusText: record.statusText,
    duration: precise(record.durationMs),
    timeToHeaders: record.timeToHeadersMs === null ? null : precise(record.timeToHeadersMs),
    timeToLastByte: record.timeToLastByteMs === null ? null : precise(record.timeToLastByteMs),
    bytesSent: record.bytesSent,
    bytesReceived: record.bytesReceived,
    finalStatus: record.finalStatus,
    error: record.error,
    received: message(record.recvHeader, record.recvPayload, record.recvBody),
    sent: message(record.sentHeader, record.sentPayload, record.sentBody),
  };
}

/** Renders a transaction record as the analytics record. */
export function analyticsRecord(record: TransactionRecord, rendering: AnalyticsRendering): AnalyticsRecord {
  const started = new Date(record.startedAt);
  const { api, consumer, latency } = record;
  const client = record.legs[0];
  return {
    version: ANALYTICS_RECORD_VERSION,
    id: record.id,
    timestamp: record.startedAt,
    year: started.getUTCFullYear(),
    month: started.getUTCMonth() + 1,
    day: started.getUTCDate(),
    hour: started.getUTCHours(),
    expireAt: record.startedAt + rendering.expireAfterSec(api?.id ?? null) * 1000,
    instance: rendering.instance,
    apiId: api?.id ?? null,
    apiName: api?.name ?? null,
    apiVersion: api?.version ?? null,
    orgId: api?.orgId ?? null,
    listenPath: api?.listenPath ?? null,
    trackedEndpoint: record.trackedEndpoint,
    method: record.method,
    host: record.host,
    uri: record.uri,
    path: record.path,
    normalisedPath: record.normalisedPath,
    protocol: record.protocol,
    clientAddr: record.clientAddr,
    userAgent: record.userAgent,
    status: record.status,
    outcome: record.outcome,
    failureReason: record.failureReason,
    failureMessage: record.failureMessage,
    latencyTotal: precise(latency.totalMs),
    latencyUpstream: precise(latency.upstreamMs),
    latencyGateway: precise(latency.gatewayMs),
    bytesIn: client?.bytesReceived ?? 0,
    bytesOut: client?.bytesSent ?? 0,
    tags: [...record.tags],
    apiKeyHash: consumer?.keyHash ?? null,
    apiKeyAlias: consumer?.alias ?? null,
    upgraded: record.upgraded,
    legs: record.legs.map(leg),
  };
}
