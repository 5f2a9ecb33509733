import { Packr } from 'msgpackr';
import type { AnalyticsRecord } from './analytics-record.js';

// Plain MessagePack (no msgpackr record extension), so any MessagePack reader of the Redis
// stream or the spool can decode a batch.
const packr = new Packr({ useRecords: false, moreTypes: false });

/** A batch of records as it travels through the buffers: one MessagePack array. */
export function encodeBatch(records: readonly AnalyticsRecord[]): Buffer {
  return packr.pack(records);
}

export function decodeBatch(data: Uint8Array): AnalyticsRecord[] {
  const decoded: unknown = packr.unpack(data);
  if (!Array.isArray(decoded)) throw new Error('not a batch of analytics records: the MessagePack value is not an array');
  return decoded as AnalyticsRecord[];
}
