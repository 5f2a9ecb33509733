import { randomBytes } from 'node:crypto';
import { afterAll } from 'vitest';

interface SqlClient {
  query(sql: string): Promise<unknown>;
  end(): Promise<void>;
}

/** How a test reaches one database server: its admin connection, a connection to a database, and its dialect. */
export interface DatabaseServer<Client extends SqlClient> {
  /** Fails naming the server the tests need when it cannot be reached. */
  connectAdmin(): Promise<Client>;
  connect(database: string): Promise<Client>;
  url(database: string): string;
  dropStatement(database: string): string;
}

export interface ScratchDatabase<Client> {
  name: string;
  url: string;
  client: Client;
}

/** Databases of the test file's own on `server`, each dropped after the file: `create()` makes one and returns its URL and a client on it. */
export function useScratchDatabases<Client extends SqlClient>(server: DatabaseServer<Client>): { create(): Promise<ScratchDatabase<Client>> } {
  const made: ScratchDatabase<Client>[] = [];
  afterAll(async () => {
    const admin = await server.connectAdmin();
    try {
      for (const { name, client } of made) {
        await client.end().catch(() => undefined);
        await admin.query(server.dropStatement(name));
      }
    } finally {
      await admin.end();
    }
  });
  return {
    async create() {
      const name = `tollgate_test_${randomBytes(6).toString('hex')}`;
      const admin = await server.connectAdmin();
      try {
        await admin.query(`CREATE DATABASE ${name}`);
      } finally {
        await admin.end();
      }
      const database = { name, url: server.url(name), client: await server.connect(name) };
      made.push(database);
      return database;
    },
  };
}
