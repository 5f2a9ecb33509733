interface Reported {
  at: number;
  repeats: number;
  /** The last message reported for this kind of error. */
  message: string;
}

/**
 * A failing disk fails every write: a repeated error is reported once per interval, with the
 * number of repeats since, instead of flooding standard error.
 */
export class ThrottledReporter {
  readonly #reported = new Map<string, Reported>();

  constructor(
    readonly notify: (message: string) => void,
    readonly intervalMs = 10_000,
  ) {}

  /**
   * A reporter for errors of one component, prefixed with its name. Errors with the same code
   * count as one kind: their messages differ by the paths and ids they name.
   */
  for(component: string): (error: Error) => void {
    return (error) => {
      const code = (error as NodeJS.ErrnoException).code;
      this.report(code === undefined ? `${component}: ${error.message}` : `${component} ${code}`, `${component}: ${error.message}`);
    };
  }

  /** Reports `message` unless a message of the same `kind` was reported less than the interval ago (then counts it). */
  report(kind: string, message: string): void {
    const now = Date.now();
    const last = this.#reported.get(kind);
    if (last !== undefined && now - last.at < this.intervalMs) {
      last.repeats++;
      return;
    }
    this.notify(last !== undefined && last.repeats > 0 ? `${message} (and ${last.repeats} more like it)` : message);
    this.#reported.set(kind, { at: now, repeats: 0, message });
  }

  /** Tells the repeats not reported yet (before the process ends). */
  flush(): void {
    for (const last of this.#reported.values()) {
      if (last.repeats > 0) this.notify(`${last.message}: ${last.repeats} more like it`);
      last.repeats = 0;
    }
  }
}
