import type pg from 'pg';
import { type Aggregate, emptyAggregate } from '../aggregates/aggregate.js';
import type { AggregateKey, BucketSize, Dimension } from '../aggregates/aggregate-keys.js';
import { AggregateSet } from '../aggregates/aggregate-set.js';
import { acceptBin, sketchKeyMultiplier } from '../aggregates/latency-sketch.js';

/** Where one pass lays out the pending rows it took, a row per record and dimension value; emptied at its commit. */
const EXPLODED = 'tollgate_aggregating';

/** A latency as aggregates count it: 0 for one missing, negative or not finite (as `acceptLatency`). */
const cleanLatency = (column: string): string => `CASE WHEN ${column} > 0 AND ${column} < 'Infinity'::float8 THEN ${column} ELSE 0 END`;

/**
 * Counts pending rows into minute aggregates inside PostgreSQL: each record's dimension values
 * (as `dimensionsOf` names them), then per bucket and value the counts, sums, extremes and the
 * DDSketch bins of both latencies (`ceil(ln(ms) * multiplier)`, the key of DDSketch's logarithmic mapping).
 * The pump then handles a row per bucket, value and occupied bin instead of one per record and
 * dimension: per record, the server's C does the work.
 */
export async function takePending(client: pg.ClientBase, pending: string, maxRows: number, trackAllPaths: boolean): Promise<{ taken: number; deltas: AggregateSet }> {
  await client.query(
    `CREATE TEMPORARY TABLE IF NOT EXISTS ${EXPLODED} (bucket timestamptz, dimension text, value text, alias text, status smallint,
      latency float8, upstream float8, bytes_in bigint, bytes_out bigint, time timestamptz) ON COMMIT DELETE ROWS`,
  );
  const taken = await client.query<{ taken: number }>(
    `WITH taken AS (DELETE FROM ${pending} WHERE ctid = ANY(ARRAY(SELECT ctid FROM ${pending} LIMIT $1)) RETURNING *),
     exploded AS (
       INSERT INTO ${EXPLODED}
       SELECT date_trunc('minute', t.time), d.dimension, d.value, CASE WHEN d.dimension = 'apiKey' THEN t.api_key_alias END, t.status,
         ${cleanLatency('t.latency_total')}, ${cleanLatency('t.latency_upstream')}, coalesce(t.bytes_in, 0), coalesce(t.bytes_out, 0), t.time
       FROM taken t CROSS JOIN LATERAL (
         SELECT 'total', ''
         UNION ALL SELECT 'status', t.status::text
         UNION ALL SELECT 'api', t.api_id
         UNION ALL SELECT 'api+normalisedPath', t.api_id || ' ' || t.normalised_path WHERE t.tracked_endpoint IS NOT NULL OR $2
         UNION ALL SELECT 'apiKey', t.api_key_hash
         UNION ALL SELECT DISTINCT 'tag', tag FROM jsonb_array_elements_text(CASE WHEN jsonb_typeof(t.tags) = 'array' THEN t.tags ELSE '[]' END) AS tag
       ) AS d(dimension, value)
       WHERE d.value IS NOT NULL
     )
     SELECT count(*)::int AS taken FROM taken`,
    [maxRows, trackAllPaths],
  );
  const deltas = new AggregateSet();
  const count = taken.rows[0]?.taken ?? 0;
  if (count === 0) return { taken: 0, deltas };
  const byKey = new Map<string, Aggregate>();
  const at = (row: GroupRow): Aggregate => {
    const text = `${row.bucket_ms}\u0000${row.dimension}\u0000${row.value}`;
    let aggregate = byKey.get(text);
    if (aggregate === undefined) {
      aggregate = emptyAggregate();
      byKey.set(text, aggregate);
      keys.set(text, { bucket: row.bucket_ms, size: 'minute' as BucketSize, dimension: row.dimension, value: row.value });
    }
    return aggregate;
  };
  const keys = new Map<string, AggregateKey>();
  const group = `(extract(epoch FROM bucket) * 1000)::float8 AS bucket_ms, dimension, value`;
  const summaries = await client.query<SummaryRow>(
    `SELECT ${group}, count(*)::int AS hits, count(*) FILTER (WHERE status < 400)::int AS success,
       sum(round(latency * 1000))::float8 AS latency_micros, min(latency) AS latency_min, max(latency) AS latency_max,
       sum(round(upstream * 1000))::float8 AS upstream_micros, min(upstream) AS upstream_min, max(upstream) AS upstream_max,
       sum(bytes_in)::float8 AS bytes_in, sum(bytes_out)::float8 AS bytes_out,
       (extract(epoch FROM min(time)) * 1000)::float8 AS first_ms, (extract(epoch FROM max(time)) * 1000)::float8 AS last_ms,
       (array_agg(alias ORDER BY time DESC) FILTER (WHERE alias IS NOT NULL))[1] AS alias
     FROM ${EXPLODED} GROUP BY 1, 2, 3`,
  );
  for (const row of summaries.rows) {
    const aggregate = at(row);
    aggregate.hits = row.hits;
    aggregate.success = row.success;
    aggregate.errors = row.hits - row.success;
    aggregate.latency.sumMicros = row.latency_micros;
    aggregate.latency.min = row.latency_min;
    aggregate.latency.max = row.latency_max;
    aggregate.upstream.sumMicros = row.upstream_micros;
    aggregate.upstream.min = row.upstream_min;
    aggregate.upstream.max = row.upstream_max;
    aggregate.bytesIn = row.bytes_in;
    aggregate.bytesOut = row.bytes_out;
    aggregate.firstSeen = row.first_ms;
    aggregate.lastSeen = row.last_ms;
    aggregate.alias = row.alias;
  }
  const statuses = await client.query<GroupRow & { status: number; n: number }>(`SELECT ${group}, status, count(*)::int AS n FROM ${EXPLODED} GROUP BY 1, 2, 3, 4`);
  for (const row of statuses.rows) at(row).statusCounts[String(row.status)] = row.n;
  const bins = await client.query<GroupRow & { upstream: boolean; key: number | null; n: number }>(
    `SELECT ${group}, false AS upstream, CASE WHEN latency > 0 THEN ceil(ln(latency) * $1)::int END AS key, count(*)::int AS n FROM ${EXPLODED} GROUP BY 1, 2, 3, 5
     UNION ALL
     SELECT ${group}, true, CASE WHEN upstream > 0 THEN ceil(ln(upstream) * $1)::int END, count(*)::int FROM ${EXPLODED} GROUP BY 1, 2, 3, 5`,
    [sketchKeyMultiplier()],
  );
  for (const row of bins.rows) {
    const aggregate = at(row);
    acceptBin(row.upstream ? aggregate.upstream : aggregate.latency, row.key, row.n);
  }
  for (const [text, aggregate] of byKey) deltas.merge(keys.get(text) as AggregateKey, aggregate);
  return { taken: count, deltas };
}

interface GroupRow {
  bucket_ms: number;
  dimension: Dimension;
  value: string;
}

interface SummaryRow extends GroupRow {
  hits: number;
  success: number;
  latency_micros: number;
  latency_min: number;
  latency_max: number;
  upstream_micros: number;
  upstream_min: number;
  upstream_max: number;
  bytes_in: number;
  bytes_out: number;
  first_ms: number;
  last_ms: number;
  alias: string | null;
}
