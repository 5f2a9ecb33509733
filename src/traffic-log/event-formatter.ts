import { isStored, type LegRecord, type PayloadOutcome, type RecordedHeaders, type TransactionRecord } from '../recording/record.js';
import type { CircuitStep } from '../recording/transaction.js';
import { fragment, type JsonBytes } from './json-bytes.js';

export interface ProcessInfo {
  hostname: string;
  domainId: string;
  groupId: string;
  groupName: string;
  serviceId: string;
  serviceName: string;
  version: string;
}

export type TraceLevel = 'FATAL' | 'ERROR' | 'INFO' | 'DEBUG';

/** The correlation id of lines not tied to a transaction. */
export const NO_TRANSACTION = '000000000000000000000000';

const F = {
  timestamp: fragment('{"timestamp":'),
  correlationId: fragment(',"correlationId":"'),
  summary: fragment(',"transactionSummary":{"path":'),
  protocol: fragment(',"protocol":"'),
  protocolSrc: fragment('","protocolSrc":"'),
  status: fragment('","status":"'),
  contexts: fragment('","serviceContexts":'),
  noContexts: fragment('[]'),
  service: fragment('[{"service":'),
  monitorClient: fragment(',"monitor":true,"client":'),
  org: fragment(',"org":'),
  app: fragment(',"app":'),
  contextMethod: fragment(',"method":'),
  contextStatus: fragment(',"status":"'),
  contextDuration: fragment('","duration":'),
  contextEnd: fragment('}]'),
  apiId: fragment(',"apiId":'),
  apiVersion: fragment(',"apiVersion":'),
  method: fragment(',"method":'),
  normalisedPath: fragment(',"normalisedPath":'),
  trackedEndpoint: fragment(',"trackedEndpoint":'),
  httpStatus: fragment(',"httpStatus":'),
  clientAddr: fragment(',"clientAddr":'),
  userAgent: fragment(',"userAgent":'),
  tags: fragment(',"tags":['),
  upgraded: fragment('],"upgraded":'),
  failureReason: fragment(',"failureReason":'),
  failureMessage: fragment(',"failureMessage":'),
  latency: fragment(',"latency":{"total":'),
  upstream: fragment(',"upstream":'),
  gateway: fragment(',"gateway":'),
  summaryEnd: fragment('}}}\n'),
  element: fragment(',"transactionElement":{"leg":'),
  duration: fragment(',"duration":'),
  serviceName: fragment(',"serviceName":'),
  operation: fragment(',"operation":'),
  finalStatus: fragment(',"finalStatus":'),
  recvHeader: fragment(',"protocolInfo":{"recvHeader":'),
  sentHeader: fragment(',"sentHeader":'),
  recvPayload: fragment(',"recvPayload":'),
  sentPayload: fragment(',"sentPayload":'),
  recvTruncated: fragment(',"recvPayloadTruncated":'),
  sentTruncated: fragment(',"sentPayloadTruncated":'),
  recvNotStored: fragment(',"recvPayloadNotStored":'),
  sentNotStored: fragment(',"sentPayloadNotStored":'),
  uri: fragment(',"http":{"uri":'),
  legStatus: fragment(',"status":'),
  statusText: fragment(',"statusText":'),
  vhost: fragment(',"vhost":'),
  bytesSent: fragment(',"wafStatus":0,"bytesSent":'),
  bytesReceived: fragment(',"bytesReceived":'),
  remoteName: fragment(',"remoteName":'),
  remoteAddr: fragment(',"remoteAddr":'),
  localAddr: fragment(',"localAddr":'),
  remotePort: fragment(',"remotePort":"'),
  localPort: fragment('","localPort":"'),
  httpEnd: fragment('","sslSubject":null,"authSubjectId":null}}'),
  timeToHeaders: fragment(',"timeToHeaders":'),
  timeToLastByte: fragment(',"timeToLastByte":'),
  error: fragment(',"error":'),
  elementEnd: fragment('}}\n'),
  circuit: fragment(',"circuitPath":[{"policy":'),
  execTime: fragment(',"execTime":'),
  filters: fragment(',"filters":['),
  filterName: fragment('{"name":'),
  filterType: fragment(',"type":'),
  filterClass: fragment(',"class":"tollgate.'),
  filterStatus: fragment('","status":"'),
  filterTime: fragment('","filterTime":'),
  filterMessage: fragment(',"filterMessage":'),
  filterEnd: fragment(',"subPaths":[]}'),
  circuitEnd: fragment(']}]}\n'),
  trace: fragment(',"trace":{"level":"'),
  thread: fragment('","thread":"main","data":'),
  traceEnd: fragment('}}\n'),
  crlf: fragment('\\r\\n'),
  colon: fragment(': '),
  quote: fragment('"'),
  comma: fragment(','),
  null: fragment('null'),
  true: fragment('true'),
  false: fragment('false'),
};

function ms(value: number): number {
  return Math.max(Math.round(value), 0);
}

/**
 * Renders transaction records as open traffic event log lines (one transactionSummary, one
 * transactionElement per leg and one circuitPath, each a JSON object on its own line), and
 * operational messages as trace lines, straight into bytes.
 */
export class EventFormatter {
  /** `"` + `,"processInfo":{...}`: the same on every line, encoded once. */
  readonly #processInfo: Buffer;

  constructor(processInfo: ProcessInfo) {
    this.#processInfo = fragment(`","processInfo":${JSON.stringify(processInfo)}`);
  }

  format(record: TransactionRecord, out: JsonBytes): void {
    const operation = `${record.method} ${record.normalisedPath}`;
    this.#head(out, record.startedAt, record.id);
    this.#summary(record, operation, out);
    for (const leg of record.legs) {
      this.#head(out, leg.startedAt, record.id);
      this.#element(record, leg, operation, out);
    }
    this.#head(out, record.startedAt, record.id);
    this.#circuitPath(record, out);
  }

  trace(level: TraceLevel, message: string, out: JsonBytes, at: number = Date.now()): void {
    this.#head(out, at, NO_TRANSACTION);
    out.raw(F.trace);
    out.ascii(level);
    out.raw(F.thread);
    out.string(message);
    out.raw(F.traceEnd);
  }

  #head(out: JsonBytes, timestamp: number, id: string): void {
    out.raw(F.timestamp);
    out.int(timestamp);
    out.raw(F.correlationId);
    out.ascii(id);
    out.raw(this.#processInfo);
  }

  #summary(record: TransactionRecord, operation: string, out: JsonBytes): void {
    const { api, consumer } = record;
    out.raw(F.summary);
    out.string(record.path);
    out.raw(F.protocol);
    out.ascii(record.protocol);
    out.raw(F.protocolSrc);
    out.int(record.localPort);
    out.raw(F.status);
    out.ascii(record.outcome);
    out.raw(F.contexts);
    if (api === null) {
      out.raw(F.noContexts);
    } else {
      out.raw(F.service);
      out.string(api.name);
      out.raw(F.monitorClient);
      out.stringOrNull(consumer === null ? null : (consumer.alias ?? consumer.keyHash));
      out.raw(F.org);
      out.string(api.orgId);
      out.raw(F.app);
      out.stringOrNull(consumer?.oauthClientId ?? null);
      out.raw(F.contextMethod);
      out.string(operation);
      out.raw(F.contextStatus);
      out.ascii(record.outcome);
      out.raw(F.contextDuration);
      out.int(ms(record.latency.totalMs));
      out.raw(F.contextEnd);
    }
    out.raw(F.apiId);
    out.stringOrNull(api?.id ?? null);
    out.raw(F.apiVersion);
    out.stringOrNull(api?.version ?? null);
    out.raw(F.method);
    out.string(record.method);
    out.raw(F.normalisedPath);
    out.string(record.normalisedPath);
    out.raw(F.trackedEndpoint);
    out.stringOrNull(record.trackedEndpoint);
    out.raw(F.httpStatus);
    out.int(record.status);
    out.raw(F.clientAddr);
    out.string(record.clientAddr);
    out.raw(F.userAgent);
    out.string(record.userAgent);
    out.raw(F.tags);
    const { tags } = record;
    for (let i = 0; i < tags.length; i++) {
      if (i > 0) out.raw(F.comma);
      out.string(tags[i] as string);
    }
    out.raw(F.upgraded);
    out.raw(record.upgraded ? F.true : F.false);
    out.raw(F.failureReason);
    out.stringOrNull(record.failureReason);
    out.raw(F.failureMessage);
    out.stringOrNull(record.failureMessage);
    out.raw(F.latency);
    out.decimal3(record.latency.totalMs);
    out.raw(F.upstream);
    out.decimal3(record.latency.upstreamMs);
    out.raw(F.gateway);
    out.decimal3(record.latency.gatewayMs);
    out.raw(F.summaryEnd);
  }

  #element(record: TransactionRecord, leg: LegRecord, operation: string, out: JsonBytes): void {
    out.raw(F.element);
    out.int(leg.index);
    out.raw(F.duration);
    out.int(ms(leg.durationMs));
    out.raw(F.serviceName);
    out.stringOrNull(record.api?.name ?? null);
    out.raw(F.operation);
    out.string(operation);
    out.raw(F.finalStatus);
    if (leg.finalStatus === null) out.raw(F.null);
    else {
      out.raw(F.quote);
      out.ascii(leg.finalStatus);
      out.raw(F.quote);
    }
    out.raw(F.recvHeader);
    headerBlock(leg.recvHeader, out);
    out.raw(F.sentHeader);
    headerBlock(leg.sentHeader, out);
    out.raw(F.recvPayload);
    payloadLink(leg.recvPayload, out);
    out.raw(F.sentPayload);
    payloadLink(leg.sentPayload, out);
    out.raw(F.recvTruncated);
    out.raw(isStored(leg.recvPayload) && leg.recvPayload.truncated ? F.true : F.false);
    out.raw(F.sentTruncated);
    out.raw(isStored(leg.sentPayload) && leg.sentPayload.truncated ? F.true : F.false);
    out.raw(F.recvNotStored);
    notStored(leg.recvPayload, out);
    out.raw(F.sentNotStored);
    notStored(leg.sentPayload, out);
    out.raw(F.uri);
    out.string(leg.uri);
    out.raw(F.legStatus);
    out.int(leg.status);
    out.raw(F.statusText);
    out.string(leg.statusText);
    out.raw(F.method);
    out.string(leg.method);
    out.raw(F.vhost);
    out.string(leg.vhost);
    out.raw(F.bytesSent);
    out.int(leg.bytesSent);
    out.raw(F.bytesReceived);
    out.int(leg.bytesReceived);
    out.raw(F.remoteName);
    out.string(leg.remoteName);
    out.raw(F.remoteAddr);
    out.string(leg.remoteAddr);
    out.raw(F.localAddr);
    out.string(leg.localAddr);
    out.raw(F.remotePort);
    out.int(leg.remotePort);
    out.raw(F.localPort);
    out.int(leg.localPort);
    out.raw(F.httpEnd);
    out.raw(F.timeToHeaders);
    if (leg.timeToHeadersMs === null) out.raw(F.null);
    else out.decimal3(leg.timeToHeadersMs);
    out.raw(F.timeToLastByte);
    if (leg.timeToLastByteMs === null) out.raw(F.null);
    else out.decimal3(leg.timeToLastByteMs);
    out.raw(F.error);
    out.stringOrNull(leg.error);
    out.raw(F.elementEnd);
  }

  #circuitPath(record: TransactionRecord, out: JsonBytes): void {
    out.raw(F.circuit);
    out.string(record.api === null ? 'No API' : record.api.name);
    out.raw(F.execTime);
    out.int(ms(record.latency.totalMs));
    out.raw(F.filters);
    const { circuit } = record;
    for (let i = 0; i < circuit.length; i++) {
      if (i > 0) out.raw(F.comma);
      filter(record.startedAt, circuit[i] as CircuitStep, out);
    }
    out.raw(F.circuitEnd);
  }
}

function filter(startedAt: number, step: CircuitStep, out: JsonBytes): void {
  out.raw(F.filterName);
  out.string(step.name);
  out.raw(F.filterType);
  out.string(step.type);
  out.raw(F.filterClass);
  out.ascii(step.name);
  out.raw(F.filterStatus);
  out.ascii(step.status);
  out.raw(F.filterTime);
  out.int(startedAt + Math.round(step.offsetMs));
  out.raw(F.execTime);
  out.decimal3(step.durationMs);
  out.raw(F.filterMessage);
  out.stringOrNull(step.message);
  out.raw(F.filterEnd);
}

/** The raw header block as one JSON string: start line, `Name: value` lines, a blank line, CRLF separated. */
function headerBlock(block: RecordedHeaders | null, out: JsonBytes): void {
  if (block === null) return out.raw(F.null);
  out.raw(F.quote);
  out.stringContent(block.startLine);
  out.raw(F.crlf);
  const { fields } = block;
  for (let i = 0; i < fields.length; i += 2) {
    out.headerContent(fields[i] as string | Buffer);
    out.raw(F.colon);
    out.headerContent(fields[i + 1] as string | Buffer);
    out.raw(F.crlf);
  }
  out.raw(F.crlf);
  out.raw(F.quote);
}

function payloadLink(outcome: PayloadOutcome, out: JsonBytes): void {
  if (isStored(outcome)) out.string(outcome.link);
  else out.raw(F.null);
}

function notStored(outcome: PayloadOutcome, out: JsonBytes): void {
  if (typeof outcome === 'string') out.string(outcome);
  else out.raw(F.null);
}
