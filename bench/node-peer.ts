// A typical Node gateway build: fastify + @fastify/reply-from, logger off.
import replyFrom from '@fastify/reply-from';
import Fastify from 'fastify';
import { proxyArgs } from './server-args.js';

const { port, target } = proxyArgs();
const app = Fastify({ logger: false });
await app.register(replyFrom, { base: target, undici: { connections: 128 } });
// Pass request bodies through as streams instead of parsing them, as @fastify/http-proxy does.
app.removeAllContentTypeParsers();
app.addContentTypeParser('*', (_request, payload, done) => done(null, payload));
app.all('/*', (request, reply) => reply.from(request.url));
await app.listen({ port, host: '127.0.0.1' });
process.stderr.write(`node peer listening on http://127.0.0.1:${port}\n`);
