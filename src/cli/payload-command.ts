import { open } from 'node:fs/promises';
import type { Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { fileURLToPath } from 'node:url';

/** What a `recvPayload`/`sentPayload` link points to: a whole file, or a byte range of one. */
export interface PayloadLocation {
  path: string;
  /** Null for the reference layout: the whole file is the body. */
  range: { offset: number; length: number } | null;
}

const PACKED_FRAGMENT = /^offset=(\d+)&length=(\d+)$/;

/**
 * Reads a payload link: `file:///abs/path` (reference layout) or
 * `file:///abs/path.bin#offset=N&length=M` (packed layout). Throws an Error naming what is wrong.
 */
export function parsePayloadLink(link: string): PayloadLocation {
  let url: URL;
  try {
    url = new URL(link);
  } catch {
    throw new Error(`expected a file:// link, found "${link}"`);
  }
  if (url.protocol !== 'file:') throw new Error(`expected a file:// link, found "${link}"`);
  if (url.search !== '') throw new Error(`expected a file:// link without a query, found "${link}"`);
  const path = fileURLToPath(url);
  if (url.hash === '') return { path, range: null };
  const match = PACKED_FRAGMENT.exec(url.hash.slice(1));
  if (match === null) throw new Error(`expected the link to end in #offset=N&length=M (whole numbers), found "${url.hash}"`);
  const offset = Number(match[1]);
  const length = Number(match[2]);
  if (!Number.isSafeInteger(offset) || !Number.isSafeInteger(length)) throw new Error(`offset and length out of range in "${url.hash}"`);
  return { path, range: { offset, length } };
}

/** Copies the body a payload link points to, byte for byte, to `out`. Throws an Error naming what is wrong. */
export async function printPayload(link: string, out: Writable): Promise<void> {
  const { path, range } = parsePayloadLink(link);
  const file = await open(path, 'r').catch((error: NodeJS.ErrnoException) => {
    if (error.code === 'ENOENT') throw new Error(`${path}: no such file (the disk quota may have deleted it)`);
    throw new Error(`${path}: ${error.message}`);
  });
  try {
    const info = await file.stat();
    if (!info.isFile()) throw new Error(`${path}: not a file`);
    if (range === null) return await pipeline(file.createReadStream({ autoClose: false }), out, { end: false });
    const end = range.offset + range.length;
    if (end > info.size) {
      throw new Error(`${path}: offset ${range.offset} + length ${range.length} runs past the end of the file (${info.size} bytes): it was cut or replaced`);
    }
    if (range.length === 0) return;
    await pipeline(file.createReadStream({ start: range.offset, end: end - 1, autoClose: false }), out, { end: false });
  } finally {
    await file.close();
  }
}
