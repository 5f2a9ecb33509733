import { decodeBatch } from '../analytics/codec.js';
import type { DeadLetter } from './dead-letter.js';
import type { SinkRunner } from './sink-runner.js';

export interface ReplayedBatch {
  id: number;
  records: number;
}

/**
 * Delivers the batches a sink's dead letter held when the replay began through the sink's
 * runner, `inFlight` at a time, deleting each once the runner resolved it (its records written,
 * or put in the dead letter again as new batches, which this replay does not take again).
 */
export async function replayDeadLetter(deadLetter: DeadLetter, runner: SinkRunner, inFlight: number, replayed: (batch: ReplayedBatch) => void): Promise<ReplayedBatch[]> {
  let left = deadLetter.totals().batches;
  let afterId = 0;
  const done: ReplayedBatch[] = [];
  while (left > 0) {
    const page = deadLetter.read(afterId, Math.min(inFlight, left));
    if (page.length === 0) break;
    left -= page.length;
    afterId = (page.at(-1) as { id: number }).id;
    await Promise.all(
      page.map(async ({ id, data }) => {
        const records = decodeBatch(data);
        await runner.deliver(records);
        deadLetter.delete(id);
        const batch = { id, records: records.length };
        done.push(batch);
        replayed(batch);
      }),
    );
  }
  return done;
}
