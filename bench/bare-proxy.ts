// The plain, idiomatic undici reverse proxy: the baseline Tollgate is measured against.
import { createServer } from 'node:http';
import { Pool } from 'undici';
import { proxyArgs } from './server-args.js';

const HOP_BY_HOP = new Set([
  'connection',
  'keep-alive',
  'proxy-authenticate',
  'proxy-authorization',
  'proxy-connection',
  'te',
  'trailer',
  'transfer-encoding',
  'upgrade',
]);

type HeaderMap = Record<string, string | string[]>;

function endToEnd(headers: Partial<HeaderMap>): HeaderMap {
  const named = String(headers.connection ?? '')
    .split(',')
    .map((name) => name.trim().toLowerCase());
  const kept: HeaderMap = {};
  for (const [name, value] of Object.entries(headers)) {
    if (value !== undefined && !HOP_BY_HOP.has(name) && !named.includes(name)) kept[name] = value;
  }
  return kept;
}

const { port, target } = proxyArgs();
const pool = new Pool(target, { connections: 128 });

const server = createServer((req, res) => {
  const hasBody = req.headers['content-length'] !== undefined || req.headers['transfer-encoding'] !== undefined;
  pool
    .request({
      method: req.method ?? 'GET',
      path: req.url ?? '/',
      headers: endToEnd(req.headers),
      body: hasBody ? req : null,
    })
    .then(({ statusCode, headers, body }) => {
      res.writeHead(statusCode, endToEnd(headers));
      // Plain pipe: stream.pipeline() into a ServerResponse halves the throughput here.
      body.once('error', () => res.destroy());
      res.once('close', () => body.destroy());
      body.pipe(res);
    })
    .catch(() => {
      if (!res.headersSent) res.writeHead(502);
      res.end();
    });
});

server.listen(port, '127.0.0.1', () => process.stderr.write(`bare proxy listening on http://127.0.0.1:${port}\n`));
