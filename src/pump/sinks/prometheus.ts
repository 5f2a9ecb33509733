import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { Counter, Histogram, Registry } from 'prom-client';
import { z } from 'zod';
import type { AnalyticsRecord } from '../../analytics/analytics-record.js';
import { positiveInt } from '../../config/primitives.js';
import { defineSink, type RejectedRecord, type Sink } from '../sink.js';
import { statusClass } from './http-formats/format.js';

export interface PrometheusSinkOptions {
  /** Where `/metrics` is served; without a port, on `pump.health`. */
  host: string;
  port?: number;
  /** At most this many `tollgate_requests_total` series; records of further paths count under `path="other"`. */
  maxSeries: number;
  /** Histogram buckets, in seconds. */
  buckets: number[];
}

export const DEFAULT_BUCKETS = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30];

/** The label `path` takes once `maxSeries` is reached. */
export const FOLDED_PATH = 'other';

/**
 * Request metrics from the records, served for Prometheus to scrape: a write resolves once its
 * records are counted. The counts live in the pump's memory: they restart from zero with the pump
 * (Prometheus handles counter resets), and a batch the buffer delivers again after a crash is
 * counted again.
 */
export class PrometheusSink implements Sink {
  readonly registry = new Registry();
  readonly healthMetrics: Registry | undefined;
  readonly #requests = new Counter({
    name: 'tollgate_requests_total',
    help: 'Requests through the gateway, by API, method, status class and normalised path.',
    labelNames: ['api', 'method', 'status_class', 'path'],
    registers: [this.registry],
  });
  readonly #requestDuration: Histogram;
  readonly #upstreamDuration: Histogram;
  readonly #requestBytes = new Counter({
    name: 'tollgate_request_bytes_total',
    help: 'Body bytes received from clients.',
    labelNames: ['api', 'method', 'status_class'],
    registers: [this.registry],
  });
  readonly #responseBytes = new Counter({
    name: 'tollgate_response_bytes_total',
    help: 'Body bytes sent to clients.',
    labelNames: ['api', 'method', 'status_class'],
    registers: [this.registry],
  });
  readonly #folded = new Counter({
    name: 'tollgate_prometheus_folded_records_total',
    help: `Records counted under path="${FOLDED_PATH}" because tollgate_requests_total had maxSeries series.`,
    registers: [this.registry],
  });
  /** The `tollgate_requests_total` series made so far (bounded by `maxSeries`). */
  readonly #series = new Set<string>();
  #server: Server | null = null;

  constructor(readonly options: PrometheusSinkOptions) {
    const histogram = (name: string, help: string): Histogram =>
      new Histogram({ name, help, labelNames: ['api', 'method', 'status_class'], buckets: options.buckets, registers: [this.registry] });
    this.#requestDuration = histogram('tollgate_request_duration_seconds', 'From the request received to the response sent.');
    this.#upstreamDuration = histogram('tollgate_upstream_duration_seconds', 'Time spent on back ends, for requests that reached one.');
    this.healthMetrics = options.port === undefined ? this.registry : undefined;
  }

  async open(): Promise<void> {
    const { host, port } = this.options;
    if (port === undefined || this.#server !== null) return;
    const server = createServer((request, response) => {
      if (request.method !== 'GET' || (request.url ?? '/').split('?')[0] !== '/metrics') {
        response.writeHead(404, { 'content-type': 'text/plain' }).end('GET /metrics\n');
        return;
      }
      this.registry
        .metrics()
        .then((body) => response.writeHead(200, { 'content-type': this.registry.contentType }).end(body))
        .catch((error: unknown) => response.writeHead(500, { 'content-type': 'text/plain' }).end(`${(error as Error).message}\n`));
    });
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(port, host, () => {
        server.off('error', reject);
        resolve();
      });
    });
    this.#server = server;
  }

  /** Where `/metrics` is served, when on a port of the sink's own and open. */
  get url(): string | null {
    if (this.#server === null) return null;
    const { address, port } = this.#server.address() as AddressInfo;
    return `http://${address.includes(':') ? `[${address}]` : address}:${port}/metrics`;
  }

  async write(records: readonly AnalyticsRecord[]): Promise<RejectedRecord[]> {
    for (const record of records) {
      const labels = { api: record.apiId ?? '', method: record.method, status_class: statusClass(record.status) };
      this.#requests.inc({ ...labels, path: this.#path(labels, record.normalisedPath) });
      this.#requestDuration.observe(labels, record.latencyTotal / 1000);
      // Legs after the first are attempts to back ends; a request the gateway answered itself has none.
      if (record.legs.length > 1) this.#upstreamDuration.observe(labels, record.latencyUpstream / 1000);
      this.#requestBytes.inc(labels, record.bytesIn);
      this.#responseBytes.inc(labels, record.bytesOut);
    }
    return [];
  }

  async close(): Promise<void> {
    const server = this.#server;
    this.#server = null;
    if (server === null) return;
    await new Promise<void>((resolve) => {
      server.close(() => resolve());
      server.closeAllConnections();
    });
  }

  /** The record's normalised path, or `other` once `maxSeries` series exist and this would make another. */
  #path(labels: { api: string; method: string; status_class: string }, path: string): string {
    const key = `${labels.api}\n${labels.method}\n${labels.status_class}\n${path}`;
    if (this.#series.has(key)) return path;
    if (this.#series.size < this.options.maxSeries) {
      this.#series.add(key);
      return path;
    }
    this.#folded.inc();
    return FOLDED_PATH;
  }
}

export const prometheusSink = defineSink({
  type: 'prometheus',
  options: {
    host: z.string().min(1).default('127.0.0.1'),
    port: z.number().int().min(0).max(65_535).optional(),
    maxSeries: positiveInt.default(1000),
    buckets: z
      .array(z.number().positive())
      .min(1)
      .refine((buckets) => buckets.every((bucket, index) => index === 0 || bucket > (buckets[index - 1] as number)), 'expected increasing numbers')
      .default(DEFAULT_BUCKETS),
  },
  create: (options) => new PrometheusSink(options),
});
