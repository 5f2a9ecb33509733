import pg from 'pg';
import { useScratchDatabases, type ScratchDatabase } from './scratch-databases.js';

export const POSTGRES = { host: '127.0.0.1', port: 5432, user: 'postgres' };

async function connected(database: string): Promise<pg.Client> {
  const client = new pg.Client({ ...POSTGRES, database });
  await client.connect();
  return client;
}

/** Databases of the test file's own on the machine's PostgreSQL, each dropped after the file. */
export function useTestDatabases(): { create(): Promise<ScratchDatabase<pg.Client>> } {
  return useScratchDatabases({
    connectAdmin: () =>
      connected('test').catch((error: Error) => {
        throw new Error(`these tests need PostgreSQL on 127.0.0.1:5432 (user postgres, trust auth, database test): ${error.message}`);
      }),
    connect: connected,
    url: (database) => `postgres://${POSTGRES.user}@${POSTGRES.host}:${POSTGRES.port}/${database}`,
    dropStatement: (database) => `DROP DATABASE IF EXISTS ${database} WITH (FORCE)`,
  });
}
