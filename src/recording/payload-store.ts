import { copyFile, mkdir, writeFile } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import type { PayloadCapture } from './payload-capture.js';
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
}

/**
 * Writes the recorded bodies of a finished transaction to
 * `<directory>/<YYYY-MM-DD>/<HH.mm>/<correlationId>-<leg>-<sent|received>` and links each leg to
 * its files. A body that passed through the gateway unchanged (request: leg 0 received, last leg
 * sent) is captured once and stored under each name.
 */
export class PayloadStore {
  readonly directory: string;

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
      const list = placements.get(capture);
      if (list === undefined) placements.set(capture, [{ leg, direction }]);
      else list.push({ leg, direction });
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
    // Not cached: the disk quota may have removed the folder since the last transaction.
    await mkdir(join(this.directory, payloadFolder(transaction.startedAt)), { recursive: true });
    await Promise.all([...placements].map(([capture, where]) => this.#write(transaction, capture, where)));
  }

  async #write(transaction: Transaction, capture: PayloadCapture, placements: Placement[]): Promise<void> {
    try {
      const settled = await capture.settle();
      let body: Buffer | null = null;
      if (settled.file === null) {
        body = settled.chunks.length === 1 ? (settled.chunks[0] as Buffer) : Buffer.concat(settled.chunks);
        if (this.redactor.appliesToBody(capture.contentType)) body = this.redactor.jsonBody(body);
      }
      for (const { leg, direction } of placements) {
        const path = this.pathFor(transaction, leg.index, direction);
        if (body !== null) await writeFile(path, body);
        else if (path !== settled.file) await copyFile(settled.file as string, path);
        const uri = pathToFileURL(path).href;
        if (direction === 'received') leg.recvPayload = uri;
        else leg.sentPayload = uri;
      }
    } catch (error) {
      this.onError(error as Error);
    }
  }
}
