import { resolve } from 'node:path';
import { z } from 'zod';
import { rollingNames } from '../../storage/file-naming.js';
import { defineSink } from '../sink.js';
import { JsonLinesSink } from './json-lines.js';

const MB = 1024 * 1024;

/** JSON lines in `<directory>/<name>.jsonl`, rolled like the traffic log to `<name>_<YYYY-MM-DD>-<n>.jsonl`. */
export const fileSink = defineSink({
  type: 'file',
  options: {
    directory: z.string().min(1).default('data/records'),
    maxFileSizeMb: z.number().positive().default(100),
  },
  create: (options, context) =>
    new JsonLinesSink(() => ({
      target: { naming: rollingNames(resolve(options.directory), context.name, '.jsonl'), maxBytes: options.maxFileSizeMb * MB },
      maxPendingBytes: 64 * MB,
      lines: true,
      // The pump deletes a batch from the buffer once it landed: it must survive a power loss by then.
      durable: true,
      events: { written: () => undefined, finished: () => undefined, error: (error) => context.notify(`${context.name}: ${error.message}`), info: context.notify },
    })),
});
