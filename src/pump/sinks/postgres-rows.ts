import type { AnalyticsRecord } from '../../analytics/analytics-record.js';
import { RECORD_COLUMNS, type ColumnKind, type ColumnValue, type RecordColumn } from './record-columns.js';

/**
 * One column of the records table in PostgreSQL: its type in the table, its type in the
 * per-connection staging table that COPY fills (cheap for PostgreSQL to parse), and the
 * expression that turns one into the other.
 */
interface PostgresType {
  type: string;
  staged: string;
  /** SQL reading the staged column; defaults to the column itself. */
  from?: (column: string) => string;
}

const POSTGRES_TYPES: Record<ColumnKind, PostgresType> = {
  label: { type: 'text', staged: 'text' },
  text: { type: 'text', staged: 'text' },
  time: { type: 'timestamptz', staged: 'bigint', from: (column) => `to_timestamp(${column} / 1000.0)` },
  smallint: { type: 'smallint', staged: 'smallint' },
  bigint: { type: 'bigint', staged: 'bigint' },
  double: { type: 'double precision', staged: 'double precision' },
  boolean: { type: 'boolean', staged: 'boolean' },
  json: { type: 'jsonb', staged: 'text', from: (column) => `${column}::jsonb` },
};

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
export function copyLine(record: AnalyticsRecord): string {
  const line = lineOf(record);
  return line.includes('\0') || line.includes('\\u0000') ? lineOf(withoutNul(record)) : line;
}

function lineOf(record: AnalyticsRecord): string {
  let line = '';
  for (let i = 0; i < RECORD_COLUMNS.length; i++) {
    if (i > 0) line += '\t';
    line += copyText((RECORD_COLUMNS[i] as RecordColumn).value(record));
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

/** The staging table's columns and types. */
export const STAGED_COLUMNS = RECORD_COLUMNS.map((column) => `${column.name} ${POSTGRES_TYPES[column.kind].staged}`).join(', ');

/** The SELECT list turning staged columns into the table's. */
export const STAGED_TO_TABLE = RECORD_COLUMNS.map((column) => POSTGRES_TYPES[column.kind].from?.(column.name) ?? column.name).join(', ');

/** The table's columns and types (for CREATE TABLE). */
export const TABLE_COLUMNS = RECORD_COLUMNS.map((column) => `${column.name} ${POSTGRES_TYPES[column.kind].type}${column.required ? ' NOT NULL' : ''}`).join(', ');
