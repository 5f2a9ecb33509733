import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { analyticsRecord } from '../../../test/support/analytics-records.js';
import { eventually } from '../../../test/support/gateway-process.js';
import { parseExposition, samplesOf, valueOf, type Exposition } from '../../../test/support/prometheus-text.js';
import { freePort } from '../../../test/support/redis-server.js';
import { encodeBatch } from '../../analytics/codec.js';
import { Spool } from '../../buffer/spool.js';
import { parseConfig } from '../../config/load.js';
import { Pump } from '../pump.js';
import { createSink, type SinkConfig } from './create-sink.js';
import { PrometheusSink } from './prometheus.js';
import { sinkConfigSchema } from './registry.js';
import { describeSinkContract } from './sink-suite.js';

let sinks: PrometheusSink[] = [];
let scratch = '';

beforeEach(async () => {
  scratch = await mkdtemp(join(tmpdir(), 'tollgate-prometheus-sink-'));
});

afterEach(async () => {
  for (const sink of sinks) await sink.close();
  sinks = [];
  await rm(scratch, { recursive: true, force: true });
});

/** The sink as the pump makes it from its configuration, on a port of its own. */
async function openSink(options: Record<string, unknown> = {}): Promise<PrometheusSink> {
  const config = sinkConfigSchema.parse({ type: 'prometheus', port: 0, ...options }) as SinkConfig;
  const sink = createSink(config, () => undefined) as PrometheusSink;
  sinks.push(sink);
  await sink.open();
  return sink;
}

async function scrape(url: string): Promise<Exposition> {
  const response = await fetch(url);
  expect(response.status).toBe(200);
  expect(response.headers.get('content-type')).toMatch(/^text\/plain; version=0\.0\.4/);
  return parseExposition(await response.text());
}

const backEndLeg = analyticsRecord().legs;
const gatewayOnly = backEndLeg.slice(0, 1);

describe('the prometheus sink', () => {
  it('counts requests, durations and bytes from the records, as scraped from /metrics', async () => {
    const sink = await openSink();
    const pets = { apiId: 'pets', method: 'GET', normalisedPath: '/pets/{id}' };
    await sink.write([
      analyticsRecord({ ...pets, status: 200, latencyTotal: 4, latencyUpstream: 3, bytesIn: 10, bytesOut: 100 }),
      analyticsRecord({ ...pets, status: 204, latencyTotal: 40, latencyUpstream: 30, bytesIn: 5, bytesOut: 0 }),
      analyticsRecord({ ...pets, status: 503, latencyTotal: 2_000, latencyUpstream: 1_999, bytesIn: 0, bytesOut: 9 }),
      analyticsRecord({ apiId: null, method: 'POST', normalisedPath: '/nowhere', status: 404, latencyTotal: 0.5, bytesIn: 3, bytesOut: 7, legs: gatewayOnly }),
    ]);
    const metrics = await scrape(sink.url as string);

    expect(metrics.types.get('tollgate_requests_total')).toBe('counter');
    expect(metrics.types.get('tollgate_request_duration_seconds')).toBe('histogram');
    const ok = { api: 'pets', method: 'GET', status_class: '2xx' };
    expect(valueOf(metrics, 'tollgate_requests_total', { ...ok, path: '/pets/{id}' })).toBe(2);
    expect(valueOf(metrics, 'tollgate_requests_total', { api: 'pets', status_class: '5xx', path: '/pets/{id}' })).toBe(1);
    expect(valueOf(metrics, 'tollgate_requests_total', { api: '', method: 'POST', status_class: '4xx', path: '/nowhere' })).toBe(1);
    expect(samplesOf(metrics, 'tollgate_requests_total')).toHaveLength(3);

    expect(valueOf(metrics, 'tollgate_request_duration_seconds_count', ok)).toBe(2);
    expect(valueOf(metrics, 'tollgate_request_duration_seconds_sum', ok)).toBeCloseTo(0.044, 9);
    expect(valueOf(metrics, 'tollgate_request_duration_seconds_bucket', { ...ok, le: '0.005' })).toBe(1);
    expect(valueOf(metrics, 'tollgate_request_duration_seconds_bucket', { ...ok, le: '0.05' })).toBe(2);
    expect(valueOf(metrics, 'tollgate_request_duration_seconds_bucket', { api: 'pets', status_class: '5xx', le: '1' })).toBe(0);
    expect(valueOf(metrics, 'tollgate_request_duration_seconds_bucket', { api: 'pets', status_class: '5xx', le: '2.5' })).toBe(1);
    expect(samplesOf(metrics, 'tollgate_request_duration_seconds_count').map((sample) => sample.labels.path)).toEqual([undefined, undefined, undefined]);

    expect(valueOf(metrics, 'tollgate_upstream_duration_seconds_sum', ok)).toBeCloseTo(0.033, 9);
    // The gateway answered the 404 itself: no back-end time to observe.
    expect(samplesOf(metrics, 'tollgate_upstream_duration_seconds_count', { status_class: '4xx' })).toEqual([]);

    expect(valueOf(metrics, 'tollgate_request_bytes_total', ok)).toBe(15);
    expect(valueOf(metrics, 'tollgate_response_bytes_total', ok)).toBe(100);
    expect(valueOf(metrics, 'tollgate_response_bytes_total', { status_class: '4xx' })).toBe(7);
    expect(valueOf(metrics, 'tollgate_prometheus_folded_records_total')).toBe(0);
  });

  it('folds the paths past maxSeries into path="other" and counts the records folded', async () => {
    const sink = await openSink({ maxSeries: 3 });
    const on = (path: string, status = 200) => analyticsRecord({ apiId: 'pets', normalisedPath: path, status });
    await sink.write([on('/a'), on('/b'), on('/a'), on('/c'), on('/d'), on('/e'), on('/a', 500), on('/b')]);
    const metrics = await scrape(sink.url as string);
    const series = samplesOf(metrics, 'tollgate_requests_total').map((sample) => [sample.labels.path, sample.labels.status_class, sample.value]);
    expect(series.sort()).toEqual(
      [
        ['/a', '2xx', 2],
        ['/b', '2xx', 2],
        ['/c', '2xx', 1],
        ['other', '2xx', 2],
        ['other', '5xx', 1],
      ].sort(),
    );
    expect(valueOf(metrics, 'tollgate_prometheus_folded_records_total')).toBe(3);
    // Durations have no path label: nothing is folded there.
    expect(valueOf(metrics, 'tollgate_request_duration_seconds_count', { status_class: '2xx' })).toBe(7);
  });

  it('serves its metrics on pump.health beside the pump\'s own when it has no port', async () => {
    const records = Array.from({ length: 30 }, (_, index) => analyticsRecord({ apiId: 'pets', status: index < 20 ? 200 : 502 }));
    new Spool(join(scratch, 'spool', 'gateway.spool')).append([{ data: encodeBatch(records), records: records.length }]);
    const config = parseConfig({
      analytics: { buffer: { type: 'embedded', directory: join(scratch, 'spool') } },
      pump: { deadLetterDirectory: join(scratch, 'dead-letter'), health: { port: 0 }, sinks: [{ type: 'prometheus', maxDelayMs: 20 }] },
    });
    const pump = await Pump.start(config, { notify: () => undefined });
    try {
      const metrics = await eventually(
        async () => {
          const scraped = await scrape(`${pump.healthUrl as string}/metrics`);
          return samplesOf(scraped, 'tollgate_requests_total').reduce((sum, sample) => sum + sample.value, 0) === 30 ? scraped : undefined;
        },
        10_000,
        'the records counted on pump.health',
      );
      expect(valueOf(metrics, 'tollgate_requests_total', { status_class: '5xx' })).toBe(10);
      expect(valueOf(metrics, 'tollgate_pump_records_read_total')).toBe(30);
    } finally {
      await pump.stop();
    }
  });

  it('refuses to start without pump.health when it has no port of its own, and two sinks whose metrics clash there', async () => {
    const base = { analytics: { buffer: { type: 'embedded', directory: join(scratch, 'spool') } } };
    const deadLetterDirectory = join(scratch, 'dead-letter');
    await expect(Pump.start(parseConfig({ ...base, pump: { deadLetterDirectory, sinks: [{ type: 'prometheus' }] } }), { notify: () => undefined })).rejects.toThrow(
      'pump.sinks.0.port: expected a port, or pump.health',
    );
    const twice = { deadLetterDirectory, health: { port: 0 }, sinks: [{ type: 'prometheus' }, { type: 'prometheus', name: 'second' }] };
    await expect(Pump.start(parseConfig({ ...base, pump: twice }), { notify: () => undefined })).rejects.toThrow('clash');
  });
});

let contractUrl = '';

// Prometheus scrapes; the sink cannot find it down nor be refused: the delivered case only. The
// records "held" are as many as tollgate_requests_total counts (a record counted twice shows as a duplicate).
describeSinkContract({
  name: 'prometheus',
  config: async () => {
    const port = await freePort();
    contractUrl = `http://127.0.0.1:${port}/metrics`;
    return { type: 'prometheus', port };
  },
  readBack: async (ids) => {
    const counted = samplesOf(await scrape(contractUrl), 'tollgate_requests_total').reduce((sum, sample) => sum + sample.value, 0);
    return counted <= ids.length ? ids.slice(0, counted) : [...ids, ...Array<string>(counted - ids.length).fill(ids[0] as string)];
  },
});
