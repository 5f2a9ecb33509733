import type { AnalyticsRecord } from '../../analytics/analytics-record.js';
import { AppendFile, type AppendFileOptions } from '../../storage/append-file.js';
import { RetryableError, type RejectedRecord, type Sink } from '../sink.js';

/** Records as JSON lines, appended to a file or a descriptor; a write resolves once its lines are in the file. */
export class JsonLinesSink implements Sink {
  #file: AppendFile | null = null;
  /** Writes appended whose lines are not in the file yet (the disk fails): the runner gave up waiting for them, and they may still land. */
  #waiting = 0;

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
    // Appending again while earlier lines wait would write them twice should the earlier ones land (a retry of the same records).
    if (this.#waiting > 0) return Promise.reject(new RetryableError(`${file.path}: earlier lines still wait for the disk`));
    return new Promise((resolve, reject) => {
      this.#waiting++;
      let accepted = false;
      try {
        accepted = file.append(Buffer.from(text), {
          cuts,
          landed: (landing) => {
            this.#waiting--;
            if (landing === null) reject(new RetryableError(`${file.path}: the lines could not be written`));
            else resolve([]);
          },
        });
      } finally {
        if (!accepted) this.#waiting--;
      }
      if (!accepted) reject(new RetryableError(`${file.path} takes no more lines for now: too much waits for the disk`));
    });
  }

  async close(): Promise<void> {
    await this.#file?.close();
  }
}
