import { randomBytes } from 'node:crypto';
import pg from 'pg';
import { afterAll } from 'vitest';

export const POSTGRES = { host: '127.0.0.1', port: 5432, user: 'postgres' };

/** The server's `test` database, where databases of a test file's own are made and dropped. */
async function admin(): Promise<pg.Client> {
  const client = new pg.Client({ ...POSTGRES, database: 'test' });
  try {
    await client.connect();
  } catch (error) {
    throw new Error(`these tests need PostgreSQL on 127.0.0.1:5432 (user postgres, trust auth, database test): ${(error as Error).message}`);
  }
  return client;
}

/** Databases of the test file's own, each dropped after the file: `create()` makes one and returns its URL and a client on it. */
export function useTestDatabases(): { create(): Promise<{ name: string; url: string; client: pg.Client }> } {
  const made: { name: string; client: pg.Client }[] = [];
  afterAll(async () => {
    const client = await admin();
    try {
      for (const { name, client: own } of made) {
        await own.end().catch(() => undefined);
        await client.query(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`);
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
      const own = new pg.Client({ ...POSTGRES, database: name });
      await own.connect();
      made.push({ name, client: own });
      return { name, url: `postgres://${POSTGRES.user}@${POSTGRES.host}:${POSTGRES.port}/${name}`, client: own };
    },
  };
}
