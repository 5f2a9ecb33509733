// autocannon ships no types; this covers only what bench/load.ts uses.
declare module 'autocannon' {
  interface Options {
    url: string;
    connections?: number;
    duration?: number;
    method?: string;
    body?: string;
    headers?: Record<string, string>;
  }

  interface Result {
    /** Seconds. */
    duration: number;
    errors: number;
    timeouts: number;
    non2xx: number;
    /** Milliseconds. */
    latency: { p50: number; p99: number };
    /** total: responses received, whatever their status. */
    requests: { total: number };
  }

  function autocannon(options: Options): PromiseLike<Result>;
  export default autocannon;
}
