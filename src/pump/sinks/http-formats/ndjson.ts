import { z } from 'zod';
import type { HttpFormat } from './format.js';

export const ndjsonOptions = z.strictObject({ type: z.literal('ndjson') });

/** One record per line, each line ended by `\n`: for any receiver that takes JSON lines (Vector, Fluent Bit, Logstash's http input). */
export function ndjsonFormat(): HttpFormat {
  return {
    path: null,
    contentType: 'application/x-ndjson',
    headers: {},
    encode: (records) => {
      let body = '';
      for (const record of records) body += `${JSON.stringify(record)}\n`;
      return body;
    },
  };
}
