import type { PoolConnection, RowDataPacket } from 'mysql2/promise';
import { sqlString, TABLE_COLUMNS } from './mysql-rows.js';

/** Where the schema version of each records table is kept (one row per table). */
export const VERSIONS_TABLE = 'tollgate_schema_versions';

/**
 * The records table's migrations, in order; the table is at version `n` once the first `n` ran.
 * Only append: a migration that ran somewhere never changes. MariaDB commits each DDL statement
 * on its own, so every statement must be safe to run again after a pump died halfway.
 *
 * Indexes are few because each one is paid on every insert: the primary key (idempotent
 * writes), the time (ranges), and `expire_at` so that expiry finds its rows without a scan.
 */
const MIGRATIONS: readonly ((table: string) => string[])[] = [
  (table) => [
    `CREATE TABLE IF NOT EXISTS ${table} (${TABLE_COLUMNS}, PRIMARY KEY (id), KEY ${table}_time (time), KEY ${table}_expire_at (expire_at))
     ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin`,
  ],
];

export const SCHEMA_VERSION = MIGRATIONS.length;

/** The SQL naming a lock: named locks are server-wide, so the name carries the database; hashed, as MySQL takes at most 64 characters. */
export const lockName = (purpose: string): string => `CONCAT('tollgate ', MD5(CONCAT(DATABASE(), ' ${purpose}')))`;

/**
 * Brings the table to the current version, on a connection set up by `SESSION_SETUP`. Pumps starting together serialise on a named lock (DDL
 * cannot run in a transaction here), so each migration runs once; a table newer than this pump is
 * left as is. Waits at most `lockWaitSec` for another pump's migration.
 */
export async function migrate(connection: PoolConnection, table: string, lockWaitSec: number): Promise<{ from: number; to: number }> {
  const [locked] = await connection.query<RowDataPacket[]>(`SELECT GET_LOCK(${lockName('schema')}, ${lockWaitSec}) AS held`);
  if (locked[0]?.held !== 1) throw new Error(`another pump held the schema lock for more than ${lockWaitSec} s`);
  try {
    await connection.query(
      `CREATE TABLE IF NOT EXISTS ${VERSIONS_TABLE} (table_name VARCHAR(64) NOT NULL PRIMARY KEY, version INT NOT NULL, migrated_at DATETIME(3) NOT NULL)`,
    );
    // A table dropped behind the pump's back is made again.
    const [found] = await connection.query<RowDataPacket[]>(
      `SELECT version FROM ${VERSIONS_TABLE} WHERE table_name = ${sqlString(table)}
       AND EXISTS (SELECT 1 FROM information_schema.tables WHERE table_schema = DATABASE() AND table_name = ${sqlString(table)})`,
    );
    const from = (found[0]?.version as number | undefined) ?? 0;
    for (let version = from; version < SCHEMA_VERSION; version++) {
      for (const statement of (MIGRATIONS[version] as (table: string) => string[])(table)) await connection.query(statement);
    }
    if (from < SCHEMA_VERSION) {
      await connection.query(
        `INSERT INTO ${VERSIONS_TABLE} VALUES (${sqlString(table)}, ${SCHEMA_VERSION}, UTC_TIMESTAMP(3))
         ON DUPLICATE KEY UPDATE version = VALUES(version), migrated_at = VALUES(migrated_at)`,
      );
    }
    return { from, to: Math.max(from, SCHEMA_VERSION) };
  } finally {
    await connection.query(`DO RELEASE_LOCK(${lockName('schema')})`);
  }
}
