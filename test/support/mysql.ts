import mysql from 'mysql2/promise';
import { useScratchDatabases, type ScratchDatabase } from './scratch-databases.js';

export const MARIADB = { host: '127.0.0.1', port: 3306, user: 'root' };

/** Databases of the test file's own on the machine's MariaDB (or MySQL), each dropped after the file. */
export function useTestDatabases(): { create(): Promise<ScratchDatabase<mysql.Connection>> } {
  return useScratchDatabases({
    connectAdmin: () =>
      mysql.createConnection({ ...MARIADB, connectTimeout: 5_000 }).catch((error: Error) => {
        throw new Error(`these tests need MariaDB (or MySQL) on 127.0.0.1:3306 (user root, empty password): ${error.message}`);
      }),
    connect: (database) => mysql.createConnection({ ...MARIADB, database }),
    url: (database) => `mysql://${MARIADB.user}@${MARIADB.host}:${MARIADB.port}/${database}`,
    dropStatement: (database) => `DROP DATABASE IF EXISTS ${database}`,
  });
}
