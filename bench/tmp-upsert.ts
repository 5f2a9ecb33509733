import { randomBytes } from 'node:crypto';
import pg from 'pg';
import { PostgresAggregates } from '../src/pump/sinks/postgres-aggregates.js';
import { migrate } from '../src/pump/sinks/postgres-schema.js';
import { builtRecords } from '../test/support/built-records.js';
const admin = new pg.Client('postgres://postgres@127.0.0.1:5432/test'); await admin.connect();
const db = `tmp_${randomBytes(3).toString('hex')}`; await admin.query(`CREATE DATABASE ${db}`);
const c = new pg.Client(`postgres://postgres@127.0.0.1:5432/${db}`); await c.connect();
const agg = new PostgresAggregates('aggs', false);
await migrate(c, [agg.schema]);
const tmpl = builtRecords(2300, { headers: false }).map((record, i) => ({ ...record, timestamp: Date.UTC(2026, 10, 20, 12, 0, 0) + i * 10, apiId: `api-${i % 4}`, status: [200, 201, 404, 500][i % 4] as number, latencyTotal: 1 + ((i * 7919) % 2000) / 10, latencyUpstream: ((i * 7919) % 2000) / 11, apiKeyHash: `key-${i % 50}`, tags: [`tag-${i % 3}`] }));
const cols = 'time, api_id, normalised_path, tracked_endpoint, status, api_key_hash, api_key_alias, latency_total, latency_upstream, bytes_in, bytes_out, tags';
for (let pass = 0; pass < 6; pass++) {
  for (const r of tmpl) await c.query(`INSERT INTO aggs_pending (${cols}) VALUES (to_timestamp($1/1000.0),$2,$3,$4,$5,$6,$7,$8,$9,$10,$11,$12)`, [r.timestamp, r.apiId, r.normalisedPath, r.trackedEndpoint, r.status, r.apiKeyHash, r.apiKeyAlias, r.latencyTotal, r.latencyUpstream, r.bytesIn, r.bytesOut, JSON.stringify(r.tags)]);
  const orig = c.query.bind(c) as (...a: unknown[]) => Promise<unknown>;
  const times: string[] = [];
  (c as unknown as { query: unknown }).query = async (...a: unknown[]) => { const t = performance.now(); const r = await orig(...a); times.push(`${String(a[0]).slice(0, 20).replace(/\s+/g, ' ')}=${(performance.now() - t).toFixed(1)}`); return r; };
  const t = performance.now();
  const n = await agg.aggregatePending(c, 10000);
  console.log(pass, n, (performance.now() - t).toFixed(1), 'ms', times.join(' '));
  (c as unknown as { query: unknown }).query = orig;
}
const size = await c.query(`SELECT count(*), avg(octet_length(latency_sketch)) AS sk, pg_total_relation_size('aggs') AS rel FROM aggs`); console.log(size.rows);
const ex = await c.query(`EXPLAIN ANALYZE SELECT 1`); void ex;
await c.end(); await admin.query(`DROP DATABASE ${db} WITH (FORCE)`); await admin.end();
