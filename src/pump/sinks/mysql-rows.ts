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

/**
 * The session the sink's statements are written for: strict, so that bad data fails instead of
 * being stored changed; UTC, so that DATETIME means UTC; and no backslash escapes, so that a
 * string literal needs only its quotes doubled (JSON text, full of backslashes, goes as it is).
 */
export const SESSION_SETUP =
  "SET SESSION sql_mode = 'STRICT_ALL_TABLES,NO_BACKSLASH_ESCAPES,NO_ZERO_IN_DATE,NO_ZERO_DATE,ERROR_FOR_DIVISION_BY_ZERO,NO_ENGINE_SUBSTITUTION', time_zone = '+00:00'";

/** A string literal for a session set up by `SESSION_SETUP` (NUL and every other character go as they are). */
export function sqlString(value: string): string {
  return value.includes("'") ? `'${value.replaceAll("'", "''")}'` : `'${value}'`;
}

/** Epoch ms as a DATETIME literal in UTC. */
export function datetimeLiteral(ms: number): string {
  const iso = new Date(ms).toISOString();
  return `'${iso.slice(0, 10)} ${iso.slice(11, 23)}'`;
}

/** A time as a DATETIME literal; one DATETIME cannot hold is sent as it is, so that the server refuses the row. */
function datetime(ms: ColumnValue): string {
  return typeof ms === 'number' && ms >= MIN_DATETIME && ms <= MAX_DATETIME ? datetimeLiteral(ms) : literal(ms);
}

/** A value as an SQL literal. A number that is not finite is sent as text, so that a numeric column refuses it rather than read it as a name. */
function literal(value: ColumnValue): string {
  if (value == null) return 'NULL';
  if (typeof value === 'number') return Number.isFinite(value) ? String(value) : sqlString(String(value));
  if (typeof value === 'boolean') return value ? 'TRUE' : 'FALSE';
  return sqlString(value);
}

const ENCODERS = RECORD_COLUMNS.map((column) => (column.kind === 'time' ? (record: AnalyticsRecord) => datetime(column.value(record)) : (record: AnalyticsRecord) => literal(column.value(record))));

/** The record as one parenthesised row of a multi-row `INSERT ... VALUES`, for a session set up by `SESSION_SETUP`. */
export function valuesRow(record: AnalyticsRecord): string {
  let row = '(';
  for (let i = 0; i < ENCODERS.length; i++) {
    if (i > 0) row += ',';
    row += (ENCODERS[i] as (record: AnalyticsRecord) => string)(record);
  }
  return `${row})`;
}
