import { resolve } from 'node:path';
import type { Config } from '../config/schema.js';
import type { TraceSink } from '../operations/operational-log.js';
import type { RecordConsumer } from '../recording/pipeline.js';
import type { TransactionRecord } from '../recording/record.js';
import { AppendFile, type AppendFileEvents } from '../storage/append-file.js';
import { rollingNames } from '../storage/file-naming.js';
import type { EventFormatter, TraceLevel } from './event-formatter.js';
import { JsonBytes } from './json-bytes.js';

const MB = 1024 * 1024;
/** Lines that may wait in memory for a slow or failing disk; past it, new lines are dropped and counted. */
const MAX_PENDING_BYTES = 64 * MB;

/**
 * The open traffic event log: the records of each turn rendered into one reused buffer and
 * appended in one write; operational messages as trace lines.
 */
export class TrafficLog implements RecordConsumer, TraceSink {
  readonly name = 'traffic log';
  dropped = 0;
  readonly #lines = new JsonBytes();
  readonly #traceLines = new JsonBytes(4096);
  #traces: [TraceLevel, string, number][] = [];

  constructor(
    readonly formatter: EventFormatter,
    readonly file: AppendFile,
    readonly onDrop: (error: Error) => void,
  ) {}

  write(records: readonly TransactionRecord[]): void {
    const lines = this.#lines;
    lines.reset();
    // The batch is cut where the file rolls, so a roll falls between transactions and each file
    // ends close to its size limit.
    const cuts: [end: number, records: number][] = [];
    let room = this.file.room;
    let chunkStart = 0;
    let chunkEnd = 0;
    let chunkRecords = 0;
    for (const record of records) {
      this.formatter.format(record, lines);
      if (lines.length - chunkStart > room) {
        if (chunkRecords > 0) {
          cuts.push([chunkEnd, chunkRecords]);
          chunkStart = chunkEnd;
          chunkRecords = 0;
        }
        // The file rolls before the lines from `chunkStart` on: they start a fresh one.
        room = this.file.maxBytes;
      }
      chunkEnd = lines.length;
      chunkRecords++;
    }
    const view = lines.view();
    let from = 0;
    for (const [cut, count] of cuts) {
      this.#append(view.subarray(from, cut), count);
      from = cut;
    }
    this.#append(from === 0 ? view : view.subarray(from), chunkRecords);
  }

  #append(lines: Buffer, transactions: number): void {
    if (this.file.append(lines)) return;
    this.dropped += transactions;
    this.onDrop(new Error(`over ${MAX_PENDING_BYTES / MB} MiB of lines wait for the disk: ${transactions} transaction(s) dropped (${this.dropped} so far)`));
  }

  /** Written after the current turn: a message about the log's own failure must not re-enter its write. */
  trace(level: TraceLevel, message: string): void {
    if (this.#traces.length === 0) setImmediate(this.#writeTraces);
    this.#traces.push([level, message, Date.now()]);
  }

  readonly #writeTraces = (): void => {
    const lines = this.#traceLines;
    lines.reset();
    for (const [level, message, at] of this.#traces) this.formatter.trace(level, message, lines, at);
    this.#traces = [];
    this.file.append(lines.view());
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
  return new TrafficLog(formatter, new AppendFile({ target, maxPendingBytes: MAX_PENDING_BYTES, events }), onDrop);
}
