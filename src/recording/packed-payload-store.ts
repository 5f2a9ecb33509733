import { pathToFileURL } from 'node:url';
import { AppendFile, type AppendFileEvents, type Landing } from '../storage/append-file.js';
import { numberedNames } from '../storage/file-naming.js';
import { setOutcome, type BodyToStore, type PayloadStore } from './payload-store.js';

export interface PackedPayloadStoreOptions {
  directory: string;
  /** `<group>_<instance>`: each gateway process appends to files of its own. */
  base: string;
  maxFileBytes: number;
  maxPendingBytes: number;
  events: AppendFileEvents;
}

interface Waiting {
  bodies: BodyToStore[];
  done: () => void;
}

/**
 * The packed layout: bodies appended to size-rolled files per instance,
 * `<directory>/<base>_payloads_<YYYY-MM-DD>-<n>.bin`, linked as
 * `file:///...bin#offset=N&length=M`. The bodies of one turn go to the disk in one write,
 * and a body recorded in two places is stored once: far cheaper than a file per body.
 */
export class PackedPayloadStore implements PayloadStore {
  readonly #file: AppendFile;
  readonly #events: AppendFileEvents;
  readonly #maxPendingMb: number;
  #waiting: Waiting[] = [];
  #lastPath = '';
  #lastUrl = '';

  constructor(options: PackedPayloadStoreOptions) {
    this.#events = options.events;
    this.#maxPendingMb = options.maxPendingBytes / 1024 / 1024;
    this.#file = new AppendFile({
      target: { naming: numberedNames(options.directory, `${options.base}_payloads`, '.bin'), maxBytes: options.maxFileBytes },
      maxPendingBytes: options.maxPendingBytes,
      events: options.events,
    });
  }

  spillPath(): null {
    return null;
  }

  store(_transaction: unknown, bodies: BodyToStore[]): Promise<void> {
    return new Promise((done) => {
      if (this.#waiting.length === 0) process.nextTick(this.#write);
      this.#waiting.push({ bodies, done });
    });
  }

  readonly #write = (): void => {
    const waiting = this.#waiting;
    this.#waiting = [];
    const chunks: Buffer[] = [];
    for (const { bodies } of waiting) for (const body of bodies) if (body.data !== null) chunks.push(body.data);
    const data = chunks.length === 1 ? (chunks[0] as Buffer) : Buffer.concat(chunks);
    const accepted = this.#file.append(data, { landed: (landing) => this.#landed(waiting, landing) });
    if (accepted) return;
    this.#landed(waiting, null, 'queue-full');
    const error = new Error(`bodies not stored: over ${this.#maxPendingMb} MiB of bodies wait for the disk`);
    this.#events.error(Object.assign(error, { code: 'PAYLOAD_QUEUE_FULL' }));
  };

  #landed(waiting: Waiting[], landing: Landing | null, failure: 'queue-full' | 'write-failed' = 'write-failed'): void {
    let offset = landing?.offset ?? 0;
    const url = landing === null ? '' : this.#url(landing.path);
    for (const { bodies, done } of waiting) {
      for (const body of bodies) {
        const length = body.data?.length ?? 0;
        const outcome = landing === null ? failure : { link: `${url}#offset=${offset}&length=${length}`, bytes: length, truncated: body.truncated };
        setOutcome(body.placements, outcome);
        offset += length;
      }
      done();
    }
  }

  #url(path: string): string {
    if (path !== this.#lastPath) {
      this.#lastPath = path;
      this.#lastUrl = pathToFileURL(path).href;
    }
    return this.#lastUrl;
  }

  reopen(): void {
    this.#file.reopen();
  }

  close(): Promise<void> {
    return this.#file.close();
  }
}
