import { addRecord, type Aggregate, type AggregatedRecord, recordPoint, emptyAggregate, mergeAggregate } from './aggregate.js';
import { type AggregateKey, bucketStart, type BucketSize, dimensionsOf, keyText } from './aggregate-keys.js';

/**
 * Aggregates by key, as records or a roll-up build them before they are merged into a store.
 * Bounded by what it is given: one page of records or of a roll-up.
 */
export class AggregateSet {
  readonly #entries = new Map<string, { key: AggregateKey; aggregate: Aggregate }>();

  get size(): number {
    return this.#entries.size;
  }

  /** Counts the record in its minute, once per dimension value. */
  addRecord(record: AggregatedRecord, trackAllPaths: boolean): void {
    const bucket = bucketStart(record.timestamp, 'minute');
    const point = recordPoint(record);
    for (const { dimension, value } of dimensionsOf(record, trackAllPaths)) {
      const aggregate = this.#at({ bucket, size: 'minute', dimension, value });
      addRecord(aggregate, record, dimension === 'apiKey' ? (record.apiKeyAlias ?? null) : null, point);
    }
  }

  /** Merges an aggregate into the one at `key`. */
  merge(key: AggregateKey, aggregate: Aggregate): void {
    mergeAggregate(this.#at(key), aggregate);
  }

  /** Merges an aggregate of a smaller bucket into the bucket of `size` that holds it. */
  rollUp(key: AggregateKey, aggregate: Aggregate, size: BucketSize): void {
    this.merge({ ...key, bucket: bucketStart(key.bucket, size), size }, aggregate);
  }

  entries(): IterableIterator<{ key: AggregateKey; aggregate: Aggregate }> {
    return this.#entries.values();
  }

  #at(key: AggregateKey): Aggregate {
    const text = keyText(key);
    let entry = this.#entries.get(text);
    if (entry === undefined) {
      entry = { key, aggregate: emptyAggregate() };
      this.#entries.set(text, entry);
    }
    return entry.aggregate;
  }
}
