import { z } from 'zod';
import type { AnalyticsRecord } from '../../../analytics/analytics-record.js';
import { RetryableError } from '../../sink.js';
import type { HttpFormat, RecordOutcomes } from './format.js';

export const elasticsearchOptions = z.strictObject({
  type: z.literal('elasticsearch'),
  /** The index (or data stream); `{yyyy}`, `{MM}`, `{dd}` take the record's UTC date, so a record redelivered lands in the same index. */
  index: z
    .string()
    .refine((index) => /^[a-z0-9][a-z0-9._+-]{0,199}$/.test(index.replace(/\{(yyyy|MM|dd)\}/g, '0')), {
      error: 'expected a lower-case index name (letters, digits, ".", "_", "+", "-"), optionally with {yyyy}, {MM}, {dd}',
    })
    .default('tollgate-records'),
});

interface BulkItem {
  status?: unknown;
  error?: { type?: unknown; reason?: unknown } | null;
}

const pad = (value: number): string => String(value).padStart(2, '0');

/** An item status the receiver may accept later: rate limited, or a shard that is not ready. */
const retryable = (status: number): boolean => status === 429 || status >= 500;

/**
 * Elasticsearch's (and OpenSearch's) `_bulk` API: a `create` action with `_id` = record id per
 * record, so a record delivered twice is refused as a version conflict (409), which counts as
 * delivered. The answer is read item by item: `errors: true` with a 200 is not success.
 */
export function elasticsearchFormat(options: z.infer<typeof elasticsearchOptions>): HttpFormat {
  const indexOf = (record: AnalyticsRecord): string =>
    options.index.replaceAll('{yyyy}', String(record.year)).replaceAll('{MM}', pad(record.month)).replaceAll('{dd}', pad(record.day));
  return {
    path: '/_bulk',
    contentType: 'application/x-ndjson',
    headers: {},
    encode: (records) => {
      let body = '';
      for (const record of records) {
        body += `${JSON.stringify({ create: { _index: indexOf(record), _id: record.id } })}\n`;
        body += `${JSON.stringify({ '@timestamp': new Date(record.timestamp).toISOString(), ...record })}\n`;
      }
      return body;
    },
    read: (records, answer) => readBulkAnswer(records, answer.body),
  };
}

function readBulkAnswer(records: readonly AnalyticsRecord[], body: string): RecordOutcomes {
  let items: unknown;
  try {
    items = (JSON.parse(body) as { items?: unknown }).items;
  } catch {
    throw new RetryableError(`the _bulk answer is not JSON: ${body.slice(0, 200)}`);
  }
  if (!Array.isArray(items) || items.length !== records.length) {
    throw new RetryableError(`the _bulk answer names ${Array.isArray(items) ? items.length : 'no'} items for ${records.length} records`);
  }
  const outcomes: RecordOutcomes = { retry: [], rejected: [] };
  items.forEach((item: Record<string, BulkItem | undefined>, i) => {
    const record = records[i] as AnalyticsRecord;
    const result = item.create ?? Object.values(item)[0];
    const status = typeof result?.status === 'number' ? result.status : 0;
    // 409: a document with this id is there already (delivered before): that is what redelivery should do.
    if ((status >= 200 && status < 300) || status === 409) return;
    const reason = `Elasticsearch item ${status}: ${String(result?.error?.type ?? 'error')}: ${String(result?.error?.reason ?? 'no reason given')}`;
    if (retryable(status) || status === 0) outcomes.retry.push({ record, reason });
    else outcomes.rejected.push({ record, reason });
  });
  return outcomes;
}
