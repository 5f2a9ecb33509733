import type pg from 'pg';
import { TABLE_COLUMNS } from './postgres-rows.js';

/** SQL bringing a table from one version to the next. */
export type Migration = (table: string) => string;

/** A table and its migrations, in order: the table is at version `n` once the first `n` ran. */
export interface SchemaTable {
  name: string;
  migrations: readonly Migration[];
}

/** Where the schema version of each table is kept (one row per table). */
export const VERSIONS_TABLE = 'tollgate_schema_versions';

/**
 * The records table's migrations. Only append: a migration that ran somewhere never changes.
 *
 * Indexes are few because each one is paid on every insert: the primary key (idempotent
 * writes), BRIN on the time (rows arrive roughly in time order, so a few pages cover any range),
 * and a B-tree on `expire_at` so that expiry finds its rows without scanning the table.
 */
export const RECORD_MIGRATIONS: readonly Migration[] = [
  (table) => `
    CREATE TABLE ${table} (${TABLE_COLUMNS}, PRIMARY KEY (id));
    CREATE INDEX ${table}_time ON ${table} USING brin (time);
    CREATE INDEX ${table}_expire_at ON ${table} (expire_at);
  `,
];

/** The records table's current version. */
export const SCHEMA_VERSION = RECORD_MIGRATIONS.length;

/**
 * Brings each table to its current version, in one transaction. Pumps starting together serialise
 * on an advisory lock held for the transaction, so each migration runs once; a table newer than
 * this pump is left as is.
 */
export async function migrate(client: pg.ClientBase, tables: readonly SchemaTable[]): Promise<{ table: string; from: number; to: number }[]> {
  await client.query('BEGIN');
  try {
    // One lock for every table: the versions table itself is made under it.
    await client.query("SELECT pg_advisory_xact_lock(hashtext('tollgate schema'))");
    await client.query(`CREATE TABLE IF NOT EXISTS ${VERSIONS_TABLE} (table_name text PRIMARY KEY, version integer NOT NULL, migrated_at timestamptz NOT NULL)`);
    const done: { table: string; from: number; to: number }[] = [];
    for (const { name: table, migrations } of tables) {
      // A table dropped behind the pump's back is made again.
      const found = await client.query<{ version: number }>(`SELECT version FROM ${VERSIONS_TABLE} WHERE table_name = $1 AND to_regclass($1) IS NOT NULL`, [table]);
      const from = found.rows[0]?.version ?? 0;
      for (let version = from; version < migrations.length; version++) await client.query((migrations[version] as Migration)(table));
      if (from < migrations.length) {
        await client.query(
          `INSERT INTO ${VERSIONS_TABLE} VALUES ($1, $2, now()) ON CONFLICT (table_name) DO UPDATE SET version = EXCLUDED.version, migrated_at = EXCLUDED.migrated_at`,
          [table, migrations.length],
        );
      }
      done.push({ table, from, to: Math.max(from, migrations.length) });
    }
    await client.query('COMMIT');
    return done;
  } catch (error) {
    await client.query('ROLLBACK').catch(() => undefined);
    throw error;
  }
}
