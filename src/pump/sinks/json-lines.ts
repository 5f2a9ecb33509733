import type { AnalyticsRecord } from '../../analytics/analytics-record.js';
import { AppendFile, type AppendFileOptions } from '../../storage/append-file.js';
import { RetryableError, type RejectedRecord, type Sink } from '../sink.js';

/** Records as JSON lines, appended to a file or a descriptor; a write resolves once its lines are in the file. */
export class JsonLinesSink implements Sink {
  #file: AppendFile | null = null;

  constructor(readonly target: () => AppendFileOptions) {}

  async open(): Promise<void> {
    this.#file ??= new AppendFile(this.target());
  }

  write(records: readonly AnalyticsRecord[]): Promise<RejectedRecord[]> {
    let text = '';
    const cuts: number[] = [];
    let bytes = 0;
    for (const record of records) {
      const line = `${JSON.stringify(record)}\n`;
      text += line;
      bytes += Buffer.byteLength(line);
      cuts.push(bytes);
    }
    const file = this.#file;
    if (file === null) return Promise.reject(new RetryableError('not open'));
    return new Promise((resolve, reject) => {
      const accepted = file.append(Buffer.from(text), {
        cuts,
        landed: (landing) => (landing === null ? reject(new RetryableError(`${file.path}: the lines could not be written`)) : resolve([])),
      });
      if (!accepted) reject(new RetryableError(`${file.path} takes no more lines for now: too much waits for the disk`));
    });
  }

  async close(): Promise<void> {
    await this.#file?.close();
  }
}
