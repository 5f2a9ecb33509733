import type { IncomingHttpHeaders } from 'node:http';
import type { AnalyticsRecord } from '../../../analytics/analytics-record.js';
import type { RejectedRecord } from '../../sink.js';

/** What the receiver answered to one POST. */
export interface HttpAnswer {
  status: number;
  headers: IncomingHttpHeaders;
  body: string;
}

/** A 2xx answer read record by record: the records not named here were delivered. */
export interface RecordOutcomes {
  /** Records the receiver asks to be sent again (an item-level 429 or 5xx), with why. */
  retry: { record: AnalyticsRecord; reason: string }[];
  /** Records refused for good: they go to the dead letter. */
  rejected: RejectedRecord[];
  /** Something the operator should hear (a receiver that dropped records without naming them). */
  note?: string;
}

/** How one kind of receiver wants a batch: where, in what body, and how its answer is read. */
export interface HttpFormat {
  /** The documented endpoint, appended to the sink's url unless the url already ends with it; null: the url as given. */
  readonly path: string | null;
  readonly contentType: string;
  /** Headers the format needs (Splunk's token); their values are kept out of every message. */
  readonly headers: Readonly<Record<string, string>>;
  encode(records: readonly AnalyticsRecord[]): string;
  /** Reads a 2xx answer; without it a 2xx answer delivers the whole batch. */
  read?(records: readonly AnalyticsRecord[], answer: HttpAnswer): RecordOutcomes;
}

export const DELIVERED: RecordOutcomes = { retry: [], rejected: [] };

/** Epoch nanoseconds as the decimal string Loki and OTLP/JSON want (beyond 2^53: no number holds it). */
export function epochNanos(epochMs: number): string {
  const whole = Math.floor(epochMs);
  const fraction = Math.round((epochMs - whole) * 1e6);
  return (BigInt(whole) * 1_000_000n + BigInt(fraction)).toString();
}

/** `2xx`, `4xx`...: a label of five values at most. */
export function statusClass(status: number): string {
  return `${Math.floor(status / 100)}xx`;
}
