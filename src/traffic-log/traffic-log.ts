import { resolve } from 'node:path';
import type { Config } from '../config/schema.js';
import type { TraceSink } from '../operations/operational-log.js';
import type { RecordConsumer } from '../recording/pipeline.js';
import type { TransactionRecord } from '../recording/record.js';
import { AppendFile, type AppendFileEvents } from '../storage/append-file.js';
import { rollingNames } from '../storage/file-naming.js';
import type { EventFormatter, TraceLevel } from './event-formatter.js';

const MB = 1024 * 1024;
/** Lines that may wait in memory for a slow or failing disk; past it, new lines are dropped and counted. */
const MAX_PENDING_BYTES = 64 * MB;

/**
 * The open traffic event log: the records of each turn encoded into one reused buffer and
 * appended in one write (cut only where the file rolls); operational messages as trace lines.
 */
export class TrafficLog implements RecordConsumer, TraceSink {
  readonly name = 'traffic log';
  dropped = 0;
  #buffer = Buffer.allocUnsafe(256 * 1024);
  #traces: string[] = [];

  constructor(
    readonly formatter: EventFormatter,
    readonly file: AppendFile,
    readonly onDrop: (error: Error) => void,
  ) {}

  write(records: readonly TransactionRecord[]): void {
    let bytes = 0;
    // Where each transaction's lines end: a file rolls only between transactions.
    const cuts: number[] = [];
    for (const record of records) {
      bytes = this.#encode(this.formatter.format(record), bytes);
      cuts.push(bytes);
    }
    if (this.file.append(this.#buffer.subarray(0, bytes), { cuts })) return;
    this.dropped += records.length;
    const error = new Error(`${records.length} transaction(s) dropped (${this.dropped} so far): the log is closed, or over ${MAX_PENDING_BYTES / MB} MiB of lines wait for the disk`);
    this.onDrop(Object.assign(error, { code: 'TRAFFIC_LOG_DROP' }));
  }

  /** Encodes `text` into the reused buffer at `at`; returns where it ends. */
  #encode(text: string, at: number): number {
    // UTF-8 takes at most three bytes per UTF-16 unit.
    const needed = at + text.length * 3;
    if (needed > this.#buffer.length) {
      const larger = Buffer.allocUnsafe(Math.max(this.#buffer.length * 2, needed));
      this.#buffer.copy(larger, 0, 0, at);
      this.#buffer = larger;
    }
    return at + this.#buffer.write(text, at);
  }

  /** Written after the current turn: a message about the log's own failure must not re-enter its write. */
  trace(level: TraceLevel, message: string): void {
    if (this.#traces.length === 0) setImmediate(this.#writeTraces);
    this.#traces.push(this.formatter.trace(level, message));
  }

  readonly #writeTraces = (): void => {
    const lines = this.#traces.join('');
    this.#traces = [];
    this.file.append(Buffer.from(lines));
  };

  reopen(): void {
    this.file.reopen();
  }

  close(): Promise<void> {
    if (this.#traces.length > 0) this.#writeTraces();
    return this.file.close();
  }
}

export interface TrafficLogOptions {
  config: Config['trafficLog'];
  group: string;
  instance: string;
  formatter: EventFormatter;
  events: AppendFileEvents;
  onDrop: (error: Error) => void;
}

/** The traffic log for `trafficLog.output`, or null when it is `none`. */
export function openTrafficLog({ config, group, instance, formatter, events, onDrop }: TrafficLogOptions): TrafficLog | null {
  if (config.output === 'none') return null;
  const target =
    config.output === 'stdout'
      ? { fd: 1, name: 'standard output' }
      : { naming: rollingNames(resolve(config.directory), `${group}_${instance}_traffic`, '.log'), maxBytes: config.maxFileSizeMb * MB };
  return new TrafficLog(formatter, new AppendFile({ target, maxPendingBytes: MAX_PENDING_BYTES, lines: true, events }), onDrop);
}
