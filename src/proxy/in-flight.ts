import type { ServerResponse } from 'node:http';

/**
 * Counts the requests in flight so shutdown can wait for them, and ends what outlives the wait.
 * A counter, not a collection of requests: entering every request into a long-lived collection
 * kept its objects alive through garbage collections (three times the full collections measured).
 */
export class InFlight {
  count = 0;
  /** Set when shutdown begins: responses from then on close their connections. */
  draining = false;
  /** Set once shutdown stops waiting: an exchange that closes from then on was cut by the gateway. */
  cutting = false;
  /** Open upgraded connections (WebSockets), which the HTTP server no longer tracks. */
  readonly #upgraded = new Set<() => void>();
  #idle: (() => void) | null = null;

  /** Call before a response head is written: while the gateway shuts down, every answer closes its connection. */
  closeWhileDraining(response: ServerResponse): void {
    if (this.draining) response.shouldKeepAlive = false;
  }

  enter(): void {
    this.count++;
  }

  leave(): void {
    if (--this.count === 0 && this.#idle !== null) this.#idle();
  }

  /** Registers how to cut an upgraded connection; returns the call that forgets it. */
  holdUpgraded(cut: () => void): () => void {
    this.#upgraded.add(cut);
    return () => this.#upgraded.delete(cut);
  }

  idle(timeoutMs: number): Promise<boolean> {
    if (this.count === 0) return Promise.resolve(true);
    return new Promise((resolve) => {
      const timer = setTimeout(() => resolve(false), timeoutMs);
      this.#idle = () => {
        clearTimeout(timer);
        resolve(true);
      };
    });
  }

  /** Ends everything still open: `closeConnections` ends the HTTP exchanges, then each upgraded connection is cut. */
  cutAll(closeConnections: () => void): void {
    this.cutting = true;
    closeConnections();
    for (const cut of this.#upgraded) cut();
  }
}
