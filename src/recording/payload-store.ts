import { join, resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import { decodeBody } from './content-decoding.js';
import type { PayloadCapture, SettledPayload } from './payload-capture.js';
import { PayloadWriter, type FileJob } from './payload-writer.js';
import type { Redactor } from './redactor.js';
import type { Leg, Transaction } from './transaction.js';

export type Direction = 'sent' | 'received';

function pad(value: number): string {
  return value < 10 ? `0${value}` : String(value);
}

/** `<YYYY-MM-DD>/<HH.mm>` of a time, in UTC. */
export function payloadFolder(epochMs: number): string {
  const date = new Date(epochMs);
  return `${date.getUTCFullYear()}-${pad(date.getUTCMonth() + 1)}-${pad(date.getUTCDate())}/${pad(date.getUTCHours())}.${pad(date.getUTCMinutes())}`;
}

interface Placement {
  leg: Leg;
  direction: Direction;
  path: string;
}

/**
 * Writes the recorded bodies of a finished transaction to
 * `<directory>/<YYYY-MM-DD>/<HH.mm>/<correlationId>-<leg>-<sent|received>` and links each leg to
 * its files. A body that passed through the gateway unchanged (the request: leg 0 received and
 * the last leg sent; the response likewise) is captured once and stored under each name.
 */
export class PayloadStore {
  readonly directory: string;
  readonly #writer = new PayloadWriter();

  constructor(
    directory: string,
    readonly redactor: Redactor,
    readonly onError: (error: Error) => void,
  ) {
    this.directory = resolve(directory);
  }

  pathFor(transaction: Transaction, legIndex: number, direction: Direction): string {
    return join(this.directory, payloadFolder(transaction.startedAt), `${transaction.id}-${legIndex}-${direction}`);
  }

  async store(transaction: Transaction): Promise<void> {
    const placements = new Map<PayloadCapture, Placement[]>();
    const place = (capture: PayloadCapture | null, leg: Leg, direction: Direction): void => {
      if (capture === null || capture.seen === 0) return;
      const placement = { leg, direction, path: this.pathFor(transaction, leg.index, direction) };
      const list = placements.get(capture);
      if (list === undefined) placements.set(capture, [placement]);
      else list.push(placement);
    };
    for (const leg of transaction.legs) {
      place(leg.recvCapture, leg, 'received');
      place(leg.sentCapture, leg, 'sent');
    }
    if (placements.size === 0) return;
    if (!transaction.recordsBodies) {
      await Promise.all([...placements.keys()].map((capture) => capture.discard()));
      return;
    }
    const jobs: FileJob[] = [];
    /** Each placement with the index of the job that creates its file; -1: the file exists already. */
    const files: [Placement, number][] = [];
    for (const [capture, where] of placements) {
      let settled: SettledPayload;
      try {
        settled = await capture.settle();
      } catch (error) {
        this.onError(error as Error);
        continue;
      }
      let first: string;
      if (settled.file === null) {
        const body = await this.#redacted(capture, settled.chunks);
        if (body === null) continue;
        first = (where[0] as Placement).path;
        files.push([where[0] as Placement, jobs.push({ path: first, data: body, sameAs: null }) - 1]);
      } else {
        first = settled.file;
      }
      for (const placement of where) {
        if (placement.path === first) {
          if (settled.file !== null) files.push([placement, -1]);
        } else {
          files.push([placement, jobs.push({ path: placement.path, data: null, sameAs: first }) - 1]);
        }
      }
    }
    let errors: (string | null)[];
    try {
      errors = await this.#writer.write(jobs);
    } catch (error) {
      return this.onError(error as Error);
    }
    for (const [placement, job] of files) {
      const error = job === -1 ? null : errors[job];
      if (error != null) {
        this.onError(new Error(error));
        continue;
      }
      const uri = pathToFileURL(placement.path).href;
      if (placement.direction === 'received') placement.leg.recvPayload = uri;
      else placement.leg.sentPayload = uri;
    }
  }

  /**
   * The bytes to store: a JSON or form body with its secret fields redacted (a compressed one
   * decoded first, so it is stored decoded), any other body as it passed. Null when such a body
   * cannot be read to redact it: then it is not stored at all.
   */
  async #redacted(capture: PayloadCapture, chunks: Buffer[]): Promise<Buffer | null> {
    const body = chunks.length === 1 ? (chunks[0] as Buffer) : Buffer.concat(chunks);
    if (!this.redactor.appliesToBody(capture.contentType)) return body;
    const decoded = await decodeBody(body, capture.contentEncoding, capture.limit);
    if (decoded === null) {
      this.onError(new Error(`a ${capture.contentType} body with Content-Encoding "${capture.contentEncoding}" was not stored: it could not be decoded to redact it`));
      return null;
    }
    if (decoded.truncated) capture.truncated = true;
    return this.redactor.body(capture.contentType, decoded.body);
  }

  close(): Promise<void> {
    return this.#writer.close();
  }
}
