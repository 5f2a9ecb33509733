import { expect } from 'vitest';
import type { AnalyticsRecord } from '../../src/analytics/analytics-record.js';
import { RetryableError, type Sink } from '../../src/pump/sink.js';
import { delay } from './gateway-process.js';

/** What a runner does with a batch: writes it until it is in, retrying what may pass, for at most `timeoutMs`; the retried errors are kept in `retried`. */
export async function writeUntilIn(sink: Sink, records: readonly AnalyticsRecord[], retried: Error[] = [], timeoutMs = 20_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    try {
      expect(await sink.write(records)).toEqual([]);
      return;
    } catch (error) {
      if (!(error instanceof RetryableError)) throw error;
      retried.push(error);
      if (Date.now() > deadline) throw new Error(`the batch was still not written after ${timeoutMs} ms of retries: ${error.message}`);
      await delay(50);
    }
  }
}
