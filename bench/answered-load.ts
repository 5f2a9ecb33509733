import { performance } from 'node:perf_hooks';
import { Pool } from 'undici';
import { CONNECTIONS, POST_BODY, POST_CONTENT_TYPE } from './load.js';

/** A response the client read to its last byte. */
export interface Answer {
  /** Its `X-Correlation-ID`. */
  id: string;
  /** When its last byte was read (`performance.now()`). */
  at: number;
}

export interface AnsweredLoadResult {
  /** In the order they were read. */
  answers: Answer[];
  /** Requests that got no whole response: those in flight when the server died, and any other failure. */
  failed: number;
  /** Whole responses without a correlation id. */
  withoutId: number;
  /** Whole responses with a status other than 200. */
  non200: number;
}

export interface AnsweredLoad {
  /** Sends no further request; resolves once every request in flight has been answered or has failed. */
  stop(): Promise<AnsweredLoadResult>;
}

/**
 * The bench's 1 KB JSON POST to `/echo` over CONNECTIONS keep-alive connections, each sending
 * its next request when the last one was answered, noting the correlation id of every response
 * read whole: the transactions the clients know were answered.
 */
export function startAnsweredLoad(baseUrl: string): AnsweredLoad {
  const pool = new Pool(baseUrl, { connections: CONNECTIONS, pipelining: 1 });
  const result: AnsweredLoadResult = { answers: [], failed: 0, withoutId: 0, non200: 0 };
  let stopping = false;

  const client = async (): Promise<void> => {
    while (!stopping) {
      try {
        const response = await pool.request({ path: '/echo', method: 'POST', headers: { 'content-type': POST_CONTENT_TYPE }, body: POST_BODY });
        // Rejects when the connection breaks before the last byte (undici checks Content-Length).
        await response.body.arrayBuffer();
        const id = response.headers['x-correlation-id'];
        if (response.statusCode !== 200) result.non200++;
        if (typeof id === 'string') result.answers.push({ id, at: performance.now() });
        else result.withoutId++;
      } catch {
        result.failed++;
      }
    }
  };
  const clients = Array.from({ length: CONNECTIONS }, client);

  return {
    async stop() {
      stopping = true;
      await Promise.all(clients);
      await pool.destroy();
      return result;
    },
  };
}

/** The most of the answers (in the order read) that fall in any span of `spanMs`. */
export function busiestSpan(answers: readonly Answer[], spanMs: number): number {
  let most = 0;
  let first = 0;
  answers.forEach((answer, last) => {
    while (answer.at - (answers[first] as Answer).at > spanMs) first++;
    most = Math.max(most, last - first + 1);
  });
  return most;
}
