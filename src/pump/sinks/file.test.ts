import { mkdtemp, rename, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll } from 'vitest';
import { recordsInDirectory } from '../../../test/support/analytics-records.js';
import { describeSinkContract } from './sink-suite.js';

let root = '';
let directory = '';
let cases = 0;

beforeAll(async () => {
  root = await mkdtemp(join(tmpdir(), 'tollgate-file-sink-'));
});

afterAll(async () => {
  await rm(root, { recursive: true, force: true });
});

const away = (): string => `${directory}.away`;

describeSinkContract({
  name: 'file',
  config: () => {
    directory = join(root, `records-${++cases}`);
    return { type: 'file', directory };
  },
  readBack: async () => recordsInDirectory(directory),
  // The tests run as root, whom no permission stops: a regular file where the directory was stops everyone.
  outage: {
    cut: async () => {
      await rename(directory, away());
      await writeFile(directory, 'not a directory');
    },
    restore: async () => {
      if ((await stat(away()).catch(() => null)) === null) return;
      await rm(directory, { force: true });
      await rename(away(), directory);
    },
  },
});
