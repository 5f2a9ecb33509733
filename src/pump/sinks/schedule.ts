import type { SinkContext } from '../sink.js';

/**
 * Background work a sink runs every `intervalMs` (expiry, roll-ups): the next run is timed from the
 * end of the last, so two never overlap; a failed run is reported and the schedule goes on.
 */
export class Schedule {
  #timer: NodeJS.Timeout | null = null;
  #running: Promise<void> = Promise.resolve();
  #started = false;

  constructor(
    readonly intervalMs: number,
    readonly work: () => Promise<void>,
    readonly onError: (error: Error) => void,
  ) {}

  /** Starts the schedule, unless it runs already; the first run comes after one interval. */
  start(): void {
    if (this.#started) return;
    this.#started = true;
    this.#next();
  }

  /** No further run; resolves once the one under way, if any, has ended. */
  async stop(): Promise<void> {
    this.#started = false;
    if (this.#timer) clearTimeout(this.#timer);
    this.#timer = null;
    await this.#running;
  }

  #next(): void {
    this.#timer = setTimeout(() => {
      this.#timer = null;
      this.#running = this.work()
        .catch((error: unknown) => this.onError(error as Error))
        .then(() => {
          if (this.#started) this.#next();
        });
    }, this.intervalMs).unref();
  }
}

/** Deletes the rows past their `expire_at` every `intervalSec`, saying what it deleted or why it could not. */
export function expirySchedule(context: SinkContext, table: string, intervalSec: number, expire: () => Promise<number>): Schedule {
  return new Schedule(
    intervalSec * 1000,
    async () => {
      const deleted = await expire();
      if (deleted > 0) context.notify(`${context.name}: deleted ${deleted} expired rows from ${table}`);
    },
    (error) => context.notify(`${context.name}: deleting expired rows failed, trying again in ${intervalSec} s: ${error.message}`),
  );
}
