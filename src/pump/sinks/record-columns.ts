import { z } from 'zod';
import type { AnalyticsRecord } from '../../analytics/analytics-record.js';

/**
 * What a column holds, independent of the store: each SQL sink maps a kind to its own type.
 * `label`: a short identifier people filter and group on; `text`: free text of any length;
 * `time`: epoch ms; `json`: a JSON document, given as its text.
 */
export type ColumnKind = 'label' | 'text' | 'time' | 'smallint' | 'bigint' | 'double' | 'boolean' | 'json';

/** A value as the record holds it; undefined when `dropFields` left the field out. */
export type ColumnValue = string | number | boolean | null | undefined;

/** One column of the records table every SQL sink writes: its name, what it holds, and the record's value. */
export interface RecordColumn {
  name: string;
  kind: ColumnKind;
  /** The key and the times: a row without them is refused. */
  required?: boolean;
  value: (record: AnalyticsRecord) => ColumnValue;
}

/**
 * The records table's columns, in order: typed ones for what people filter and group on, JSON for
 * the rest. `year`..`hour` are left out: they are the time's UTC parts. Fields the record gains
 * later (adding a field does not bump its version) land in `extra` until a migration gives them a
 * column. Only the key and the times are required: `dropFields` may leave any other field out.
 */
export const RECORD_COLUMNS: readonly RecordColumn[] = [
  { name: 'id', kind: 'label', required: true, value: (r) => r.id },
  { name: 'time', kind: 'time', required: true, value: (r) => r.timestamp },
  { name: 'expire_at', kind: 'time', required: true, value: (r) => r.expireAt },
  { name: 'api_id', kind: 'label', value: (r) => r.apiId },
  { name: 'method', kind: 'label', value: (r) => r.method },
  { name: 'status', kind: 'smallint', value: (r) => r.status },
  { name: 'normalised_path', kind: 'text', value: (r) => r.normalisedPath },
  { name: 'client_addr', kind: 'label', value: (r) => r.clientAddr },
  { name: 'api_key_hash', kind: 'label', value: (r) => r.apiKeyHash },
  { name: 'api_key_alias', kind: 'label', value: (r) => r.apiKeyAlias },
  { name: 'latency_total', kind: 'double', value: (r) => r.latencyTotal },
  { name: 'latency_upstream', kind: 'double', value: (r) => r.latencyUpstream },
  { name: 'latency_gateway', kind: 'double', value: (r) => r.latencyGateway },
  { name: 'bytes_in', kind: 'bigint', value: (r) => r.bytesIn },
  { name: 'bytes_out', kind: 'bigint', value: (r) => r.bytesOut },
  { name: 'outcome', kind: 'label', value: (r) => r.outcome },
  { name: 'failure_reason', kind: 'label', value: (r) => r.failureReason },
  { name: 'failure_message', kind: 'text', value: (r) => r.failureMessage },
  { name: 'api_name', kind: 'label', value: (r) => r.apiName },
  { name: 'api_version', kind: 'label', value: (r) => r.apiVersion },
  { name: 'org_id', kind: 'label', value: (r) => r.orgId },
  { name: 'listen_path', kind: 'text', value: (r) => r.listenPath },
  { name: 'tracked_endpoint', kind: 'text', value: (r) => r.trackedEndpoint },
  { name: 'host', kind: 'label', value: (r) => r.host },
  { name: 'uri', kind: 'text', value: (r) => r.uri },
  { name: 'path', kind: 'text', value: (r) => r.path },
  { name: 'protocol', kind: 'label', value: (r) => r.protocol },
  { name: 'user_agent', kind: 'text', value: (r) => r.userAgent },
  { name: 'upgraded', kind: 'boolean', value: (r) => r.upgraded },
  { name: 'instance', kind: 'label', value: (r) => r.instance },
  { name: 'version', kind: 'smallint', value: (r) => r.version },
  { name: 'tags', kind: 'json', value: (r) => JSON.stringify(r.tags) },
  { name: 'legs', kind: 'json', value: (r) => JSON.stringify(r.legs) },
  { name: 'extra', kind: 'json', value: (r) => extraFields(r) },
];

/** Record fields that have a column, or need none (`year`..`hour`). */
const KNOWN_FIELDS = new Set<string>([
  'version', 'id', 'timestamp', 'year', 'month', 'day', 'hour', 'expireAt', 'instance', 'apiId', 'apiName', 'apiVersion', 'orgId',
  'listenPath', 'trackedEndpoint', 'method', 'host', 'uri', 'path', 'normalisedPath', 'protocol', 'clientAddr', 'userAgent', 'status',
  'outcome', 'failureReason', 'failureMessage', 'latencyTotal', 'latencyUpstream', 'latencyGateway', 'bytesIn', 'bytesOut', 'tags',
  'apiKeyHash', 'apiKeyAlias', 'upgraded', 'legs',
] satisfies (keyof AnalyticsRecord)[]);

/** The record's fields that have no column, as a JSON object's text; null when there are none. */
function extraFields(record: AnalyticsRecord): string | null {
  let extra: Record<string, unknown> | null = null;
  for (const key in record) {
    if (!KNOWN_FIELDS.has(key)) (extra ??= {})[key] = (record as unknown as Record<string, unknown>)[key];
  }
  return extra === null ? null : JSON.stringify(extra);
}

/** The column names, comma separated. */
export const COLUMN_LIST = RECORD_COLUMNS.map((column) => column.name).join(', ');

/** The `table` option of the SQL sinks: a name safe to put in SQL as it is. */
export const tableName = z
  .string()
  .regex(/^[a-z_][a-z0-9_]{0,49}$/, 'expected a lower-case SQL name: a letter or "_", then letters, digits or "_" (at most 50)');
