import { constants, createBrotliDecompress, createGunzip, createInflate } from 'node:zlib';
import type { Transform } from 'node:stream';

function decoderFor(encoding: string): Transform | null {
  switch (encoding) {
    case 'gzip':
    case 'x-gzip':
      return createGunzip({ finishFlush: constants.Z_SYNC_FLUSH });
    case 'deflate':
      return createInflate({ finishFlush: constants.Z_SYNC_FLUSH });
    case 'br':
      return createBrotliDecompress({ finishFlush: constants.BROTLI_OPERATION_FLUSH });
    default:
      return null;
  }
}

export interface DecodedBody {
  /** At most `maxBytes` of the decoded body. */
  body: Buffer;
  /** Whether the decoded body went on past `maxBytes` and was cut there. */
  truncated: boolean;
}

/**
 * A body as its `Content-Encoding` says to read it, cut at `maxBytes`; a body cut by the capture
 * limit decodes as far as it goes. Null for an encoding this cannot read, or a corrupt body.
 */
export async function decodeBody(body: Buffer, contentEncoding: string, maxBytes: number): Promise<DecodedBody | null> {
  const encoding = contentEncoding.trim().toLowerCase();
  if (encoding === '' || encoding === 'identity') return { body, truncated: false };
  const decoder = decoderFor(encoding);
  if (decoder === null) return null;
  return new Promise((resolve) => {
    const chunks: Buffer[] = [];
    let size = 0;
    const done = (truncated: boolean): void => resolve({ body: Buffer.concat(chunks, Math.min(size, maxBytes)), truncated });
    decoder.on('data', (chunk: Buffer) => {
      chunks.push(chunk);
      size += chunk.length;
      if (size > maxBytes) {
        decoder.destroy();
        done(true);
      }
    });
    decoder.on('end', () => done(false));
    decoder.on('error', () => (size > 0 ? done(false) : resolve(null)));
    decoder.end(body);
  });
}
