import { Pool } from 'undici';

export interface Target {
  /** scheme://host:port */
  origin: string;
  hostname: string;
  port: number;
  /** Path prefix of the target URL, without a trailing slash. */
  basePath: string;
  pool: Pool;
  /** Epoch ms until which this target is skipped after a connection failure. */
  downUntil: number;
}

/** One keep-alive pool per back-end origin, shared by every API that uses it. */
export class PoolRegistry {
  readonly #pools = new Map<string, Pool>();

  constructor(readonly maxConnections: number) {}

  get(origin: string, connectTimeoutMs: number): Pool {
    const key = `${origin} ${connectTimeoutMs}`;
    let pool = this.#pools.get(key);
    if (pool === undefined) {
      pool = new Pool(origin, {
        connections: this.maxConnections,
        pipelining: 1,
        keepAliveTimeout: 30_000,
        connect: { timeout: connectTimeoutMs },
      });
      this.#pools.set(key, pool);
    }
    return pool;
  }

  async close(): Promise<void> {
    await Promise.all([...this.#pools.values()].map((pool) => pool.close()));
  }
}

/** The back ends of one API, taken in turn; a target that failed to connect sits out a while. */
export class TargetSet {
  readonly targets: Target[];
  #next = 0;

  constructor(
    urls: readonly string[],
    pools: PoolRegistry,
    connectTimeoutMs: number,
    readonly cooldownMs: number,
  ) {
    this.targets = urls.map((text) => {
      const url = new URL(text);
      return {
        origin: url.origin,
        hostname: url.hostname,
        port: Number(url.port || (url.protocol === 'https:' ? 443 : 80)),
        basePath: url.pathname.endsWith('/') ? url.pathname.slice(0, -1) : url.pathname,
        pool: pools.get(url.origin, connectTimeoutMs),
        downUntil: 0,
      };
    });
  }

  pick(now: number): Target {
    const count = this.targets.length;
    for (let tried = 0; tried < count; tried++) {
      const target = this.targets[this.#next] as Target;
      this.#next = (this.#next + 1) % count;
      if (target.downUntil <= now) return target;
    }
    // Every target is cooling down: try the next one anyway rather than fail without trying.
    const target = this.targets[this.#next] as Target;
    this.#next = (this.#next + 1) % count;
    return target;
  }

  markDown(target: Target, now: number): void {
    target.downUntil = now + this.cooldownMs;
  }
}
