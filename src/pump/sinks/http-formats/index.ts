import { z } from 'zod';
import { elasticsearchFormat, elasticsearchOptions } from './elasticsearch.js';
import type { HttpFormat } from './format.js';
import { lokiFormat, lokiOptions } from './loki.js';
import { ndjsonFormat, ndjsonOptions } from './ndjson.js';
import { otlpFormat, otlpOptions } from './otlp.js';
import { splunkHecFormat, splunkHecOptions } from './splunk-hec.js';

/** The `format` of an http sink: a name (`format: loki`), or an object with its `type` and options. */
export const httpFormatOptions = z.preprocess(
  (value) => (typeof value === 'string' ? { type: value } : value),
  z.discriminatedUnion('type', [ndjsonOptions, elasticsearchOptions, splunkHecOptions, lokiOptions, otlpOptions]),
);

export type HttpFormatOptions = z.infer<typeof httpFormatOptions>;

export function httpFormat(options: HttpFormatOptions): HttpFormat {
  switch (options.type) {
    case 'ndjson':
      return ndjsonFormat();
    case 'elasticsearch':
      return elasticsearchFormat(options);
    case 'splunk-hec':
      return splunkHecFormat(options);
    case 'loki':
      return lokiFormat(options);
    case 'otlp':
      return otlpFormat(options);
  }
}
