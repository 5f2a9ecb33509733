import type { AnalyticsRecord } from '../../src/analytics/analytics-record.js';
import { analyticsRecord } from '../../src/analytics/analytics-record.js';
import { newCorrelationId } from '../../src/recording/correlation-id.js';
import { pathNormaliser } from '../../src/recording/path-normaliser.js';
import { RecordBuilder } from '../../src/recording/record-builder.js';
import { Redactor } from '../../src/recording/redactor.js';
import { Transaction } from '../../src/recording/transaction.js';

export interface RecordShape {
  /** Header blocks recorded on every leg (the `headers` recording level): about 1 KB per record with them. */
  headers?: boolean;
  /** False: the gateway answered itself (no back-end leg), a record of about 1 KB as MessagePack. */
  upstream?: boolean;
  status?: number;
  apiId?: string;
  /** Seconds the record is kept (`analytics.expireAfterSec`). */
  expireAfterSec?: number;
  /** Changes the transaction before it is recorded (e.g. a failure, a NUL in a header). */
  tweak?: (transaction: Transaction, index: number) => void;
}

const KEY_HEADER = 'x-api-key';
const builder = new RecordBuilder(new Redactor(), pathNormaliser({ uuids: true, ulids: true, numbers: true, patterns: [] }), {
  apiKeyHeader: KEY_HEADER,
  keyAliases: {},
});

/**
 * Analytics records made as the gateway makes them: a finished transaction with a client leg and
 * one back-end leg, built into a redacted record and rendered as the analytics record.
 */
export function builtRecords(count: number, shape: RecordShape = {}): AnalyticsRecord[] {
  const records: AnalyticsRecord[] = [];
  for (let i = 0; i < count; i++) {
    const transaction = transactionFor(i, shape);
    shape.tweak?.(transaction, i);
    records.push(analyticsRecord(builder.build(transaction), { instance: 'gw-1', expireAfterSec: () => shape.expireAfterSec ?? 2_592_000 }));
  }
  return records;
}

function transactionFor(i: number, shape: RecordShape): Transaction {
  const status = shape.status ?? 200;
  const uri = `/orders/${1000 + i}/items?page=${i % 7}&token=secret-${i}`;
  const transaction = new Transaction(newCorrelationId(), i % 5 === 0 ? 'POST' : 'GET', uri, 'http');
  transaction.api = { id: shape.apiId ?? 'orders', name: 'Orders', version: 'v2', orgId: 'acme', listenPath: '/orders/' };
  transaction.trackedEndpoint = 'GET /orders/{id}/items';
  transaction.host = 'api.example.com';
  transaction.userAgent = 'Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/126.0 Safari/537.36';
  transaction.clientAddr = `10.1.${(i >> 8) & 255}.${i & 255}`;
  transaction.clientPort = 40_000 + (i % 20_000);
  transaction.localAddr = '127.0.0.1';
  transaction.localPort = 8080;
  transaction.status = status;
  transaction.statusText = status === 200 ? 'OK' : 'Bad Gateway';
  transaction.apiTags = ['orders', 'tier-gold'];
  transaction.policy = { tracked: true, level: shape.headers === false ? 'off' : 'headers', capturesBodies: false };
  const client = transaction.clientLeg;
  Object.assign(client, {
    method: transaction.method,
    uri,
    vhost: transaction.host,
    status,
    statusText: transaction.statusText,
    remoteAddr: transaction.clientAddr,
    remotePort: transaction.clientPort,
    localAddr: '127.0.0.1',
    localPort: 8080,
    headersMs: 3.25 + (i % 10),
    lastByteMs: 3.5 + (i % 10),
    bytesReceived: i % 5 === 0 ? 230 : 0,
    bytesSent: 512 + (i % 100),
    finalStatus: 'Pass',
    recvHeader: { startLine: `${transaction.method} ${uri} HTTP/1.1`, fields: ['Host', transaction.host, 'X-Api-Key', `key-${i % 3}`, 'Accept', 'application/json'] },
    sentHeader: { startLine: `HTTP/1.1 ${status} ${transaction.statusText}`, fields: ['Content-Type', 'application/json', 'Content-Length', String(512 + (i % 100))] },
  });
  transaction.endMono = transaction.startMono + 4 + (i % 10);
  if (shape.upstream === false) return transaction;
  const upstream = transaction.addUpstreamLeg();
  Object.assign(upstream, {
    method: transaction.method,
    uri: `/items/${1000 + i}?page=${i % 7}`,
    vhost: 'orders.internal',
    status,
    statusText: transaction.statusText,
    remoteName: 'orders.internal',
    remoteAddr: '10.0.0.7',
    remotePort: 9000,
    headersMs: 2.125,
    lastByteMs: 2.5,
    bytesReceived: 512 + (i % 100),
    bytesSent: i % 5 === 0 ? 230 : 0,
    finalStatus: 'Pass',
    recvHeader: { startLine: `HTTP/1.1 ${status} ${transaction.statusText}`, fields: ['Content-Type', 'application/json'] },
    sentHeader: { startLine: `${transaction.method} /items/${1000 + i} HTTP/1.1`, fields: ['Host', 'orders.internal'] },
  });
  return transaction;
}
