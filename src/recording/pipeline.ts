import { decodeBody } from './content-decoding.js';
import { PayloadCapture, type HeldBytes } from './payload-capture.js';
import { setOutcome, type BodyToStore, type Direction, type PayloadStore, type Placement } from './payload-store.js';
import type { TransactionRecord } from './record.js';
import type { RecordBuilder } from './record-builder.js';
import type { Redactor } from './redactor.js';
import type { Transaction } from './transaction.js';

/** Anything that takes finished records: the traffic event log, the analytics buffer. */
export interface RecordConsumer {
  readonly name: string;
  /**
   * Takes the records finished in one turn of the event loop. Must not block on I/O: it keeps a
   * bounded backlog of its own, and drops (and counts) what does not fit.
   */
  write(records: readonly TransactionRecord[]): void;
  /** Records it dropped so far. */
  readonly dropped: number;
  /** Writes out everything it took and releases its resources. */
  close(): Promise<void>;
}

export interface PipelineOptions {
  builder: RecordBuilder;
  redactor: Redactor;
  payloads: PayloadStore | null;
  /** Keep the redacted bodies in the records themselves (`analytics.recordBodies`). */
  recordBodies: boolean;
  maxPayloadBytes: number;
  heldBytes: HeldBytes;
  consumers: RecordConsumer[];
  /** A consumer that threw, or a body that could not be stored. */
  onError: (component: string, error: Error) => void;
}

/** How long bodies still being stored get at shutdown, before the payload store closes. */
const CLOSE_TIMEOUT_MS = 5_000;

/** Each capture of a transaction with every place it is recorded (one body can be recorded on two legs). */
function captures(transaction: Transaction): Map<PayloadCapture, Placement[]> | null {
  let found: Map<PayloadCapture, Placement[]> | null = null;
  const add = (capture: PayloadCapture | null, placement: Placement): void => {
    if (capture === null || (capture.seen === 0 && capture.notStored === null)) return;
    found ??= new Map();
    const placements = found.get(capture);
    if (placements === undefined) found.set(capture, [placement]);
    else placements.push(placement);
  };
  for (const leg of transaction.legs) {
    add(leg.recvCapture, { leg, direction: 'received' });
    add(leg.sentCapture, { leg, direction: 'sent' });
  }
  return found;
}

/**
 * What happens to a transaction once it is finished, off the request's path: its bodies are
 * settled, redacted and stored, its record is built, and the records of each turn go to every
 * consumer together. A consumer that throws is reported and skipped; it cannot stop the others.
 */
export class RecordingPipeline {
  /** Exceptions thrown by consumers. */
  consumerFailures = 0;
  #finished: Transaction[] = [];
  #settled: TransactionRecord[] = [];
  #flushScheduled = false;
  #deliverScheduled = false;
  #settling = 0;
  #idle: (() => void) | null = null;

  constructor(readonly options: PipelineOptions) {}

  /** A capture for a body of this transaction, or null when its bodies are not stored. */
  capture(transaction: Transaction, legIndex: number, direction: Direction, contentType: string, contentEncoding: string): PayloadCapture | null {
    const { payloads, redactor, recordBodies } = this.options;
    if (!transaction.policy.capturesBodies) return null;
    // A body that may hold secrets is held whole so it can be redacted before it reaches the disk;
    // so is one the record keeps.
    const spillPath = payloads === null || recordBodies || redactor.appliesToBody(contentType) ? null : payloads.spillPath(transaction, legIndex, direction);
    return new PayloadCapture(this.options.maxPayloadBytes, contentType, contentEncoding, this.options.heldBytes, spillPath);
  }

  /** Hands over a finished transaction; it is processed after the current turn. */
  finish(transaction: Transaction): void {
    this.#finished.push(transaction);
    if (!this.#flushScheduled) {
      this.#flushScheduled = true;
      setImmediate(this.#flush);
    }
  }

  readonly #flush = (): void => {
    this.#flushScheduled = false;
    const finished = this.#finished;
    this.#finished = [];
    const records: TransactionRecord[] = [];
    for (const transaction of finished) {
      const storing = this.#storeBodies(transaction);
      if (storing === undefined) {
        records.push(this.options.builder.build(transaction));
        continue;
      }
      this.#settling++;
      void storing
        .catch((error: Error) => this.options.onError('payload store', error))
        .then(() => this.#settledLate(transaction));
    }
    if (records.length > 0) this.#deliver(records);
  };

  #settledLate(transaction: Transaction): void {
    this.#settled.push(this.options.builder.build(transaction));
    if (--this.#settling === 0) this.#idle?.();
    if (this.#deliverScheduled) return;
    this.#deliverScheduled = true;
    setImmediate(() => {
      this.#deliverScheduled = false;
      const records = this.#settled;
      this.#settled = [];
      this.#deliver(records);
    });
  }

  #deliver(records: readonly TransactionRecord[]): void {
    for (const consumer of this.options.consumers) {
      try {
        consumer.write(records);
      } catch (error) {
        this.consumerFailures++;
        this.options.onError(consumer.name, error as Error);
      }
    }
  }

  /** Settles, redacts and stores the transaction's bodies; undefined when there is nothing to wait for. */
  #storeBodies(transaction: Transaction): Promise<void> | undefined {
    const found = captures(transaction);
    if (found === null) return undefined;
    if (!transaction.recordsBodies) {
      for (const capture of found.keys()) capture.discard().catch((error: Error) => this.options.onError('payload store', error));
      return undefined;
    }
    const bodies: BodyToStore[] = [];
    let later: Promise<void>[] | null = null;
    for (const [capture, placements] of found) {
      if (capture.notStored !== null) {
        setOutcome(placements, capture.notStored);
        const limitMb = this.options.heldBytes.limit / 1024 / 1024;
        const error = new Error(`a body was not stored: the bodies held for redaction reached analytics.payloadMemoryMb (${limitMb} MB); ${this.options.heldBytes.refused} so far`);
        this.options.onError('payload store', Object.assign(error, { code: 'PAYLOAD_MEMORY_LIMIT' }));
        continue;
      }
      const body = this.#body(capture, placements);
      if (body instanceof Promise) {
        later ??= [];
        later.push(body.then((settled) => (settled === null ? undefined : void bodies.push(settled))));
      } else if (body !== null) {
        bodies.push(body);
      }
    }
    if (later === null) return this.#keep(transaction, bodies);
    return Promise.all(later).then(() => this.#keep(transaction, bodies));
  }

  /** Stores the settled bodies, and hands them to the record when it keeps bodies. */
  #keep(transaction: Transaction, bodies: BodyToStore[]): Promise<void> | undefined {
    if (bodies.length === 0) return undefined;
    if (this.options.recordBodies) {
      for (const body of bodies) {
        if (body.data === null) continue;
        const kept = { bytes: body.data, truncated: body.truncated };
        for (const { leg, direction } of body.placements) {
          if (direction === 'received') leg.recvBody = kept;
          else leg.sentBody = kept;
        }
      }
    }
    return this.options.payloads?.store(transaction, bodies) ?? undefined;
  }

  /** A body ready to store; null when it cannot be stored (its placements say why). */
  #body(capture: PayloadCapture, placements: Placement[]): BodyToStore | null | Promise<BodyToStore | null> {
    capture.seal();
    const settled = capture.held();
    if (settled === null) {
      return capture.fileWritten().then(
        (file) => ({ placements, data: null, file, bytes: capture.stored, truncated: capture.truncated }),
        (error: Error) => {
          this.options.onError('payload store', error);
          setOutcome(placements, 'write-failed');
          return null;
        },
      );
    }
    const raw = settled.length === 1 ? (settled[0] as Buffer) : Buffer.concat(settled);
    capture.release();
    const { redactor } = this.options;
    const toStore = (data: Buffer, truncated: boolean): BodyToStore => ({ placements, data, file: null, bytes: data.length, truncated });
    if (!redactor.appliesToBody(capture.contentType)) return toStore(raw, capture.truncated);
    const encoding = capture.contentEncoding.trim().toLowerCase();
    if (encoding === '' || encoding === 'identity') return toStore(redactor.body(capture.contentType, raw), capture.truncated);
    return decodeBody(raw, encoding, capture.limit).then((decoded) => {
      if (decoded === null) {
        const error = new Error(`a ${capture.contentType} body with Content-Encoding "${capture.contentEncoding}" was not stored: it could not be decoded to redact it`);
        this.options.onError('payload store', Object.assign(error, { code: 'PAYLOAD_UNDECODABLE' }));
        setOutcome(placements, 'undecodable');
        return null;
      }
      return toStore(redactor.body(capture.contentType, decoded.body), capture.truncated || decoded.truncated);
    });
  }

  /**
   * Finishes what is pending: bodies being stored get up to 5 s, then the payload store writes out
   * what it took (or reports it lost) and closes, the last records go to the consumers, and every
   * consumer closes.
   */
  async close(): Promise<void> {
    this.#flush();
    if (this.#settling > 0) {
      let timer: NodeJS.Timeout | undefined;
      await Promise.race([
        new Promise<void>((resolve) => (this.#idle = resolve)),
        new Promise<void>((resolve) => (timer = setTimeout(resolve, CLOSE_TIMEOUT_MS))),
      ]);
      clearTimeout(timer);
    }
    // A store that closes fails what it still holds, which settles the transactions waiting for it.
    await this.options.payloads?.close();
    if (this.#settling > 0) this.options.onError('pipeline', new Error(`${this.#settling} transaction(s) whose bodies were still being stored were not recorded`));
    if (this.#settled.length > 0) {
      this.#deliver(this.#settled);
      this.#settled = [];
    }
    await Promise.all(
      this.options.consumers.map((consumer) => consumer.close().catch((error: Error) => this.options.onError(consumer.name, error))),
    );
  }
}
