import { z } from 'zod';
import type { AnalyticsRecord } from '../../../analytics/analytics-record.js';
import { DELIVERED, epochNanos, type HttpFormat, type RecordOutcomes } from './format.js';

export const otlpOptions = z.strictObject({
  type: z.literal('otlp'),
  /** The resource's `service.name`. */
  serviceName: z.string().min(1).default('tollgate'),
});

/** OTLP/JSON's AnyValue: int64 travels as a decimal string. */
type AnyValue = { stringValue: string } | { intValue: string } | { doubleValue: number } | { boolValue: boolean } | { arrayValue: { values: AnyValue[] } };

interface KeyValue {
  key: string;
  value: AnyValue;
}

const text = (value: string): AnyValue => ({ stringValue: value });
const int = (value: number): AnyValue => ({ intValue: String(Math.trunc(value)) });
const double = (value: number): AnyValue => ({ doubleValue: value });

/** The methods OpenTelemetry's HTTP conventions name; any other is `_OTHER`, the original kept beside it. */
const KNOWN_METHODS = new Set(['CONNECT', 'DELETE', 'GET', 'HEAD', 'OPTIONS', 'PATCH', 'POST', 'PUT', 'TRACE']);

/** SeverityNumber: INFO 9, WARN 13, ERROR 17. */
function severity(record: AnalyticsRecord): { severityNumber: number; severityText: string } {
  if (record.status >= 500 || record.outcome === 'exception') return { severityNumber: 17, severityText: 'ERROR' };
  if (record.status >= 400) return { severityNumber: 13, severityText: 'WARN' };
  return { severityNumber: 9, severityText: 'INFO' };
}

const TRACEPARENT = /^traceparent:[ \t]*([0-9a-f]{2})-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})[ \t]*$/im;

/** The W3C trace context of the request, from its recorded header block (when headers are recorded and the caller sent one). */
export function traceContext(record: AnalyticsRecord): { traceId: string; spanId: string; flags: number } | null {
  const match = TRACEPARENT.exec(record.legs[0]?.received.headers ?? '');
  if (match === null) return null;
  const [, version, traceId, spanId, flags] = match as unknown as [string, string, string, string, string];
  if (version === 'ff' || /^0+$/.test(traceId) || /^0+$/.test(spanId)) return null;
  return { traceId, spanId, flags: parseInt(flags, 16) };
}

/** `host[:port]` or `[v6]:port` of the Host header. */
function hostAndPort(host: string): { address: string; port: number | null } {
  const match = /^(\[[^\]]+\]|[^:]*)(?::(\d+))?$/.exec(host);
  if (match === null) return { address: host, port: null };
  return { address: (match[1] as string).replace(/^\[|\]$/g, ''), port: match[2] === undefined ? null : Number(match[2]) };
}

function attributes(record: AnalyticsRecord): KeyValue[] {
  const server = hostAndPort(record.host);
  const query = record.uri.indexOf('?');
  // Method names are case-sensitive: `get` is not GET.
  const known = KNOWN_METHODS.has(record.method);
  const pairs: [string, AnyValue | null][] = [
    ['log.record.uid', text(record.id)],
    ['http.request.method', text(known ? record.method : '_OTHER')],
    ['http.request.method_original', known ? null : text(record.method)],
    ['http.response.status_code', int(record.status)],
    ['http.route', text(record.normalisedPath)],
    ['url.scheme', text(record.protocol)],
    ['url.path', text(record.path)],
    ['url.query', query < 0 ? null : text(record.uri.slice(query + 1))],
    ['url.full', text(`${record.protocol}://${record.host}${record.uri}`)],
    ['server.address', text(server.address)],
    ['server.port', server.port === null ? null : int(server.port)],
    ['client.address', text(record.clientAddr)],
    ['user_agent.original', text(record.userAgent)],
    ['http.request.body.size', int(record.bytesIn)],
    ['http.response.body.size', int(record.bytesOut)],
    ['error.type', record.failureReason === null ? null : text(record.failureReason)],
    ['tollgate.api.id', record.apiId === null ? null : text(record.apiId)],
    ['tollgate.api.name', record.apiName === null ? null : text(record.apiName)],
    ['tollgate.api.version', record.apiVersion === null ? null : text(record.apiVersion)],
    ['tollgate.org.id', record.orgId === null ? null : text(record.orgId)],
    ['tollgate.listen_path', record.listenPath === null ? null : text(record.listenPath)],
    ['tollgate.tracked_endpoint', record.trackedEndpoint === null ? null : text(record.trackedEndpoint)],
    ['tollgate.outcome', text(record.outcome)],
    ['tollgate.failure.message', record.failureMessage === null ? null : text(record.failureMessage)],
    ['tollgate.latency.total_ms', double(record.latencyTotal)],
    ['tollgate.latency.upstream_ms', double(record.latencyUpstream)],
    ['tollgate.latency.gateway_ms', double(record.latencyGateway)],
    ['tollgate.api_key.hash', record.apiKeyHash === null ? null : text(record.apiKeyHash)],
    ['tollgate.api_key.alias', record.apiKeyAlias === null ? null : text(record.apiKeyAlias)],
    ['tollgate.tags', record.tags.length === 0 ? null : { arrayValue: { values: record.tags.map(text) } }],
    ['tollgate.upgraded', record.upgraded ? { boolValue: true } : null],
    ['tollgate.upstream.attempts', int(Math.max(0, record.legs.length - 1))],
  ];
  return pairs.flatMap(([key, value]) => (value === null ? [] : [{ key, value }]));
}

function logRecord(record: AnalyticsRecord, observedTimeUnixNano: string): Record<string, unknown> {
  const trace = traceContext(record);
  return {
    timeUnixNano: epochNanos(record.timestamp),
    observedTimeUnixNano,
    ...severity(record),
    body: text(`${record.method} ${record.path} ${record.status} ${record.latencyTotal} ms`),
    attributes: attributes(record),
    ...(trace === null ? {} : { traceId: trace.traceId, spanId: trace.spanId, flags: trace.flags }),
  };
}

/**
 * OTLP/HTTP with JSON encoding to `/v1/logs`: one LogRecord per transaction, attributes named by
 * OpenTelemetry's HTTP semantic conventions (the rest under `tollgate.*`), one resource per
 * gateway instance. The record id is `log.record.uid`, for a back end that deduplicates.
 */
export function otlpFormat(options: z.infer<typeof otlpOptions>): HttpFormat {
  return {
    path: '/v1/logs',
    contentType: 'application/json',
    headers: {},
    encode: (records) => {
      const observed = epochNanos(Date.now());
      const byInstance = new Map<string, Record<string, unknown>[]>();
      for (const record of records) {
        const logRecords = byInstance.get(record.instance) ?? [];
        logRecords.push(logRecord(record, observed));
        byInstance.set(record.instance, logRecords);
      }
      return JSON.stringify({
        resourceLogs: [...byInstance].map(([instance, logRecords]) => ({
          resource: {
            attributes: [
              { key: 'service.name', value: text(options.serviceName) },
              { key: 'service.instance.id', value: text(instance) },
            ],
          },
          scopeLogs: [{ scope: { name: 'tollgate.pump' }, logRecords }],
        })),
      });
    },
    read: (_records, answer) => partialSuccess(answer.body),
  };
}

/** A collector that dropped some records says how many, not which: nothing to retry (the spec forbids it), only to tell. */
function partialSuccess(body: string): RecordOutcomes {
  type Answer = { partialSuccess?: { rejectedLogRecords?: unknown; errorMessage?: unknown } } | null;
  let parsed: Answer;
  try {
    parsed = body.trim() === '' ? null : (JSON.parse(body) as Answer);
  } catch {
    return DELIVERED;
  }
  const rejected = Number(parsed?.partialSuccess?.rejectedLogRecords ?? 0);
  if (!(rejected > 0)) return DELIVERED;
  return { retry: [], rejected: [], note: `the collector dropped ${rejected} log records: ${String(parsed?.partialSuccess?.errorMessage ?? 'no reason given')}` };
}
