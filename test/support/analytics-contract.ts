import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Ajv2020 } from 'ajv/dist/2020.js';
import type { AnalyticsRecord } from '../../src/analytics/analytics-record.js';
import { decodeBatch } from '../../src/analytics/codec.js';
import { Spool, SPOOL_FILE } from '../../src/buffer/spool.js';

const SCHEMA_FILE = fileURLToPath(new URL('../../schemas/analytics-record.schema.json', import.meta.url));
const ajv = new Ajv2020({ allErrors: true, strict: true, allowUnionTypes: true });
const validate = ajv.compile(JSON.parse(readFileSync(SCHEMA_FILE, 'utf8')));

/** Problems of records against the published schema, one line each; [] when all keep it. */
export function analyticsRecordProblems(records: readonly unknown[]): string[] {
  return records.flatMap((record, index) =>
    validate(record) ? [] : (validate.errors ?? []).map((error) => `record ${index}: ${error.instancePath || '/'} ${error.message ?? ''} ${JSON.stringify(error.params)}`),
  );
}

/** Every record held by the spools in `directory` (as a pump would read them), oldest first per spool. */
export function spooledRecords(directory: string): AnalyticsRecord[] {
  const records: AnalyticsRecord[] = [];
  for (const file of readdirSync(directory).filter((name) => SPOOL_FILE.test(name))) {
    const spool = new Spool(join(directory, file));
    try {
      for (let after = 0; ; ) {
        const batches = spool.read(after, 100);
        if (batches.length === 0) break;
        for (const batch of batches) records.push(...decodeBatch(batch.data));
        after = (batches.at(-1) as { id: number }).id;
      }
    } finally {
      spool.close();
    }
  }
  return records;
}

/** How often each id occurs. */
export function idCounts(records: readonly { id: string }[]): Map<string, number> {
  const counts = new Map<string, number>();
  for (const { id } of records) counts.set(id, (counts.get(id) ?? 0) + 1);
  return counts;
}
