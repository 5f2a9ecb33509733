import { createReadStream } from 'node:fs';
import { open, readdir, type FileHandle } from 'node:fs/promises';
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

interface OpenedFile {
  handle: FileHandle;
  /** The size when it was opened: what is counted, whatever is appended later. */
  size: number;
}

const sameNames = (a: string[], b: string[]): boolean => a.length === b.length && a.every((name, at) => name === b[at]);

/**
 * Opens the files under `dir` whose name ends with `suffix` and notes their sizes. A file renamed
 * while they are listed (a log rolling) would drop out of both names, so the listing is repeated
 * until it holds still; an open file keeps its content even if it is renamed afterwards.
 */
async function openSnapshot(dir: string, suffix: string): Promise<OpenedFile[]> {
  const list = async (): Promise<string[]> => (await filesUnder(dir)).filter((path) => path.endsWith(suffix)).sort();
  for (;;) {
    const names = await list();
    const opened: OpenedFile[] = [];
    try {
      for (const name of names) {
        const handle = await open(name);
        opened.push({ handle, size: (await handle.stat()).size });
      }
      if (sameNames(names, await list())) return opened;
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== 'ENOENT') {
        await Promise.all(opened.map(({ handle }) => handle.close()));
        throw error;
      }
    }
    await Promise.all(opened.map(({ handle }) => handle.close()));
  }
}

function occurrences(buffer: Buffer, needle: Buffer): number {
  let count = 0;
  for (let at = buffer.indexOf(needle); at !== -1; at = buffer.indexOf(needle, at + needle.length)) count++;
  return count;
}

/** Occurrences of each needle in the first `size` bytes of the file, read once in large chunks; closes it. */
async function countInFile({ handle, size }: OpenedFile, needles: Buffer[]): Promise<number[]> {
  const counts = needles.map(() => 0);
  if (size === 0) {
    await handle.close();
    return counts;
  }
  // An occurrence may straddle two chunks: the last `keep` bytes read are carried to the next seam.
  const keep = Math.max(...needles.map((needle) => needle.length)) - 1;
  let carry = Buffer.alloc(0);
  const chunks = createReadStream('', { fd: handle, start: 0, end: size - 1, highWaterMark: 1024 * 1024 }) as AsyncIterable<Buffer>;
  for await (const chunk of chunks) {
    needles.forEach((needle, index) => {
      // Both parts are shorter than the needle, so an occurrence found in the seam straddles it.
      const seam = Buffer.concat([carry.subarray(carry.length - (needle.length - 1)), chunk.subarray(0, needle.length - 1)]);
      counts[index]! += occurrences(seam, needle) + occurrences(chunk, needle);
    });
    const tail = Buffer.concat([carry, chunk.subarray(Math.max(0, chunk.length - keep))]);
    carry = tail.subarray(tail.length - keep);
  }
  return counts;
}

/**
 * Occurrences of each marker in the files under `dir` whose name ends with `suffix`, each file read
 * up to the size it had at the call: a snapshot, though its writer goes on appending.
 */
export async function countMarkers(dir: string, suffix: string, markers: string[]): Promise<number[]> {
  const needles = markers.map((marker) => Buffer.from(marker));
  const totals = markers.map(() => 0);
  for (const file of await openSnapshot(dir, suffix)) {
    (await countInFile(file, needles)).forEach((count, index) => (totals[index]! += count));
  }
  return totals;
}

/** Files under `dir` (recursively) whose name ends with `suffix`, with their total lines and bytes. */
export async function tally(dir: string, suffix = ''): Promise<FileTally> {
  const total: FileTally = { files: 0, lines: 0, bytes: 0 };
  for (const file of await openSnapshot(dir, suffix)) {
    total.files++;
    total.bytes += file.size;
    total.lines += (await countInFile(file, [Buffer.from('\n')]))[0]!;
  }
  return total;
}
