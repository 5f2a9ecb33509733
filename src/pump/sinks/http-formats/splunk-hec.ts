import { z } from 'zod';
import type { HttpFormat } from './format.js';

export const splunkHecOptions = z.strictObject({
  type: z.literal('splunk-hec'),
  /** The HEC token, sent as `Authorization: Splunk <token>`. */
  token: z.string().min(1),
  source: z.string().min(1).default('tollgate'),
  sourcetype: z.string().min(1).default('_json'),
  /** Unset: the token's default index. */
  index: z.string().min(1).optional(),
  /** Unset: the gateway instance that recorded the transaction. */
  host: z.string().min(1).optional(),
});

/** Splunk's HTTP Event Collector, `/services/collector/event`: one event object per record, concatenated. */
export function splunkHecFormat(options: z.infer<typeof splunkHecOptions>): HttpFormat {
  return {
    path: '/services/collector/event',
    contentType: 'application/json',
    headers: { authorization: `Splunk ${options.token}` },
    encode: (records) => {
      let body = '';
      for (const record of records) {
        const event = {
          // Epoch seconds, milliseconds as decimals: what HEC reads.
          time: record.timestamp / 1000,
          host: options.host ?? record.instance,
          source: options.source,
          sourcetype: options.sourcetype,
          ...(options.index === undefined ? {} : { index: options.index }),
          event: record,
        };
        body += `${JSON.stringify(event)}\n`;
      }
      return body;
    },
  };
}
