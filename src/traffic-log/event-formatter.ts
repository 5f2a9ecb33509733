import type { Redactor } from '../recording/redactor.js';
import type { CircuitStep, HeaderBlock, Leg, Transaction } from '../recording/transaction.js';

export interface ProcessInfo {
  hostname: string;
  domainId: string;
  groupId: string;
  groupName: string;
  serviceId: string;
  serviceName: string;
  version: string;
}

const str = JSON.stringify;

function ms(value: number): number {
  return Math.max(Math.round(value), 0);
}

/** Three decimals: enough for sub-millisecond loopback timings, short on disk. */
function precise(value: number): number {
  return Math.round(Math.max(value, 0) * 1000) / 1000;
}

/**
 * Renders a finished transaction as open traffic event log lines: one transactionSummary, one
 * transactionElement per leg and one circuitPath, each a JSON object on its own line.
 */
export class EventFormatter {
  readonly #processInfo: string;

  constructor(
    processInfo: ProcessInfo,
    readonly redactor: Redactor,
  ) {
    // The same for every line: serialised once.
    this.#processInfo = `,"processInfo":${str(processInfo)}`;
  }

  format(transaction: Transaction): string {
    const head = `,"correlationId":"${transaction.id}"${this.#processInfo}`;
    const operation = str(`${transaction.method} ${transaction.normalisedPath}`);
    let out = `{"timestamp":${transaction.startedAt}${head},"transactionSummary":${this.#summary(transaction, operation)}}\n`;
    // Shared by every element of the transaction.
    const common = `,"serviceName":${transaction.api === null ? 'null' : str(transaction.api.name)},"operation":${operation}`;
    const withHeaders = transaction.recordsHeaders;
    for (const leg of transaction.legs) {
      out += `{"timestamp":${leg.startedAt}${head},"transactionElement":${this.#element(leg, common, withHeaders)}}\n`;
    }
    out += `{"timestamp":${transaction.startedAt}${head},"circuitPath":${this.#circuitPath(transaction)}}\n`;
    return out;
  }

  #summary(transaction: Transaction, operation: string): string {
    const status = transaction.outcome;
    const { api, consumer } = transaction;
    const duration = ms(transaction.totalMs);
    const client = consumer === null ? 'null' : str(consumer.alias ?? consumer.keyHash);
    const app = consumer?.oauthClientId == null ? 'null' : str(consumer.oauthClientId);
    const contexts =
      api === null
        ? '[]'
        : `[{"service":${str(api.name)},"monitor":true,"client":${client},"org":${str(api.orgId)},"app":${app},"method":${operation},"status":"${status}","duration":${duration}}]`;
    return (
      `{"path":${str(this.redactor.uri(transaction.path))},"protocol":"${transaction.protocol}","protocolSrc":"${transaction.localPort}"` +
      `,"status":"${status}","serviceContexts":${contexts}` +
      `,"apiId":${api === null ? 'null' : str(api.id)},"apiVersion":${api === null ? 'null' : str(api.version)}` +
      `,"method":${str(transaction.method)},"normalisedPath":${str(transaction.normalisedPath)}` +
      `,"trackedEndpoint":${transaction.trackedEndpoint === null ? 'null' : str(transaction.trackedEndpoint)}` +
      `,"httpStatus":${transaction.status},"clientAddr":${str(transaction.clientAddr)},"userAgent":${str(transaction.userAgent)}` +
      `,"tags":${str(transaction.tags)},"upgraded":${transaction.upgraded}` +
      `,"failureReason":${transaction.failure === null ? 'null' : `"${transaction.failure}"`}` +
      `,"failureMessage":${transaction.failureMessage === null ? 'null' : str(transaction.failureMessage)}` +
      `,"latency":{"total":${precise(transaction.totalMs)},"upstream":${precise(transaction.upstreamMs)},"gateway":${precise(transaction.gatewayMs)}}}`
    );
  }

  #element(leg: Leg, common: string, withHeaders: boolean): string {
    const http =
      `{"uri":${str(this.redactor.uri(leg.uri))},"status":${leg.status},"statusText":${str(leg.statusText)},"method":${str(leg.method)}` +
      `,"vhost":${str(leg.vhost)},"wafStatus":0,"bytesSent":${leg.bytesSent},"bytesReceived":${leg.bytesReceived}` +
      `,"remoteName":${str(leg.remoteName)},"remoteAddr":${str(leg.remoteAddr)},"localAddr":${str(leg.localAddr)}` +
      `,"remotePort":"${leg.remotePort}","localPort":"${leg.localPort}","sslSubject":null,"authSubjectId":null}`;
    const protocolInfo =
      `{"recvHeader":${withHeaders ? this.#headerBlock(leg.recvHeader) : 'null'}` +
      `,"sentHeader":${withHeaders ? this.#headerBlock(leg.sentHeader) : 'null'}` +
      `,"recvPayload":${leg.recvPayload === null ? 'null' : str(leg.recvPayload)}` +
      `,"sentPayload":${leg.sentPayload === null ? 'null' : str(leg.sentPayload)}` +
      `,"recvPayloadTruncated":${leg.recvPayload !== null && leg.recvCapture?.truncated === true}` +
      `,"sentPayloadTruncated":${leg.sentPayload !== null && leg.sentCapture?.truncated === true}` +
      `,"http":${http}}`;
    return (
      `{"leg":${leg.index},"duration":${ms(leg.durationMs)}${common}` +
      `,"finalStatus":${leg.finalStatus === null ? 'null' : `"${leg.finalStatus}"`},"protocolInfo":${protocolInfo}` +
      `,"timeToHeaders":${leg.headersMs < 0 ? 'null' : precise(leg.headersMs)},"timeToLastByte":${leg.lastByteMs < 0 ? 'null' : precise(leg.lastByteMs)}` +
      `,"error":${leg.error === null ? 'null' : str(leg.error)}}`
    );
  }

  #headerBlock(block: HeaderBlock | null): string {
    if (block === null) return 'null';
    let text = `${this.#startLine(block.startLine)}\r\n`;
    const fields = block.fields;
    for (let i = 0; i < fields.length; i += 2) {
      const name = String(fields[i]);
      text += `${name}: ${this.redactor.headerValue(name, String(fields[i + 1]))}\r\n`;
    }
    return str(`${text}\r\n`);
  }

  /** A request line carries the query string, which may hold secrets; a status line does not. */
  #startLine(line: string): string {
    if (line.startsWith('HTTP/')) return line;
    const versionAt = line.lastIndexOf(' ');
    return this.redactor.uri(line.slice(0, versionAt)) + line.slice(versionAt);
  }

  #circuitPath(transaction: Transaction): string {
    const filters = transaction.circuit.map((step) => this.#filter(transaction, step)).join(',');
    const policy = transaction.api === null ? 'No API' : transaction.api.name;
    return `[{"policy":${str(policy)},"execTime":${ms(transaction.totalMs)},"filters":[${filters}]}]`;
  }

  #filter(transaction: Transaction, step: CircuitStep): string {
    return (
      `{"name":${str(step.name)},"type":${str(step.type)},"class":"tollgate.${step.name}","status":"${step.status}"` +
      `,"filterTime":${transaction.startedAt + Math.round(step.offsetMs)},"execTime":${precise(step.durationMs)}` +
      `,"filterMessage":${step.message === null ? 'null' : str(step.message)},"subPaths":[]}`
    );
  }
}
