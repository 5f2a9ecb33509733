import { randomBytes } from 'node:crypto';
import mysql from 'mysql2/promise';
import { afterAll } from 'vitest';

export const MARIADB = { host: '127.0.0.1', port: 3306, user: 'root' };

/** The server itself, where databases of a test file's own are made and dropped. */
async function admin(): Promise<mysql.Connection> {
  try {
    return await mysql.createConnection({ ...MARIADB, connectTimeout: 5_000 });
  } catch (error) {
    throw new Error(`these tests need MariaDB (or MySQL) on 127.0.0.1:3306 (user root, empty password): ${(error as Error).message}`);
  }
}

/** Databases of the test file's own, each dropped after the file: `create()` makes one and returns its URL and a connection to it. */
export function useTestDatabases(): { create(): Promise<{ name: string; url: string; client: mysql.Connection }> } {
  const made: { name: string; client: mysql.Connection }[] = [];
  afterAll(async () => {
    const client = await admin();
    try {
      for (const { name, client: own } of made) {
        await own.end().catch(() => undefined);
        await client.query(`DROP DATABASE IF EXISTS ${name}`);
      }
    } finally {
      await client.end();
    }
  });
  return {
    async create() {
      const name = `tollgate_test_${randomBytes(6).toString('hex')}`;
      const client = await admin();
      try {
        await client.query(`CREATE DATABASE ${name}`);
      } finally {
        await client.end();
      }
      const own = await mysql.createConnection({ ...MARIADB, database: name });
      made.push({ name, client: own });
      return { name, url: `mysql://${MARIADB.user}@${MARIADB.host}:${MARIADB.port}/${name}`, client: own };
    },
  };
}
