import { EventEmitter, once } from 'node:events';
import { createServer, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { busiestSpan, startAnsweredLoad } from './answered-load.js';
import { CONNECTIONS, POST_BODY } from './load.js';

describe('busiestSpan', () => {
  const at = (...times: number[]) => times.map((time, index) => ({ id: String(index), at: time }));

  it('counts the most answers that fit in one span, its ends included', () => {
    expect(busiestSpan(at(0, 100, 450, 500, 501, 1200), 500)).toBe(4);
    expect(busiestSpan(at(0, 600, 1200), 500)).toBe(1);
    expect(busiestSpan([], 500)).toBe(0);
  });
});

describe('startAnsweredLoad', () => {
  let server: Server | undefined;
  afterEach(async () => {
    server?.closeAllConnections();
    server?.close();
  });

  /** Answers POST /echo with a numbered correlation id once the body is in; `hold` keeps a response open. */
  async function listen(hold: (response: ServerResponse, id: number) => boolean) {
    const bodies: string[] = [];
    const requests = new EventEmitter();
    /** Resolves once `count` requests have come in. */
    const received = (count: number): Promise<void> =>
      new Promise((resolve) => {
        const check = (): void => {
          if (bodies.length < count) return;
          requests.off('request', check);
          resolve();
        };
        requests.on('request', check);
        check();
      });
    let next = 0;
    server = createServer((request, response) => {
      let body = '';
      request.on('data', (chunk: Buffer) => (body += chunk.toString()));
      request.on('end', () => {
        bodies.push(body);
        requests.emit('request');
        const id = next++;
        response.setHeader('X-Correlation-ID', `id-${id}`);
        if (hold(response, id)) response.writeHead(200, { 'content-length': '10' }).write('half');
        else response.end('ok');
      });
    });
    server.listen(0, '127.0.0.1');
    await once(server, 'listening');
    return { url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`, bodies, received };
  }

  it('notes the id of every response read whole, sends the 1 KB body on every connection, and stops', async () => {
    const { url, bodies, received } = await listen(() => false);
    const load = startAnsweredLoad(url);
    await received(500);
    const result = await load.stop();
    expect(result.answers.length).toBeGreaterThanOrEqual(500);
    expect(new Set(result.answers.map((answer) => answer.id)).size).toBe(result.answers.length);
    expect(result.answers.map((answer) => answer.at)).toEqual([...result.answers.map((answer) => answer.at)].sort((a, b) => a - b));
    expect(new Set(bodies)).toEqual(new Set([POST_BODY]));
    expect(POST_BODY.length).toBe(1024);
    expect(result).toMatchObject({ failed: 0, withoutId: 0, non200: 0 });
  });

  it('does not count a response cut before its last byte, as when the server is killed', async () => {
    const held: ServerResponse[] = [];
    const { url, received } = await listen((response, id) => id >= 100 && held.push(response) > 0);
    const load = startAnsweredLoad(url);
    // Every connection waits on a held response once 100 + CONNECTIONS requests came in.
    await received(100 + CONNECTIONS);
    const stopped = load.stop();
    for (const response of held) response.socket?.destroy();
    const result = await stopped;
    expect(result.answers.map((answer) => answer.id).sort()).toEqual(Array.from({ length: 100 }, (_, id) => `id-${id}`).sort());
    expect(result.failed).toBe(CONNECTIONS);
  });
});
