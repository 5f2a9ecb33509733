import { z } from 'zod';
import type { AnalyticsRecord } from '../../../analytics/analytics-record.js';
import { epochNanos, statusClass, type HttpFormat } from './format.js';

/** The fields a stream may be labelled by: each has few values, so streams stay few (never ids, paths or addresses). */
const LABELS = {
  api: (record: AnalyticsRecord) => record.apiId ?? 'none',
  status_class: (record: AnalyticsRecord) => statusClass(record.status),
  method: (record: AnalyticsRecord) => record.method,
  outcome: (record: AnalyticsRecord) => record.outcome,
  instance: (record: AnalyticsRecord) => record.instance,
} as const;

type LabelName = keyof typeof LABELS;

const LABEL_NAME = /^[a-zA-Z_][a-zA-Z0-9_]*$/;

export const lokiOptions = z.strictObject({
  type: z.literal('loki'),
  /** Labels taken from each record, from a bounded set. */
  labels: z.array(z.enum(Object.keys(LABELS) as [LabelName, ...LabelName[]])).default(['api', 'status_class']),
  /** Labels every stream carries, e.g. `{ job: tollgate }`. */
  staticLabels: z
    .record(z.string(), z.string().min(1))
    .superRefine((labels, context) => {
      for (const name of Object.keys(labels)) {
        if (!LABEL_NAME.test(name)) context.addIssue({ code: 'custom', path: [name], message: 'expected a Loki label name: a letter or "_", then letters, digits or "_"' });
      }
    })
    .default({ job: 'tollgate' }),
});

/**
 * Loki's push API, `/loki/api/v1/push` (JSON): records grouped in streams by their label set,
 * each stream's entries in time order, each entry `[<epoch ns as a string>, <record as JSON>]`.
 * A record always gives the same stream, timestamp and line, which Loki takes for a duplicate
 * (dropped at ingest when it follows the same entry, collapsed at query time): a record delivered
 * twice shows once.
 */
export function lokiFormat(options: z.infer<typeof lokiOptions>): HttpFormat {
  return {
    path: '/loki/api/v1/push',
    contentType: 'application/json',
    headers: {},
    encode: (records) => {
      const streams = new Map<string, { stream: Record<string, string>; entries: AnalyticsRecord[] }>();
      for (const record of records) {
        const stream: Record<string, string> = { ...options.staticLabels };
        for (const label of options.labels) stream[label] = LABELS[label](record);
        const key = JSON.stringify(stream);
        const held = streams.get(key);
        if (held) held.entries.push(record);
        else streams.set(key, { stream, entries: [record] });
      }
      return JSON.stringify({
        streams: [...streams.values()].map(({ stream, entries }) => ({
          stream,
          values: entries.sort((a, b) => a.timestamp - b.timestamp).map((record) => [epochNanos(record.timestamp), JSON.stringify(record)]),
        })),
      });
    },
  };
}
