import { headerBlockText, isStored, type LegRecord, type PayloadOutcome, type RecordedHeaders, type TransactionRecord } from '../recording/record.js';
import type { CircuitStep } from '../recording/transaction.js';

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

/** Characters a JSON string cannot hold as they are, and anything beyond ASCII (left to JSON.stringify). */
const NEEDS_ESCAPING = /["\\\u0000-\u001f\u007f-\uffff]/;

/** A JSON string; JSON.stringify only for the rare text that needs escaping. */
function str(text: string): string {
  return NEEDS_ESCAPING.test(text) ? JSON.stringify(text) : `"${text}"`;
}

function strOrNull(text: string | null): string {
  return text === null ? 'null' : str(text);
}

function ms(value: number): number {
  return Math.max(Math.round(value), 0);
}

/** Three decimals: enough for sub-millisecond loopback timings, short on disk. */
function precise(value: number): number {
  return Math.round(Math.max(value, 0) * 1000) / 1000;
}

function preciseOrNull(value: number | null): string {
  return value === null ? 'null' : String(precise(value));
}

/**
 * Renders transaction records as open traffic event log lines (one transactionSummary, one
 * transactionElement per leg and one circuitPath, each a JSON object on its own line), and
 * operational messages as trace lines.
 *
 * Lines are built as template strings: V8 joins the pieces without copying, and the batch is
 * encoded once, by one native call, into the file's buffer. Strings are escaped only when they
 * need it. (Writing each piece into a byte buffer measured slower: a copy call per piece costs
 * more than the joining.)
 */
export class EventFormatter {
  /** `","processInfo":{...}`: the same on every line, serialised once. */
  readonly #processInfo: string;

  constructor(processInfo: ProcessInfo) {
    this.#processInfo = `","processInfo":${JSON.stringify(processInfo)}`;
  }

  format(record: TransactionRecord): string {
    const head = `,"correlationId":"${record.id}${this.#processInfo}`;
    const operation = str(`${record.method} ${record.normalisedPath}`);
    const serviceName = record.api === null ? 'null' : str(record.api.name);
    let lines = `{"timestamp":${record.startedAt}${head},"transactionSummary":${summary(record, operation)}}\n`;
    for (const leg of record.legs) {
      lines += `{"timestamp":${leg.startedAt}${head},"transactionElement":${element(leg, serviceName, operation)}}\n`;
    }
    return `${lines}{"timestamp":${record.startedAt}${head},"circuitPath":${circuitPath(record, serviceName)}}\n`;
  }

  trace(level: TraceLevel, message: string, at: number = Date.now()): string {
    return `{"timestamp":${at},"correlationId":"${NO_TRANSACTION}${this.#processInfo},"trace":{"level":"${level}","thread":"main","data":${str(message)}}}\n`;
  }
}

function summary(record: TransactionRecord, operation: string): string {
  const { api, consumer, latency } = record;
  const contexts =
    api === null
      ? '[]'
      : `[{"service":${str(api.name)},"monitor":true,"client":${consumer === null ? 'null' : str(consumer.alias ?? consumer.keyHash)}` +
        `,"org":${str(api.orgId)},"app":null,"method":${operation},"status":"${record.outcome}","duration":${ms(latency.totalMs)}}]`;
  let tags = '';
  for (const tag of record.tags) tags += tags === '' ? str(tag) : `,${str(tag)}`;
  return (
    `{"path":${str(record.path)},"protocol":"${record.protocol}","protocolSrc":"${record.localPort}","status":"${record.outcome}","serviceContexts":${contexts}` +
    `,"apiId":${api === null ? 'null' : str(api.id)},"apiVersion":${api === null ? 'null' : str(api.version)}` +
    `,"method":${str(record.method)},"normalisedPath":${str(record.normalisedPath)},"trackedEndpoint":${strOrNull(record.trackedEndpoint)}` +
    `,"httpStatus":${record.status},"clientAddr":${str(record.clientAddr)},"userAgent":${str(record.userAgent)},"tags":[${tags}],"upgraded":${record.upgraded}` +
    `,"failureReason":${record.failureReason === null ? 'null' : `"${record.failureReason}"`},"failureMessage":${strOrNull(record.failureMessage)}` +
    `,"latency":{"total":${precise(latency.totalMs)},"upstream":${precise(latency.upstreamMs)},"gateway":${precise(latency.gatewayMs)}}}`
  );
}

function element(leg: LegRecord, serviceName: string, operation: string): string {
  const { recvPayload, sentPayload } = leg;
  return (
    `{"leg":${leg.index},"duration":${ms(leg.durationMs)},"serviceName":${serviceName},"operation":${operation}` +
    `,"finalStatus":${leg.finalStatus === null ? 'null' : `"${leg.finalStatus}"`}` +
    `,"protocolInfo":{"recvHeader":${headerBlock(leg.recvHeader)},"sentHeader":${headerBlock(leg.sentHeader)}` +
    `,"recvPayload":${link(recvPayload)},"sentPayload":${link(sentPayload)}` +
    `,"recvPayloadTruncated":${isStored(recvPayload) && recvPayload.truncated},"sentPayloadTruncated":${isStored(sentPayload) && sentPayload.truncated}` +
    `,"recvPayloadNotStored":${notStored(recvPayload)},"sentPayloadNotStored":${notStored(sentPayload)}` +
    `,"http":{"uri":${str(leg.uri)},"status":${leg.status},"statusText":${str(leg.statusText)},"method":${str(leg.method)},"vhost":${str(leg.vhost)}` +
    `,"wafStatus":0,"bytesSent":${leg.bytesSent},"bytesReceived":${leg.bytesReceived},"remoteName":${str(leg.remoteName)},"remoteAddr":${str(leg.remoteAddr)}` +
    `,"localAddr":${str(leg.localAddr)},"remotePort":"${leg.remotePort}","localPort":"${leg.localPort}","sslSubject":null,"authSubjectId":null}}` +
    `,"timeToHeaders":${preciseOrNull(leg.timeToHeadersMs)},"timeToLastByte":${preciseOrNull(leg.timeToLastByteMs)},"error":${strOrNull(leg.error)}}`
  );
}

function circuitPath(record: TransactionRecord, policy: string): string {
  let filters = '';
  for (const step of record.circuit) filters += filters === '' ? filter(record.startedAt, step) : `,${filter(record.startedAt, step)}`;
  return `[{"policy":${record.api === null ? '"No API"' : policy},"execTime":${ms(record.latency.totalMs)},"filters":[${filters}]}]`;
}

function filter(startedAt: number, step: CircuitStep): string {
  return (
    `{"name":"${step.name}","type":"${step.type}","class":"tollgate.${step.name}","status":"${step.status}"` +
    `,"filterTime":${startedAt + Math.round(step.offsetMs)},"execTime":${precise(step.durationMs)},"filterMessage":${strOrNull(step.message)},"subPaths":[]}`
  );
}

/** The raw header block as one JSON string. */
function headerBlock(block: RecordedHeaders | null): string {
  return block === null ? 'null' : JSON.stringify(headerBlockText(block));
}

function link(outcome: PayloadOutcome): string {
  return isStored(outcome) ? str(outcome.link) : 'null';
}

function notStored(outcome: PayloadOutcome): string {
  return typeof outcome === 'string' ? `"${outcome}"` : 'null';
}
