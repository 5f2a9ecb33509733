import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { analyticsRecord } from '../../../test/support/analytics-records.js';
import {
  elasticsearchReceiver,
  lokiReceiver,
  ndjsonReceiver,
  otlpReceiver,
  REFUSED_API,
  splunkHecReceiver,
  type FormatReceiver,
} from '../../../test/support/http-format-receivers.js';
import { describeSinkContract } from './sink-suite.js';

/**
 * The shared sink contract for each format of the http sink, each against a strict stand-in for
 * its service (none of them can run here): a receiver down (its server closed, then listening on
 * the same port again), a record refused, redelivery.
 */

const PASSWORD = 'correct-horse-battery';
const BEARER = 'es-bearer-token-1234';
const SPLUNK_TOKEN = '6f1c2a5e-1111-2222-3333-444455556666';
const basic = `Basic ${Buffer.from(`pump:${PASSWORD}`).toString('base64')}`;

interface Format {
  name: string;
  start(): Promise<FormatReceiver>;
  config(url: string): Record<string, unknown>;
}

const FORMATS: Format[] = [
  {
    name: 'ndjson',
    start: () => ndjsonReceiver({ authorization: basic, gzip: true }),
    config: (url) => ({ type: 'http', url: `${url}/ingest`, gzip: true, auth: { basic: { user: 'pump', password: PASSWORD } } }),
  },
  {
    name: 'elasticsearch',
    start: () => elasticsearchReceiver({ authorization: `Bearer ${BEARER}`, gzip: true }),
    config: (url) => ({ type: 'http', url, format: { type: 'elasticsearch', index: 'tollgate-{yyyy}.{MM}' }, gzip: true, auth: { bearer: BEARER } }),
  },
  {
    name: 'splunk-hec',
    start: () => splunkHecReceiver(SPLUNK_TOKEN, { gzip: false, index: 'gateway' }),
    config: (url) => ({ type: 'http', url, format: { type: 'splunk-hec', token: SPLUNK_TOKEN, index: 'gateway' } }),
  },
  {
    name: 'loki',
    start: () => lokiReceiver(['job', 'api', 'status_class', 'method'], { gzip: true, headers: { 'x-scope-orgid': 'tenant-1' } }),
    config: (url) => ({
      type: 'http',
      url,
      format: { type: 'loki', labels: ['api', 'status_class', 'method'] },
      gzip: true,
      headers: { 'X-Scope-OrgID': 'tenant-1' },
    }),
  },
  {
    name: 'otlp',
    start: () => otlpReceiver({ gzip: false }),
    config: (url) => ({ type: 'http', url, format: 'otlp' }),
  },
];

for (const format of FORMATS) {
  let held: FormatReceiver;

  beforeAll(async () => {
    held = await format.start();
  });

  afterAll(async () => {
    await held?.receiver.close();
  });

  describeSinkContract({
    name: `http (${format.name})`,
    config: () => format.config(held.receiver.url),
    readBack: async () => held.held(),
    outage: { cut: () => held.receiver.cut(), restore: () => held.receiver.restore() },
    rejectable: () => analyticsRecord({ apiId: REFUSED_API }),
  });

  describe(`http (${format.name}) against its strict receiver`, () => {
    it('sent nothing that breaks the documented wire format', () => {
      expect(held.receiver.problems).toEqual([]);
      expect(held.receiver.requests.length).toBeGreaterThan(0);
    });
  });
}
