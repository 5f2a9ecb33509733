import { randomUUID } from 'node:crypto';
import { readdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { ANALYTICS_RECORD_VERSION, type AnalyticsMessage, type AnalyticsRecord } from '../../src/analytics/analytics-record.js';

function message(headers: string, body: string): AnalyticsMessage {
  return { headers, payload: 'file:///payloads/x.bin', notStored: null, body, bodyEncoding: 'utf8', truncated: false };
}

/** A complete analytics record with a fresh id (a UUID), as the gateway renders one; `changes` override fields. */
export function analyticsRecord(changes: Partial<AnalyticsRecord> = {}): AnalyticsRecord {
  const timestamp = Date.UTC(2026, 10, 22, 5, 30, 0);
  const started = new Date(timestamp);
  return {
    version: ANALYTICS_RECORD_VERSION,
    id: randomUUID(),
    timestamp,
    year: started.getUTCFullYear(),
    month: started.getUTCMonth() + 1,
    day: started.getUTCDate(),
    hour: started.getUTCHours(),
    expireAt: timestamp + 86_400_000,
    instance: 'test-1',
    apiId: 'petstore',
    apiName: 'Pet store',
    apiVersion: null,
    orgId: null,
    listenPath: '/petstore',
    trackedEndpoint: null,
    method: 'GET',
    host: '127.0.0.1:8080',
    uri: '/petstore/pets/1',
    path: '/petstore/pets/1',
    normalisedPath: '/petstore/pets/{id}',
    protocol: 'http',
    clientAddr: '127.0.0.1',
    userAgent: 'test',
    status: 200,
    outcome: 'success',
    failureReason: null,
    failureMessage: null,
    latencyTotal: 1.5,
    latencyUpstream: 1.2,
    latencyGateway: 0.3,
    bytesIn: 0,
    bytesOut: 20,
    tags: [],
    apiKeyHash: null,
    apiKeyAlias: null,
    upgraded: false,
    legs: [0, 1].map((index) => ({
      index,
      startedAt: timestamp,
      method: 'GET',
      uri: '/pets/1',
      remoteHost: '127.0.0.1',
      remotePort: 9000,
      status: 200,
      statusText: 'OK',
      duration: 1.2,
      timeToHeaders: 1,
      timeToLastByte: 1.2,
      bytesSent: 0,
      bytesReceived: 20,
      finalStatus: 'Pass',
      error: null,
      received: message('GET /pets/1 HTTP/1.1\r\nhost: x\r\n\r\n', ''),
      sent: message('HTTP/1.1 200 OK\r\ncontent-type: application/json\r\n\r\n', '{"id":1,"name":"Rex"}'),
    })),
    ...changes,
  };
}

export function analyticsRecords(count: number, changes: Partial<AnalyticsRecord> = {}): AnalyticsRecord[] {
  return Array.from({ length: count }, () => analyticsRecord(changes));
}

/**
 * Every record in the JSON lines files (`*.jsonl`, current and rolled) of a file sink's directory,
 * in no particular order. A last line not ended yet (being written) is left out; an ended line
 * that is not JSON (cut by a crash, then ended when the file was opened again) fails, unless
 * `torn` takes it.
 */
export async function recordsInDirectory(directory: string, torn?: (line: string) => void): Promise<AnalyticsRecord[]> {
  const names = await readdir(directory).catch(() => []);
  const records: AnalyticsRecord[] = [];
  for (const name of names.filter((file) => file.endsWith('.jsonl'))) {
    const lines = (await readFile(join(directory, name), 'utf8')).split('\n');
    lines.pop();
    for (const line of lines) {
      try {
        records.push(JSON.parse(line) as AnalyticsRecord);
      } catch (error) {
        if (torn === undefined) throw new Error(`${name}: a line is not JSON (${(error as Error).message}): ${line.slice(0, 80)}...`);
        torn(line);
      }
    }
  }
  return records;
}
