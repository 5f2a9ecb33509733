import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { SinkCounts } from './pump-metrics.js';
import type { SinkStatus } from './sink-runner.js';

export interface PumpHealth {
  /** `ok`: every sink delivering; `degraded`: some sink is failing (retrying or dead-lettering), or the buffer cannot be read. */
  status: 'ok' | 'degraded';
  /** Null when the buffer cannot be read (Redis away): `bufferError` says why. */
  buffer: { batches: number; records: number; lagSeconds: number } | null;
  bufferError?: string;
  sinks: Record<string, SinkStatus & SinkCounts & { deadLetter: { batches: number; records: number } }>;
}

export interface HealthSource {
  health(): Promise<PumpHealth>;
  /** The metrics in the Prometheus text format. */
  metrics(): Promise<string>;
  metricsContentType: string;
}

/** `pump.health`: `GET /health` (JSON) and `GET /metrics` (Prometheus). */
export class HealthServer {
  private constructor(readonly server: Server) {}

  static start(host: string, port: number, source: HealthSource, notify: (message: string) => void): Promise<HealthServer> {
    const server = createServer((request, response) => {
      const path = (request.url ?? '/').split('?')[0];
      const answer =
        request.method !== 'GET'
          ? Promise.resolve({ status: 405, type: 'text/plain', body: 'GET only\n' })
          : path === '/health'
            ? source.health().then((health) => ({ status: 200, type: 'application/json', body: `${JSON.stringify(health)}\n` }))
            : path === '/metrics'
              ? source.metrics().then((body) => ({ status: 200, type: source.metricsContentType, body }))
              : Promise.resolve({ status: 404, type: 'text/plain', body: 'GET /health or /metrics\n' });
      answer
        .catch((error: unknown) => {
          notify(`health: ${path}: ${(error as Error).message}`);
          return { status: 500, type: 'text/plain', body: `${(error as Error).message}\n` };
        })
        .then(({ status, type, body }) => response.writeHead(status, { 'content-type': type }).end(body))
        .catch(() => response.destroy());
    });
    return new Promise((resolve, reject) => {
      server.once('error', reject);
      server.listen(port, host, () => {
        server.off('error', reject);
        resolve(new HealthServer(server));
      });
    });
  }

  get url(): string {
    const { address, port } = this.server.address() as AddressInfo;
    return `http://${address.includes(':') ? `[${address}]` : address}:${port}`;
  }

  close(): Promise<void> {
    return new Promise((resolve) => {
      this.server.close(() => resolve());
      this.server.closeAllConnections();
    });
  }
}
