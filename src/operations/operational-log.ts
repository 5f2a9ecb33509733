import type { TraceLevel } from '../traffic-log/event-formatter.js';

/** Where operational messages go besides standard error: the event log's trace lines. */
export interface TraceSink {
  trace(level: TraceLevel, message: string): void;
}

/**
 * The gateway's operational messages (start, stop, write failures, drops): always on standard
 * error, and as `trace` lines in the event log while it is open.
 */
export class OperationalLog {
  #sinks: TraceSink[] = [];

  constructor(readonly toStderr: (message: string) => void) {}

  attach(sink: TraceSink): void {
    this.#sinks.push(sink);
  }

  /** Stops writing to `sink` (it is closing); messages still reach standard error. */
  detach(sink: TraceSink): void {
    this.#sinks = this.#sinks.filter((attached) => attached !== sink);
  }

  readonly info = (message: string): void => this.#emit('INFO', message);

  readonly error = (message: string): void => this.#emit('ERROR', message);

  #emit(level: TraceLevel, message: string): void {
    this.toStderr(message);
    for (const sink of this.#sinks) sink.trace(level, message);
  }
}
