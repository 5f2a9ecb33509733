// A gateway's side of the embedded buffer, as its own process: appends `<batches>` batches of
// `<records>` records to the spool `<path>`, one commit each, then prints the ids it wrote.
import { encodeBatch } from '../../src/analytics/codec.js';
import { Spool } from '../../src/buffer/spool.js';
import { analyticsRecords } from './analytics-records.js';

const [path, batches, records] = process.argv.slice(2);
const spool = new Spool(path as string);
const ids: string[] = [];
for (let i = 0; i < Number(batches); i++) {
  const batch = analyticsRecords(Number(records));
  spool.append([{ data: encodeBatch(batch), records: batch.length }]);
  ids.push(...batch.map((record) => record.id));
}
spool.close();
process.stdout.write(`${JSON.stringify(ids)}\n`);
