import type { AnalyticsRecord } from '../../analytics/analytics-record.js';

/** One column of the records table: its type, and the record's value in COPY's text format (before escaping). */
export interface Column {
  name: string;
  type: string;
  value: (record: AnalyticsRecord) => string | number | boolean | null;
}

/** Epoch ms as a timestamptz PostgreSQL reads in COPY; a time JavaScript cannot represent stays as it is and is refused. */
function timestamp(ms: number): string | number {
  const date = new Date(ms);
  return Number.isNaN(date.getTime()) ? ms : date.toISOString();
}

/**
 * The table's columns, in order: typed ones for what people filter and group on, JSON for the
 * rest. `year`..`hour` are left out: they are the time's UTC parts. Fields the record gains later
 * (adding a field does not bump its version) land in `extra` until a migration gives them a
 * column. Only the key and the times are NOT NULL: `dropFields` may leave any other field out.
 */
export const COLUMNS: readonly Column[] = [
  { name: 'id', type: 'text NOT NULL', value: (r) => r.id },
  { name: 'time', type: 'timestamptz NOT NULL', value: (r) => timestamp(r.timestamp) },
  { name: 'expire_at', type: 'timestamptz NOT NULL', value: (r) => timestamp(r.expireAt) },
  { name: 'api_id', type: 'text', value: (r) => r.apiId },
  { name: 'method', type: 'text', value: (r) => r.method },
  { name: 'status', type: 'smallint', value: (r) => r.status },
  { name: 'normalised_path', type: 'text', value: (r) => r.normalisedPath },
  { name: 'client_addr', type: 'text', value: (r) => r.clientAddr },
  { name: 'api_key_hash', type: 'text', value: (r) => r.apiKeyHash },
  { name: 'api_key_alias', type: 'text', value: (r) => r.apiKeyAlias },
  { name: 'latency_total', type: 'double precision', value: (r) => r.latencyTotal },
  { name: 'latency_upstream', type: 'double precision', value: (r) => r.latencyUpstream },
  { name: 'latency_gateway', type: 'double precision', value: (r) => r.latencyGateway },
  { name: 'bytes_in', type: 'bigint', value: (r) => r.bytesIn },
  { name: 'bytes_out', type: 'bigint', value: (r) => r.bytesOut },
  { name: 'outcome', type: 'text', value: (r) => r.outcome },
  { name: 'failure_reason', type: 'text', value: (r) => r.failureReason },
  { name: 'failure_message', type: 'text', value: (r) => r.failureMessage },
  { name: 'api_name', type: 'text', value: (r) => r.apiName },
  { name: 'api_version', type: 'text', value: (r) => r.apiVersion },
  { name: 'org_id', type: 'text', value: (r) => r.orgId },
  { name: 'listen_path', type: 'text', value: (r) => r.listenPath },
  { name: 'tracked_endpoint', type: 'text', value: (r) => r.trackedEndpoint },
  { name: 'host', type: 'text', value: (r) => r.host },
  { name: 'uri', type: 'text', value: (r) => r.uri },
  { name: 'path', type: 'text', value: (r) => r.path },
  { name: 'protocol', type: 'text', value: (r) => r.protocol },
  { name: 'user_agent', type: 'text', value: (r) => r.userAgent },
  { name: 'upgraded', type: 'boolean', value: (r) => r.upgraded },
  { name: 'instance', type: 'text', value: (r) => r.instance },
  { name: 'version', type: 'smallint', value: (r) => r.version },
  { name: 'tags', type: 'jsonb', value: (r) => JSON.stringify(r.tags) },
  // Most of a record's bytes. `json` keeps the text as written, checked but not converted: half the
  // server's work per row of `jsonb` (measured), and legs are read by transaction rather than searched.
  { name: 'legs', type: 'json', value: (r) => JSON.stringify(r.legs) },
  { name: 'extra', type: 'jsonb', value: (r) => extraFields(r) },
];

/** Record fields that have a column, or need none (`year`..`hour`). */
const KNOWN_FIELDS = new Set<string>([
  'version', 'id', 'timestamp', 'year', 'month', 'day', 'hour', 'expireAt', 'instance', 'apiId', 'apiName', 'apiVersion', 'orgId',
  'listenPath', 'trackedEndpoint', 'method', 'host', 'uri', 'path', 'normalisedPath', 'protocol', 'clientAddr', 'userAgent', 'status',
  'outcome', 'failureReason', 'failureMessage', 'latencyTotal', 'latencyUpstream', 'latencyGateway', 'bytesIn', 'bytesOut', 'tags',
  'apiKeyHash', 'apiKeyAlias', 'upgraded', 'legs',
] satisfies (keyof AnalyticsRecord)[]);

function extraFields(record: AnalyticsRecord): string | null {
  let extra: Record<string, unknown> | null = null;
  for (const key in record) {
    if (!KNOWN_FIELDS.has(key)) (extra ??= {})[key] = (record as unknown as Record<string, unknown>)[key];
  }
  return extra === null ? null : JSON.stringify(extra);
}

const COPY_SPECIAL = /[\\\t\n\r]/;
const COPY_SPECIALS = /[\\\t\n\r]/g;
const COPY_ESCAPES: Record<string, string> = { '\\': '\\\\', '\t': '\\t', '\n': '\\n', '\r': '\\r' };

/** A value in COPY's text format. */
function copyText(value: string | number | boolean | null): string {
  // A field left out by `dropFields` is undefined.
  if (value == null) return '\\N';
  if (typeof value === 'boolean') return value ? 't' : 'f';
  if (typeof value === 'number') return String(value);
  return COPY_SPECIAL.test(value) ? value.replace(COPY_SPECIALS, (c) => COPY_ESCAPES[c] as string) : value;
}

/**
 * The record as one line of COPY text. PostgreSQL text cannot hold U+0000 (neither a text column
 * nor a JSON string in jsonb), so a NUL anywhere in the record is written as the six characters
 * `\u0000`: the row keeps everything else, and the place of the NUL stays visible.
 */
export function copyLine(record: AnalyticsRecord, columns: readonly Column[] = COLUMNS): string {
  const line = lineOf(record, columns);
  return line.includes('\0') || line.includes('\\u0000') ? lineOf(withoutNul(record), columns) : line;
}

function lineOf(record: AnalyticsRecord, columns: readonly Column[]): string {
  let line = '';
  for (let i = 0; i < columns.length; i++) {
    if (i > 0) line += '\t';
    line += copyText((columns[i] as Column).value(record));
  }
  return `${line}\n`;
}

export const NUL_REPLACEMENT = '\\u0000';

function withoutNul<T>(value: T): T {
  if (typeof value === 'string') return value.replaceAll('\0', NUL_REPLACEMENT) as T;
  if (Array.isArray(value)) return value.map(withoutNul) as T;
  if (value !== null && typeof value === 'object') return Object.fromEntries(Object.entries(value).map(([key, inner]) => [withoutNul(key), withoutNul(inner)])) as T;
  return value;
}

/** The columns of these names, in the table's order. */
export function columnsNamed(names: readonly string[]): readonly Column[] {
  const unknown = names.filter((name) => !COLUMNS.some((column) => column.name === name));
  if (unknown.length > 0) throw new Error(`no such column in the records table: ${unknown.join(', ')}`);
  return COLUMNS.filter((column) => names.includes(column.name));
}

/** The column names, comma separated. */
export const COLUMN_LIST = COLUMNS.map((column) => column.name).join(', ');

/** The table's columns and types (for CREATE TABLE). */
export const TABLE_COLUMNS = COLUMNS.map((column) => `${column.name} ${column.type}`).join(', ');
