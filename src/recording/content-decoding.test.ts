import { brotliCompressSync, constants, deflateSync, gzipSync } from 'node:zlib';
import { describe, expect, it } from 'vitest';
import { decodeBody } from './content-decoding.js';

const TEXT = Buffer.from(JSON.stringify({ items: Array.from({ length: 200 }, (_, i) => ({ id: i, name: `item ${i}` })) }));
const GZIP = gzipSync(TEXT);
const BROTLI = brotliCompressSync(TEXT, { params: { [constants.BROTLI_PARAM_QUALITY]: 4 } });

/** The decoded body as text (comparing strings is much quicker than comparing buffers). */
async function decodedText(body: Buffer, encoding: string, maxBytes: number): Promise<{ text: string; truncated: boolean } | null> {
  const decoded = await decodeBody(body, encoding, maxBytes);
  return decoded && { text: decoded.body.toString('latin1'), truncated: decoded.truncated };
}

describe('decodeBody', () => {
  it('returns an unencoded body as it is, never cut', async () => {
    for (const encoding of ['', 'identity', ' Identity ']) {
      const decoded = await decodeBody(TEXT, encoding, 10);
      expect(decoded?.body).toBe(TEXT);
      expect(decoded?.truncated).toBe(false);
    }
  });

  it('decodes gzip, deflate and br whole when the decoded body fits', async () => {
    const encoded: [string, Buffer][] = [['gzip', GZIP], ['x-gzip', GZIP], ['deflate', deflateSync(TEXT)], ['br', BROTLI]];
    for (const [encoding, body] of encoded) {
      expect(await decodedText(body, encoding, TEXT.length), encoding).toEqual({ text: TEXT.toString(), truncated: false });
    }
  });

  it('cuts a decoded body longer than maxBytes there and says so', async () => {
    for (const [encoding, body] of [['gzip', GZIP], ['br', BROTLI]] as const) {
      expect(await decodedText(body, encoding, TEXT.length - 1), encoding).toEqual({ text: TEXT.toString().slice(0, -1), truncated: true });
      expect(await decodedText(body, encoding, 100), encoding).toEqual({ text: TEXT.toString().slice(0, 100), truncated: true });
    }
  });

  it('decodes a body cut short by the capture as far as it goes, not calling that a cut of its own', async () => {
    const decoded = await decodedText(GZIP.subarray(0, GZIP.length - 40), 'gzip', TEXT.length);
    expect(decoded?.truncated).toBe(false);
    expect(decoded!.text.length).toBeGreaterThan(0);
    expect(TEXT.toString().startsWith(decoded!.text)).toBe(true);
  });

  it('answers null for an encoding it cannot read and for a corrupt body', async () => {
    expect(await decodeBody(TEXT, 'zstd', 1000)).toBeNull();
    expect(await decodeBody(Buffer.from('not gzip at all'), 'gzip', 1000)).toBeNull();
  });
});
