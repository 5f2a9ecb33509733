interface Reported {
  at: number;
  repeats: number;
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

  /** A reporter for errors of one component, prefixed with its name. */
  for(component: string): (error: Error) => void {
    return (error) => this.#report(`${component}: ${error.message}`);
  }

  #report(message: string): void {
    const now = Date.now();
    const last = this.#reported.get(message);
    if (last !== undefined && now - last.at < this.intervalMs) {
      last.repeats++;
      return;
    }
    this.notify(last !== undefined && last.repeats > 0 ? `${message} (and ${last.repeats} more like it)` : message);
    this.#reported.set(message, { at: now, repeats: 0 });
  }

  /** Tells the repeats not reported yet (before the process ends). */
  flush(): void {
    for (const [message, last] of this.#reported) {
      if (last.repeats > 0) this.notify(`${message}: ${last.repeats} more like it`);
      last.repeats = 0;
    }
  }
}
