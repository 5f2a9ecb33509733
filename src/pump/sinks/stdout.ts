import { defineSink } from '../sink.js';
import { JsonLinesSink } from './json-lines.js';

/** JSON lines on standard output. */
export const stdoutSink = defineSink({
  type: 'stdout',
  options: {},
  create: (_options, context) =>
    new JsonLinesSink(() => ({
      target: { fd: 1, name: 'standard output' },
      maxPendingBytes: 64 * 1024 * 1024,
      events: { written: () => undefined, finished: () => undefined, error: (error) => context.notify(`${context.name}: ${error.message}`), info: context.notify },
    })),
});
