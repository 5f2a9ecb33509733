import { describe, expect, it } from 'vitest';
import { HeldBytes } from './payload-capture.js';
import { pathNormaliser } from './path-normaliser.js';
import { RecordingPipeline, type RecordConsumer } from './pipeline.js';
import type { TransactionRecord } from './record.js';
import { RecordBuilder } from './record-builder.js';
import { Redactor } from './redactor.js';
import { Transaction } from './transaction.js';

class Collecting implements RecordConsumer {
  readonly records: TransactionRecord[] = [];
  dropped = 0;
  closed = false;
  constructor(readonly name: string) {}
  write(records: readonly TransactionRecord[]): void {
    this.records.push(...records);
  }
  async close(): Promise<void> {
    this.closed = true;
  }
}

class Throwing extends Collecting {
  override write(): void {
    throw new Error('this consumer is broken');
  }
}

function pipelineWith(consumers: RecordConsumer[], errors: string[]): RecordingPipeline {
  const redactor = new Redactor();
  return new RecordingPipeline({
    builder: new RecordBuilder(redactor, pathNormaliser({ uuids: true, ulids: true, numbers: true, patterns: [] })),
    redactor,
    payloads: null,
    recordBodies: false,
    maxPayloadBytes: 1024,
    heldBytes: new HeldBytes(1024),
    consumers,
    onError: (component, error) => errors.push(`${component}: ${error.message}`),
  });
}

function finished(id: string, uri: string): Transaction {
  const transaction = new Transaction(id, 'GET', uri, 'http');
  transaction.status = 200;
  transaction.endMono = transaction.startMono + 1;
  return transaction;
}

describe('the recording pipeline', () => {
  it('hands every consumer the records of a turn together, built once, redacted and normalised', async () => {
    const first = new Collecting('first');
    const second = new Collecting('second');
    const pipeline = pipelineWith([first, second], []);
    pipeline.finish(finished('a'.repeat(24), '/users/42?token=secret'));
    pipeline.finish(finished('b'.repeat(24), '/users/7'));
    await pipeline.close();
    expect(first.records.map((record) => [record.id.slice(0, 1), record.uri, record.normalisedPath])).toEqual([
      ['a', '/users/42?token=[REDACTED]', '/users/{id}'],
      ['b', '/users/7', '/users/{id}'],
    ]);
    // One record object per transaction, shared by the consumers.
    expect(second.records).toEqual(first.records);
    expect(second.records[0]).toBe(first.records[0]);
    expect([first.closed, second.closed]).toEqual([true, true]);
  });

  it('keeps delivering to the other consumers when one throws, and counts and reports the failure', async () => {
    const broken = new Throwing('broken');
    const healthy = new Collecting('healthy');
    const errors: string[] = [];
    const pipeline = pipelineWith([broken, healthy], errors);
    pipeline.finish(finished('c'.repeat(24), '/a'));
    await new Promise((resolve) => setImmediate(resolve));
    pipeline.finish(finished('d'.repeat(24), '/b'));
    await pipeline.close();
    expect(healthy.records.map((record) => record.path)).toEqual(['/a', '/b']);
    expect(pipeline.consumerFailures).toBe(2);
    expect(errors).toEqual(['broken: this consumer is broken', 'broken: this consumer is broken']);
    expect(broken.closed).toBe(true);
  });
});
