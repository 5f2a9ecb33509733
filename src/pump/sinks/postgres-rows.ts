import type { AnalyticsRecord } from '../../analytics/analytics-record.js';
import { RECORD_COLUMNS, type ColumnKind, type ColumnValue, type RecordColumn } from './record-columns.js';

/** Each kind of column as PostgreSQL types it. */
const POSTGRES_TYPES: Record<ColumnKind, string> = {
  label: 'text',
  text: 'text',
  time: 'timestamptz',
  smallint: 'smallint',
  bigint: 'bigint',
  double: 'double precision',
  boolean: 'boolean',
  json: 'jsonb',
};

/**
 * Columns typed otherwise than their kind. `legs` holds most of a record's bytes: `json` keeps the
 * text as written, checked but not converted: half the server's work per row of `jsonb`
 * (measured), and legs are read by transaction rather than searched.
 */
const COLUMN_TYPES: Readonly<Record<string, string>> = { legs: 'json' };

/** Epoch ms as a timestamptz PostgreSQL reads in COPY; a time JavaScript cannot represent stays as it is and is refused. */
function timestamp(ms: ColumnValue): ColumnValue {
  if (typeof ms !== 'number') return ms;
  const date = new Date(ms);
  return Number.isNaN(date.getTime()) ? ms : date.toISOString();
}

/** Each column's value in COPY's text format (before escaping), for a line of those columns. */
export type CopyValues = readonly ((record: AnalyticsRecord) => ColumnValue)[];

export function copyValues(columns: readonly RecordColumn[]): CopyValues {
  return columns.map((column) => (column.kind === 'time' ? (record: AnalyticsRecord) => timestamp(column.value(record)) : column.value));
}

const VALUES = copyValues(RECORD_COLUMNS);

const COPY_SPECIAL = /[\\\t\n\r]/;
const COPY_SPECIALS = /[\\\t\n\r]/g;
const COPY_ESCAPES: Record<string, string> = { '\\': '\\\\', '\t': '\\t', '\n': '\\n', '\r': '\\r' };

/** A value in COPY's text format. */
function copyText(value: ColumnValue): string {
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
export function copyLine(record: AnalyticsRecord, values: CopyValues = VALUES): string {
  const line = lineOf(record, values);
  return line.includes('\0') || line.includes('\\u0000') ? lineOf(withoutNul(record), values) : line;
}

function lineOf(record: AnalyticsRecord, values: CopyValues): string {
  let line = '';
  for (let i = 0; i < values.length; i++) {
    if (i > 0) line += '\t';
    line += copyText((values[i] as (record: AnalyticsRecord) => ColumnValue)(record));
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

/** Columns and their PostgreSQL types (for CREATE TABLE). */
export function columnDefinitions(columns: readonly RecordColumn[]): string {
  return columns.map((column) => `${column.name} ${COLUMN_TYPES[column.name] ?? POSTGRES_TYPES[column.kind]}${column.required ? ' NOT NULL' : ''}`).join(', ');
}

/** The table's columns and types (for CREATE TABLE). */
export const TABLE_COLUMNS = columnDefinitions(RECORD_COLUMNS);
