import type { AnalyticsLeg, AnalyticsMessage, AnalyticsRecord } from '../analytics/analytics-record.js';
import type { CommonSinkOptions } from './sink.js';

export type ShapingOptions = Pick<
  CommonSinkOptions,
  'apiIds' | 'skipApiIds' | 'statusCodes' | 'skipStatusCodes' | 'omitPayloads' | 'maxRecordBytes' | 'dropFields'
>;

export interface ShapedRecords {
  /** The records the sink takes, shaped; the input records are never changed (every sink sees the same ones). */
  kept: AnalyticsRecord[];
  /** How many the sink's filter left out. */
  filtered: number;
}

/** What one sink takes of a batch: its filter (`apiIds`, `skipApiIds`, `statusCodes`, `skipStatusCodes`), then its shaping. */
export function recordShaper(options: ShapingOptions): (records: readonly AnalyticsRecord[]) => ShapedRecords {
  const apiIds = new Set(options.apiIds);
  const skipApiIds = new Set(options.skipApiIds);
  const statusCodes = new Set(options.statusCodes);
  const skipStatusCodes = new Set(options.skipStatusCodes);
  const takes = (record: AnalyticsRecord): boolean =>
    (apiIds.size === 0 || (record.apiId !== null && apiIds.has(record.apiId))) &&
    !(record.apiId !== null && skipApiIds.has(record.apiId)) &&
    (statusCodes.size === 0 || statusCodes.has(record.status)) &&
    !skipStatusCodes.has(record.status);
  const shape = shaping(options);
  return (records) => {
    const kept: AnalyticsRecord[] = [];
    for (const record of records) if (takes(record)) kept.push(shape(record));
    return { kept, filtered: records.length - kept.length };
  };
}

function shaping({ omitPayloads, maxRecordBytes, dropFields }: ShapingOptions): (record: AnalyticsRecord) => AnalyticsRecord {
  const steps: ((record: AnalyticsRecord) => AnalyticsRecord)[] = [];
  if (omitPayloads) steps.push((record) => withMessages(record, withoutPayloads));
  if (maxRecordBytes > 0) steps.push((record) => (jsonBytes(record) > maxRecordBytes ? withMessages(record, withoutHeadersAndBodies) : record));
  if (dropFields.length > 0) {
    steps.push((record) => {
      const copy: Record<string, unknown> = { ...record };
      for (const field of dropFields) delete copy[field];
      return copy as unknown as AnalyticsRecord;
    });
  }
  return (record) => steps.reduce((shaped, step) => step(shaped), record);
}

/** The size `maxRecordBytes` caps: the record as a JSON text, the form stores receive. */
function jsonBytes(record: AnalyticsRecord): number {
  return Buffer.byteLength(JSON.stringify(record));
}

function withMessages(record: AnalyticsRecord, change: (message: AnalyticsMessage) => AnalyticsMessage): AnalyticsRecord {
  return { ...record, legs: record.legs.map((leg): AnalyticsLeg => ({ ...leg, received: change(leg.received), sent: change(leg.sent) })) };
}

function withoutPayloads(message: AnalyticsMessage): AnalyticsMessage {
  return { ...message, headers: null, payload: null, body: null, bodyEncoding: null };
}

function withoutHeadersAndBodies(message: AnalyticsMessage): AnalyticsMessage {
  return { ...message, headers: null, body: null, bodyEncoding: null };
}
