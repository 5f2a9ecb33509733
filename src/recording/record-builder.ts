import { createHash } from 'node:crypto';
import { RECORD_VERSION, type LegRecord, type RecordedHeaders, type TransactionRecord } from './record.js';
import type { Redactor } from './redactor.js';
import type { Consumer, HeaderBlock, Leg, Transaction } from './transaction.js';

export interface CallerIdentity {
  /** The request header whose value identifies the caller (`analytics.apiKeyHeader`), lower case; null: callers are anonymous. */
  apiKeyHeader: string | null;
  /** SHA-256 (hex) of a key to the name it is shown by (`analytics.keyAliases`). */
  keyAliases: Readonly<Record<string, string>>;
}

/**
 * Turns a finished transaction, its bodies settled, into its record: the only place where what
 * is recorded gets redacted and the recording level is applied.
 */
export class RecordBuilder {
  constructor(
    readonly redactor: Redactor,
    readonly normalise: (path: string) => string,
    readonly identity: CallerIdentity = { apiKeyHeader: null, keyAliases: {} },
  ) {}

  build(transaction: Transaction): TransactionRecord {
    const withHeaders = transaction.recordsHeaders;
    const legs: LegRecord[] = [];
    for (const leg of transaction.legs) legs.push(this.#leg(leg, withHeaders));
    const totalMs = transaction.totalMs;
    const upstreamMs = transaction.upstreamMs;
    return {
      version: RECORD_VERSION,
      id: transaction.id,
      startedAt: transaction.startedAt,
      api: transaction.api,
      consumer: this.#consumer(transaction),
      trackedEndpoint: transaction.trackedEndpoint,
      method: transaction.method,
      uri: this.redactor.uri(transaction.uri),
      path: transaction.path,
      normalisedPath: this.normalise(transaction.path),
      protocol: transaction.protocol,
      host: transaction.host,
      userAgent: transaction.userAgent,
      clientAddr: transaction.clientAddr,
      clientPort: transaction.clientPort,
      localAddr: transaction.localAddr,
      localPort: transaction.localPort,
      status: transaction.status,
      statusText: transaction.statusText,
      outcome: transaction.outcome,
      tags: this.#tags(transaction),
      upgraded: transaction.upgraded,
      failureReason: transaction.failure,
      failureMessage: transaction.failureMessage,
      latency: { totalMs, upstreamMs, gatewayMs: Math.max(totalMs - upstreamMs, 0) },
      level: transaction.policy.level,
      legs,
      circuit: transaction.circuit,
    };
  }

  /** The caller, by the hash of its key: the key itself never leaves the request. */
  #consumer(transaction: Transaction): Consumer | null {
    const { apiKeyHeader, keyAliases } = this.identity;
    const block = transaction.clientLeg.recvHeader;
    if (apiKeyHeader === null || block === null || 'written' in block) return null;
    const { fields } = block;
    for (let i = 0; i < fields.length; i += 2) {
      if (String(fields[i]).toLowerCase() !== apiKeyHeader) continue;
      const keyHash = createHash('sha256').update(String(fields[i + 1])).digest('hex');
      return { keyHash, alias: keyAliases[keyHash] ?? null };
    }
    return null;
  }

  #leg(leg: Leg, withHeaders: boolean): LegRecord {
    return {
      index: leg.index,
      startedAt: leg.startedAt,
      durationMs: leg.durationMs,
      timeToHeadersMs: leg.headersMs < 0 ? null : leg.headersMs,
      timeToLastByteMs: leg.lastByteMs < 0 ? null : leg.lastByteMs,
      method: leg.method,
      uri: this.redactor.uri(leg.uri),
      vhost: leg.vhost,
      status: leg.status,
      statusText: leg.statusText,
      bytesReceived: leg.bytesReceived,
      bytesSent: leg.bytesSent,
      remoteName: leg.remoteName,
      remoteAddr: leg.remoteAddr,
      remotePort: leg.remotePort,
      localAddr: leg.localAddr,
      localPort: leg.localPort,
      recvHeader: withHeaders ? this.#headers(leg.recvHeader) : null,
      sentHeader: withHeaders ? this.#headers(leg.sentHeader) : null,
      recvPayload: leg.recvPayload,
      sentPayload: leg.sentPayload,
      recvBody: leg.recvBody,
      sentBody: leg.sentBody,
      finalStatus: leg.finalStatus,
      error: leg.error,
    };
  }

  #headers(block: HeaderBlock | null): RecordedHeaders | null {
    if (block === null) return null;
    const { startLine, fields } = 'written' in block ? parseHead(block.written) : block;
    // A request line carries the query string, which may hold secrets; a status line does not.
    const line = startLine.startsWith('HTTP/') ? startLine : this.#requestLine(startLine);
    return { startLine: line, fields: this.redactor.headerFields(fields) };
  }

  #requestLine(line: string): string {
    const versionAt = line.lastIndexOf(' ');
    return this.redactor.uri(line.slice(0, versionAt)) + line.slice(versionAt);
  }

  #tags(transaction: Transaction): readonly string[] {
    const { tagHeaders, apiTags } = transaction;
    if (tagHeaders === null) return apiTags;
    const tags: string[] = [];
    for (let i = 0; i < tagHeaders.length; i += 2) {
      const name = tagHeaders[i] as string;
      tags.push(`${name}-${this.redactor.headerValue(name, tagHeaders[i + 1] as string)}`);
    }
    for (const tag of apiTags) tags.push(tag);
    return tags;
  }
}

/** A header block as written (`start line CRLF name: value CRLF ... CRLF`) split into its start line and fields. */
function parseHead(head: string): { startLine: string; fields: string[] } {
  const lines = head.split('\r\n');
  const fields: string[] = [];
  for (let i = 1; i < lines.length; i++) {
    const line = lines[i] as string;
    const colon = line.indexOf(':');
    if (colon <= 0) continue;
    fields.push(line.slice(0, colon), line.slice(colon + 1).trim());
  }
  return { startLine: lines[0] ?? '', fields };
}
