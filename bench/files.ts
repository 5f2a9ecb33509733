import { createReadStream } from 'node:fs';
import { readdir } from 'node:fs/promises';
import { join } from 'node:path';

interface FileTally {
  files: number;
  lines: number;
  bytes: number;
}

async function filesUnder(dir: string): Promise<string[]> {
  try {
    const entries = await readdir(dir, { recursive: true, withFileTypes: true });
    return entries.filter((entry) => entry.isFile()).map((entry) => join(entry.parentPath, entry.name));
  } catch {
    return [];
  }
}

export async function countFiles(dir: string): Promise<number> {
  return (await filesUnder(dir)).length;
}

/** Streams, because a 10 s traffic log can run to hundreds of MB. */
async function tallyFile(path: string): Promise<{ lines: number; bytes: number }> {
  let lines = 0;
  let bytes = 0;
  for await (const chunk of createReadStream(path) as AsyncIterable<Buffer>) {
    bytes += chunk.length;
    for (let at = chunk.indexOf(10); at !== -1; at = chunk.indexOf(10, at + 1)) lines++;
  }
  return { lines, bytes };
}

/** Files under `dir` (recursively) whose name ends with `suffix`, with their total lines and bytes. */
export async function tally(dir: string, suffix = ''): Promise<FileTally> {
  const total: FileTally = { files: 0, lines: 0, bytes: 0 };
  for (const path of await filesUnder(dir)) {
    if (!path.endsWith(suffix)) continue;
    const { lines, bytes } = await tallyFile(path);
    total.files++;
    total.lines += lines;
    total.bytes += bytes;
  }
  return total;
}
