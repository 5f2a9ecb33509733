import { escape } from 'mysql2/promise';
import type { AnalyticsRecord } from '../../analytics/analytics-record.js';
import { RECORD_COLUMNS, type ColumnKind, type ColumnValue } from './record-columns.js';

/**
 * Each kind of column as MariaDB/MySQL types it. Times are `DATETIME(3)` in UTC: `TIMESTAMP` ends
 * in 2038. Labels are `VARCHAR(255)` so that they can be indexed whole; free text is `TEXT`; the
 * table's collation is binary, so text compares as in PostgreSQL.
 */
const MYSQL_TYPES: Record<ColumnKind, string> = {
  label: 'VARCHAR(255)',
  text: 'TEXT',
  time: 'DATETIME(3)',
  smallint: 'SMALLINT',
  bigint: 'BIGINT',
  double: 'DOUBLE',
  boolean: 'BOOLEAN',
  json: 'JSON',
};

/** The table's columns and types (for CREATE TABLE). */
export const TABLE_COLUMNS = RECORD_COLUMNS.map((column) => `${column.name} ${MYSQL_TYPES[column.kind]}${column.required ? ' NOT NULL' : ''}`).join(', ');

const MIN_DATETIME = Date.UTC(1000, 0, 1);
const MAX_DATETIME = Date.UTC(9999, 11, 31, 23, 59, 59, 999);

/** Epoch ms as a DATETIME literal in UTC; a time DATETIME cannot hold is sent as it is, so that the server refuses the row. */
function datetime(ms: ColumnValue): string {
  if (typeof ms !== 'number' || !(ms >= MIN_DATETIME && ms <= MAX_DATETIME)) return literal(ms);
  const iso = new Date(ms).toISOString();
  return `'${iso.slice(0, 10)} ${iso.slice(11, 23)}'`;
}

/** A value as an SQL literal. A number that is not finite is sent as text, so that a numeric column refuses it rather than read it as a name. */
function literal(value: ColumnValue): string {
  if (value == null) return 'NULL';
  if (typeof value === 'number') return Number.isFinite(value) ? String(value) : escape(String(value));
  return escape(value);
}

const ENCODERS = RECORD_COLUMNS.map((column) => (column.kind === 'time' ? (record: AnalyticsRecord) => datetime(column.value(record)) : (record: AnalyticsRecord) => literal(column.value(record))));

/**
 * The record as one parenthesised row of a multi-row `INSERT ... VALUES`, values escaped for the
 * session's `sql_mode` set by the sink (backslash escapes on). NUL needs nothing: MariaDB text and
 * JSON hold it.
 */
export function valuesRow(record: AnalyticsRecord): string {
  let row = '(';
  for (let i = 0; i < ENCODERS.length; i++) {
    if (i > 0) row += ',';
    row += (ENCODERS[i] as (record: AnalyticsRecord) => string)(record);
  }
  return `${row})`;
}
