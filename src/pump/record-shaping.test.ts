import { describe, expect, it } from 'vitest';
import { analyticsRecord } from '../../test/support/analytics-records.js';
import { recordShaper, type ShapingOptions } from './record-shaping.js';

const none: ShapingOptions = { apiIds: [], skipApiIds: [], statusCodes: [], skipStatusCodes: [], omitPayloads: false, maxRecordBytes: 0, dropFields: [] };

describe('what a sink takes of a batch', () => {
  const records = [
    analyticsRecord({ apiId: 'petstore', status: 200 }),
    analyticsRecord({ apiId: 'petstore', status: 500 }),
    analyticsRecord({ apiId: 'billing', status: 200 }),
    analyticsRecord({ apiId: null, status: 404 }),
  ];
  const kept = (options: Partial<ShapingOptions>): [string | null, number][] =>
    recordShaper({ ...none, ...options })(records).kept.map((record) => [record.apiId, record.status]);

  it('keeps every record, unchanged, without filter or shaping', () => {
    const shaped = recordShaper(none)(records);
    expect(shaped).toEqual({ kept: records, filtered: 0 });
    expect(shaped.kept[0]).toBe(records[0]);
  });

  it('filters by API (apiIds, skipApiIds) and status (statusCodes, skipStatusCodes), counting what it left out', () => {
    expect(kept({ apiIds: ['petstore'] })).toEqual([
      ['petstore', 200],
      ['petstore', 500],
    ]);
    expect(kept({ skipApiIds: ['petstore'] })).toEqual([
      ['billing', 200],
      [null, 404],
    ]);
    expect(kept({ statusCodes: [200, 404] })).toEqual([
      ['petstore', 200],
      ['billing', 200],
      [null, 404],
    ]);
    expect(kept({ skipStatusCodes: [200] })).toEqual([
      ['petstore', 500],
      [null, 404],
    ]);
    expect(kept({ apiIds: ['petstore'], skipStatusCodes: [500] })).toEqual([['petstore', 200]]);
    expect(recordShaper({ ...none, apiIds: ['billing'] })(records).filtered).toBe(3);
  });

  it('omitPayloads leaves out header blocks, payload links and bodies of every leg, without changing the record other sinks get', () => {
    const [record] = records;
    const [shaped] = recordShaper({ ...none, omitPayloads: true })([record!]).kept;
    for (const leg of shaped!.legs) {
      for (const message of [leg.received, leg.sent]) expect(message).toMatchObject({ headers: null, payload: null, body: null, bodyEncoding: null });
    }
    expect(record!.legs[0]!.sent.body).toBe('{"id":1,"name":"Rex"}');
    expect(record!.legs[0]!.sent.headers).not.toBeNull();
  });

  it('maxRecordBytes takes header blocks and bodies out of a larger record only, keeping its payload links', () => {
    const big = analyticsRecord();
    big.legs[1]!.sent.body = 'x'.repeat(5_000);
    const small = analyticsRecord();
    const [shapedBig, shapedSmall] = recordShaper({ ...none, maxRecordBytes: 4_000 })([big, small]).kept;
    expect(shapedBig!.legs[1]!.sent).toMatchObject({ headers: null, body: null, payload: 'file:///payloads/x.bin' });
    expect(Buffer.byteLength(JSON.stringify(shapedBig))).toBeLessThan(4_000);
    expect(shapedSmall).toBe(small);
  });

  it('dropFields leaves out top-level fields', () => {
    const [shaped] = recordShaper({ ...none, dropFields: ['userAgent', 'clientAddr'] })([records[0]!]).kept;
    expect(shaped).not.toHaveProperty('userAgent');
    expect(shaped).not.toHaveProperty('clientAddr');
    expect(shaped).toHaveProperty('id', records[0]!.id);
    expect(records[0]).toHaveProperty('userAgent', 'test');
  });
});
