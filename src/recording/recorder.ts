import type { Config, DetailedRecording, EndpointConfig } from '../config/schema.js';
import { ignoredAddresses } from './ip-filter.js';
import { PayloadCapture } from './payload-capture.js';
import type { Direction, PayloadStore } from './payload-store.js';
import { pathNormaliser } from './path-normaliser.js';
import type { Redactor } from './redactor.js';
import type { RecordingPolicy, Transaction } from './transaction.js';

/** Anything that takes finished transactions: the traffic log now, the analytics buffer later. */
export interface TransactionConsumer {
  /** Called once per finished, recorded transaction. Must not block; may keep the reference. */
  accept(transaction: Transaction): void;
  /** Writes out everything accepted so far. */
  close(): Promise<void>;
}

export interface RecorderOptions {
  analytics: Config['analytics'];
  payloadsEnabled: boolean;
  redactor: Redactor;
  payloadStore: PayloadStore | null;
  consumers: TransactionConsumer[];
}

/**
 * Decides what is recorded about a request and hands each finished transaction to the
 * consumers. Finishing is deferred to a batch after the response, so formatting and I/O never
 * sit on a request's path.
 */
export class Recorder {
  readonly enabled: boolean;
  readonly redactor: Redactor;
  readonly #isIgnored: (address: string) => boolean;
  readonly #normalise: (path: string) => string;
  readonly #globalLevel: DetailedRecording;
  readonly #payloadsEnabled: boolean;
  readonly #maxPayloadBytes: number;
  readonly #payloadStore: PayloadStore | null;
  readonly #consumers: TransactionConsumer[];
  #batch: Transaction[] = [];
  #flushScheduled = false;
  #storing = new Set<Promise<void>>();

  constructor(options: RecorderOptions) {
    const { analytics } = options;
    this.enabled = analytics.enabled && options.consumers.length > 0;
    this.redactor = options.redactor;
    this.#isIgnored = ignoredAddresses(analytics.ignoredIps);
    this.#normalise = pathNormaliser(analytics.normaliseUrls);
    this.#payloadsEnabled = options.payloadsEnabled;
    this.#globalLevel = analytics.detailedRecording ?? (options.payloadsEnabled ? 'full' : 'off');
    this.#maxPayloadBytes = analytics.maxPayloadBytes;
    this.#payloadStore = options.payloadStore;
    this.#consumers = options.consumers;
  }

  /** Whether a request from this client to this API/endpoint is recorded at all. */
  tracks(clientAddr: string, apiDoNotTrack: boolean, endpoint: EndpointConfig | null): boolean {
    if (!this.enabled || apiDoNotTrack || endpoint?.doNotTrack === true) return false;
    return !this.#isIgnored(clientAddr);
  }

  policyFor(apiLevel: DetailedRecording | undefined, endpoint: EndpointConfig | null): RecordingPolicy {
    return { level: endpoint?.detailedRecording ?? apiLevel ?? this.#globalLevel, payloads: this.#payloadsEnabled };
  }

  /** Whether this transaction's bodies may be stored (for `errors`, known only at its end). */
  wantsBodies(transaction: Transaction): boolean {
    const { level, payloads } = transaction.policy;
    return payloads && (level === 'full' || level === 'errors');
  }

  /** A capture for a body when this transaction may store bodies, else null. */
  capture(transaction: Transaction, legIndex: number, direction: Direction, contentType: string, contentEncoding = ''): PayloadCapture | null {
    if (this.#payloadStore === null || !this.wantsBodies(transaction)) return null;
    // A JSON body is held whole (up to the cap) so its secret fields can be redacted before
    // anything reaches the disk; other bodies stream to their file as they pass.
    const spillPath = this.redactor.appliesToBody(contentType)
      ? null
      : this.#payloadStore.pathFor(transaction, legIndex, direction);
    const capture = new PayloadCapture(this.#maxPayloadBytes, spillPath);
    capture.contentType = contentType;
    capture.contentEncoding = contentEncoding;
    return capture;
  }

  finish(transaction: Transaction): void {
    this.#batch.push(transaction);
    if (!this.#flushScheduled) {
      this.#flushScheduled = true;
      setImmediate(this.#flush);
    }
  }

  readonly #flush = (): void => {
    this.#flushScheduled = false;
    const batch = this.#batch;
    this.#batch = [];
    for (const transaction of batch) {
      transaction.normalisedPath = this.#normalise(transaction.path);
      if (this.#payloadStore !== null && hasCaptures(transaction)) {
        const storing = this.#payloadStore
          .store(transaction)
          .catch((error: Error) => this.#payloadStore?.onError(error))
          .then(() => this.#deliver(transaction));
        this.#storing.add(storing);
        void storing.finally(() => this.#storing.delete(storing));
      } else {
        this.#deliver(transaction);
      }
    }
  };

  #deliver(transaction: Transaction): void {
    for (const consumer of this.#consumers) consumer.accept(transaction);
  }

  /** Finishes what is pending, then closes every consumer. */
  async close(): Promise<void> {
    this.#flush();
    await Promise.all(this.#storing);
    await this.#payloadStore?.close();
    await Promise.all(this.#consumers.map((consumer) => consumer.close()));
  }
}

function hasCaptures(transaction: Transaction): boolean {
  for (const leg of transaction.legs) if (leg.recvCapture !== null || leg.sentCapture !== null) return true;
  return false;
}
