import { rmSync } from 'node:fs';
import { resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import type { DiskQuota } from '../storage/disk-quota.js';
import { payloadFolder, setOutcome, type BodyToStore, type Direction, type PayloadStore, type Placement } from './payload-store.js';
import { PayloadWriter, type FileJob, type JobFailure } from './payload-writer.js';
import type { Transaction } from './transaction.js';

export interface FilePayloadStoreOptions {
  directory: string;
  /**
   * Where bodies too large to hold stream while they pass, this process's own (emptied at
   * start): out of the minute folders, so the disk quota cannot delete one being written.
   */
  spillDirectory: string;
  maxDelayMs: number;
  maxQueuedBytes: number;
  quota: DiskQuota | null;
  onError: (error: Error) => void;
}

/**
 * The reference layout: each body in its own file,
 * `<directory>/<YYYY-MM-DD>/<HH.mm>/<correlationId>-<leg>-<sent|received>`, linked from its leg.
 * A body recorded in two places (it passed unchanged) is written once and hard-linked.
 */
export class FilePayloadStore implements PayloadStore {
  readonly directory: string;
  readonly #directoryUrl: string;
  readonly #writer: PayloadWriter;
  /** The minute folder of the last transaction stored: most transactions share it. */
  #minute = -1;
  #folder = '';

  constructor(readonly options: FilePayloadStoreOptions) {
    this.directory = resolve(options.directory);
    // Bodies an earlier run of this process left half written.
    rmSync(options.spillDirectory, { recursive: true, force: true });
    this.#directoryUrl = pathToFileURL(this.directory).href;
    this.#writer = new PayloadWriter({ maxDelayMs: options.maxDelayMs, maxQueuedBytes: options.maxQueuedBytes, onError: options.onError });
  }

  /** `<YYYY-MM-DD>/<HH.mm>` of the transaction's minute. */
  #folderOf(transaction: Transaction): string {
    const minute = Math.floor(transaction.startedAt / 60_000);
    if (minute !== this.#minute) {
      this.#minute = minute;
      this.#folder = payloadFolder(transaction.startedAt);
    }
    return this.#folder;
  }

  #path(transaction: Transaction, legIndex: number, direction: Direction): string {
    return `${this.directory}/${this.#folderOf(transaction)}/${transaction.id}-${legIndex}-${direction}`;
  }

  spillPath(transaction: Transaction, legIndex: number, direction: Direction): string {
    return `${this.options.spillDirectory}/${transaction.id}-${legIndex}-${direction}`;
  }

  store(transaction: Transaction, bodies: BodyToStore[]): Promise<void> | void {
    const jobs: FileJob[] = [];
    /** Per job: the placement it creates and the body it belongs to. */
    const made: [Placement, BodyToStore][] = [];
    for (const body of bodies) {
      let first: string | null = null;
      for (const placement of body.placements) {
        const path = this.#path(transaction, placement.leg.index, placement.direction);
        if (first === null) jobs.push({ path, data: body.data, sameAs: null, movedFrom: body.file });
        else jobs.push({ path, data: null, sameAs: first, movedFrom: null });
        first ??= path;
        made.push([placement, body]);
      }
    }
    if (jobs.length === 0) return;
    return new Promise((settled) => {
      const accepted = this.#writer.write(jobs, (failures) => {
        this.#settle(transaction, jobs, made, failures);
        settled();
      });
      if (accepted) return;
      for (const [placement] of made) setOutcome([placement], 'queue-full');
      const error = new Error(`bodies not stored: the payload writer is over trafficLog.payloads.maxWriteDelayMs (${this.options.maxDelayMs} ms) behind`);
      this.options.onError(Object.assign(error, { code: 'PAYLOAD_QUEUE_FULL' }));
      settled();
    });
  }

  #settle(transaction: Transaction, jobs: FileJob[], made: [Placement, BodyToStore][], failures: (JobFailure | null)[]): void {
    let bytes = 0;
    jobs.forEach((job, index) => {
      const [placement, body] = made[index] as [Placement, BodyToStore];
      const failure = failures[index];
      if (failure != null) {
        this.options.onError(Object.assign(new Error(`${job.path}: ${failure.message}`), { code: failure.code }));
        setOutcome([placement], 'write-failed');
        return;
      }
      if (job.sameAs === null) bytes += body.bytes;
      setOutcome([placement], this.#stored(job.path, body));
    });
    this.#counted(transaction, bytes);
  }

  /** Tells the disk quota about bytes stored in the transaction's minute folder. */
  #counted(transaction: Transaction, bytes: number): void {
    if (bytes === 0 || this.options.quota === null) return;
    const minute = Math.floor(transaction.startedAt / 60_000) * 60_000;
    this.options.quota.folderWritten(`${this.directory}/${this.#folderOf(transaction)}`, minute, bytes);
  }

  /** The link of a file below the directory: the directory's URL and the rest, which needs no escaping. */
  #stored(path: string, body: BodyToStore): Placement['leg']['recvPayload'] {
    return { link: this.#directoryUrl + path.slice(this.directory.length), bytes: body.bytes, truncated: body.truncated };
  }

  reopen(): void {
    // Every body has a file of its own: there is nothing held open to reopen.
  }

  close(): Promise<void> {
    return this.#writer.close();
  }
}
