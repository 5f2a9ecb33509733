import { HttpReceiver, wire, type ReceivedRequest, type ReceiverAnswer } from './http-receiver.js';

/**
 * Receivers that stand in for Elasticsearch, Splunk HEC, Loki, an OpenTelemetry collector and a
 * plain NDJSON endpoint: each checks the documented wire format strictly (a breach is answered
 * 400 and kept in `receiver.problems`), keeps what it took as the service would (Elasticsearch by
 * `_id`, Loki by stream, timestamp and line), and answers in the service's own words.
 */

/** Every receiver refuses a record of this API (as bad data). */
export const REFUSED_API = 'refused';
/** The Elasticsearch receiver answers the first `create` of a record of this API with an item-level 429. */
export const BUSY_ONCE_API = 'busy-once';

export interface ExpectedRequest {
  /** The exact Authorization header every request must carry. */
  authorization?: string;
  /** Whether bodies must come gzipped. */
  gzip?: boolean;
  /** Other headers every request must carry, lower-case names. */
  headers?: Record<string, string>;
}

export interface FormatReceiver {
  receiver: HttpReceiver;
  /** The record ids held, one entry per copy. */
  held(): string[];
}

type Json = Record<string, unknown>;

function checkRequest(request: ReceivedRequest, path: string, contentType: string, expected: ExpectedRequest): void {
  wire(request.method === 'POST', `${request.method} instead of POST`);
  wire(request.url === path, `a request to ${request.url} instead of ${path}`);
  wire(request.headers['content-type'] === contentType, `content-type ${request.headers['content-type']} instead of ${contentType}`);
  if (expected.authorization !== undefined) wire(request.headers.authorization === expected.authorization, 'a missing or wrong Authorization header');
  if (expected.gzip !== undefined) wire((request.headers['content-encoding'] === 'gzip') === expected.gzip, `content-encoding ${request.headers['content-encoding']}`);
  for (const [name, value] of Object.entries(expected.headers ?? {})) wire(request.headers[name] === value, `header ${name} is ${request.headers[name]}`);
}

function parsed(text: string, what: string): Json {
  try {
    const value: unknown = JSON.parse(text);
    wire(typeof value === 'object' && value !== null && !Array.isArray(value), `${what} is not a JSON object`);
    return value as Json;
  } catch (error) {
    if (error instanceof SyntaxError) wire(false, `${what} is not JSON: ${text.slice(0, 80)}`);
    throw error;
  }
}

/** NDJSON lines: each a JSON object, the body ending with `\n`. */
function ndjsonLines(body: string): Json[] {
  wire(body.length > 0 && body.endsWith('\n'), 'an NDJSON body must end with a newline');
  return body
    .slice(0, -1)
    .split('\n')
    .map((line, i) => parsed(line, `line ${i + 1}`));
}

const json = (status: number, body: unknown, headers?: Record<string, string>): ReceiverAnswer => ({ status, body: JSON.stringify(body), ...(headers ? { headers } : {}) });

/** A JSON-lines endpoint at `/ingest`: 200 for a batch, 400 for a batch holding a refused record. */
export async function ndjsonReceiver(expected: ExpectedRequest = {}): Promise<FormatReceiver> {
  const ids: string[] = [];
  const receiver = await HttpReceiver.start((request) => {
    checkRequest(request, '/ingest', 'application/x-ndjson', expected);
    const records = ndjsonLines(request.body);
    for (const record of records) wire(typeof record.id === 'string', 'a line without an id');
    if (records.some((record) => record.apiId === REFUSED_API)) return json(400, { error: 'refused record' });
    ids.push(...records.map((record) => record.id as string));
    return json(200, { accepted: records.length });
  });
  return { receiver, held: () => [...ids] };
}

export interface ElasticsearchReceiver extends FormatReceiver {
  /** Documents by `<index>/<_id>`. */
  documents: Map<string, Json>;
  /** Items answered, by status. */
  itemStatuses: number[];
  /** Ids answered with an item-level 429 while they are here. */
  busy: Set<string>;
}

/** `POST /_bulk`: `create` actions only, keeps documents by index and `_id`, 409 for a second create of an id. */
export async function elasticsearchReceiver(expected: ExpectedRequest = {}): Promise<ElasticsearchReceiver> {
  const documents = new Map<string, Json>();
  const busyOnce = new Set<string>();
  const busy = new Set<string>();
  const itemStatuses: number[] = [];
  const receiver = await HttpReceiver.start((request) => {
    checkRequest(request, '/_bulk', 'application/x-ndjson', expected);
    const lines = ndjsonLines(request.body);
    wire(lines.length % 2 === 0, 'a _bulk body of create actions has an even number of lines');
    const items: Json[] = [];
    for (let i = 0; i < lines.length; i += 2) {
      const action = lines[i] as Json;
      const document = lines[i + 1] as Json;
      wire(Object.keys(action).length === 1 && typeof action.create === 'object', `action ${JSON.stringify(action)} is not a create`);
      const { _index: index, _id: id } = action.create as Json;
      wire(typeof index === 'string' && typeof id === 'string', 'a create action without _index or _id');
      wire(document.id === id, `_id ${String(id)} is not the record id ${String(document.id)}`);
      wire(typeof document['@timestamp'] === 'string' && Date.parse(document['@timestamp']) === document.timestamp, 'a document without its @timestamp');
      const key = `${index}/${id}`;
      const item = (status: number, error?: Json): Json => ({ create: { _index: index, _id: id, status, ...(error ? { error } : { result: 'created' }) } });
      if (document.apiId === REFUSED_API) {
        items.push(item(400, { type: 'mapper_parsing_exception', reason: 'failed to parse field [status]' }));
      } else if (busy.has(id) || (document.apiId === BUSY_ONCE_API && !busyOnce.has(id))) {
        busyOnce.add(id);
        items.push(item(429, { type: 'es_rejected_execution_exception', reason: 'rejected execution of coordinating operation' }));
      } else if (documents.has(key)) {
        items.push(item(409, { type: 'version_conflict_engine_exception', reason: `[${id}]: version conflict, document already exists` }));
      } else {
        documents.set(key, document);
        items.push(item(201));
      }
      itemStatuses.push(((items.at(-1) as Json).create as Json).status as number);
    }
    const errors = items.some((item) => ((item.create as Json).status as number) >= 300);
    return json(200, { took: 3, errors, items });
  });
  return { receiver, documents, itemStatuses, busy, held: () => [...documents.values()].map((document) => document.id as string) };
}

export interface SplunkReceiver extends FormatReceiver {
  events: Json[];
}

/** `POST /services/collector/event` with `Authorization: Splunk <token>`: JSON event objects, one after the other. */
export async function splunkHecReceiver(token: string, expected: ExpectedRequest & { index?: string } = {}): Promise<SplunkReceiver> {
  const events: Json[] = [];
  const receiver = await HttpReceiver.start((request) => {
    checkRequest(request, '/services/collector/event', 'application/json', { ...expected, authorization: `Splunk ${token}` });
    const batch = request.body
      .split('\n')
      .filter((line) => line.trim() !== '')
      .map((line, i) => parsed(line, `event ${i + 1}`));
    wire(batch.length > 0, 'no events');
    for (const event of batch) {
      wire(typeof event.time === 'number' && event.time > 1e9 && event.time < 1e10, `time ${String(event.time)} is not epoch seconds`);
      const record = event.event as Json;
      wire(typeof record === 'object' && record !== null && typeof record.id === 'string', 'an event without the record');
      wire(Math.abs(event.time * 1000 - (record.timestamp as number)) < 0.5, 'time is not the record time');
      for (const field of ['host', 'source', 'sourcetype']) wire(typeof event[field] === 'string', `an event without ${field}`);
      wire(event.index === expected.index, `index ${String(event.index)}`);
    }
    const refused = batch.findIndex((event) => (event.event as Json).apiId === REFUSED_API);
    if (refused >= 0) return json(400, { text: 'Invalid data format', code: 6, 'invalid-event-number': refused });
    events.push(...batch);
    return json(200, { text: 'Success', code: 0 });
  });
  return { receiver, events, held: () => events.map((event) => (event.event as Json).id as string) };
}

export interface LokiReceiver extends FormatReceiver {
  /** Stream label sets seen. */
  streams: Json[];
  /** Entries pushed that Loki kept once already (same stream, timestamp and line). */
  duplicatesDropped: number;
}

/**
 * `POST /loki/api/v1/push` (JSON): labels from `allowedLabels` only, entries `[ns string, line]` in
 * time order per stream. Keeps an entry with the same stream, timestamp and line once, as Loki's
 * queries show it (Loki itself drops such an entry at ingest only when it follows the same one).
 */
export async function lokiReceiver(allowedLabels: readonly string[], expected: ExpectedRequest = {}): Promise<LokiReceiver> {
  const entries = new Map<string, string>();
  const streams: Json[] = [];
  const state = { duplicatesDropped: 0 };
  const receiver = await HttpReceiver.start((request) => {
    checkRequest(request, '/loki/api/v1/push', 'application/json', expected);
    const push = parsed(request.body, 'the push');
    wire(Array.isArray(push.streams) && push.streams.length > 0, 'no streams');
    const taken: [string, string][] = [];
    let refused = false;
    for (const { stream, values } of push.streams as { stream: Json; values: unknown }[]) {
      wire(typeof stream === 'object' && stream !== null && Object.keys(stream).length > 0, 'a stream without labels');
      for (const [name, value] of Object.entries(stream)) {
        wire(allowedLabels.includes(name), `label ${name} is not one of ${allowedLabels.join(', ')}`);
        wire(typeof value === 'string' && value !== '', `label ${name} is not a non-empty string`);
      }
      wire(Array.isArray(values) && values.length > 0, 'a stream without values');
      let last = 0n;
      for (const entry of values as unknown[]) {
        wire(Array.isArray(entry) && entry.length === 2, 'an entry is not [timestamp, line]');
        const [ns, line] = entry as [unknown, unknown];
        wire(typeof ns === 'string' && /^\d{19}$/.test(ns), `timestamp ${String(ns)} is not epoch nanoseconds as a string`);
        wire(typeof line === 'string', 'a line is not a string');
        wire(BigInt(ns) >= last, 'entries of a stream out of time order');
        last = BigInt(ns);
        const record = parsed(line, 'a line');
        wire(!Object.values(stream).includes(record.id), 'a label holds the record id');
        wire(BigInt(ns) / 1_000_000n === BigInt(Math.floor(record.timestamp as number)), 'the timestamp is not the record time');
        if (record.apiId === REFUSED_API) refused = true;
        taken.push([`${JSON.stringify(stream)}\n${ns}\n${line}`, record.id as string]);
      }
      streams.push(stream);
    }
    if (refused) return { status: 400, headers: { 'content-type': 'text/plain' }, body: 'entry with timestamp too old for stream' };
    for (const [key, id] of taken) {
      if (entries.has(key)) state.duplicatesDropped++;
      else entries.set(key, id);
    }
    return { status: 204 };
  });
  return {
    receiver,
    streams,
    get duplicatesDropped() {
      return state.duplicatesDropped;
    },
    held: () => [...entries.values()],
  };
}

export interface OtlpReceiver extends FormatReceiver {
  logRecords: Json[];
  resources: Json[];
}

const ANY_VALUE_FIELDS = ['stringValue', 'boolValue', 'intValue', 'doubleValue', 'arrayValue', 'kvlistValue', 'bytesValue'];

function checkAnyValue(value: unknown, where: string): void {
  wire(typeof value === 'object' && value !== null, `${where}: not an AnyValue`);
  const keys = Object.keys(value);
  wire(keys.length === 1 && ANY_VALUE_FIELDS.includes(keys[0] as string), `${where}: ${JSON.stringify(value)} is not an AnyValue`);
  const intValue = (value as Json).intValue;
  if (intValue !== undefined) wire(typeof intValue === 'string' && /^-?\d+$/.test(intValue), `${where}: intValue must be a decimal string`);
}

function checkAttributes(attributes: unknown, where: string): void {
  wire(Array.isArray(attributes), `${where}: attributes are not an array`);
  for (const attribute of attributes as Json[]) {
    wire(typeof attribute.key === 'string', `${where}: an attribute without a key`);
    checkAnyValue(attribute.value, `${where} ${attribute.key}`);
  }
}

/** The attribute `key` of an OTLP attribute list, as its AnyValue. */
export function attribute(attributes: unknown, key: string): Json | undefined {
  return ((attributes as Json[]).find((entry) => entry.key === key)?.value as Json | undefined) ?? undefined;
}

/** `POST /v1/logs`, OTLP/HTTP JSON: resourceLogs / scopeLogs / logRecords, AnyValue attributes, nanosecond strings, hex trace ids. */
export async function otlpReceiver(expected: ExpectedRequest = {}): Promise<OtlpReceiver> {
  const logRecords: Json[] = [];
  const resources: Json[] = [];
  const receiver = await HttpReceiver.start((request) => {
    checkRequest(request, '/v1/logs', 'application/json', expected);
    const payload = parsed(request.body, 'the export request');
    wire(Array.isArray(payload.resourceLogs), 'no resourceLogs');
    const batch: Json[] = [];
    for (const resourceLogs of payload.resourceLogs as Json[]) {
      const resource = resourceLogs.resource as Json;
      checkAttributes(resource?.attributes, 'resource');
      wire(attribute(resource.attributes, 'service.name')?.stringValue !== undefined, 'a resource without service.name');
      resources.push(resource);
      wire(Array.isArray(resourceLogs.scopeLogs), 'no scopeLogs');
      for (const scopeLogs of resourceLogs.scopeLogs as Json[]) {
        wire(Array.isArray(scopeLogs.logRecords), 'no logRecords');
        for (const log of scopeLogs.logRecords as Json[]) {
          wire(typeof log.timeUnixNano === 'string' && /^\d{19}$/.test(log.timeUnixNano), `timeUnixNano ${String(log.timeUnixNano)} is not a nanosecond string`);
          wire(typeof log.severityNumber === 'number' && log.severityNumber >= 1 && log.severityNumber <= 24, 'a severityNumber out of 1..24');
          checkAnyValue(log.body, 'body');
          checkAttributes(log.attributes, 'log record');
          for (const key of ['http.request.method', 'http.response.status_code', 'url.path', 'client.address', 'server.address', 'log.record.uid']) {
            wire(attribute(log.attributes, key) !== undefined, `a log record without ${key}`);
          }
          if (log.traceId !== undefined) wire(typeof log.traceId === 'string' && /^[0-9a-f]{32}$/.test(log.traceId), 'traceId is not 32 hex digits');
          if (log.spanId !== undefined) wire(typeof log.spanId === 'string' && /^[0-9a-f]{16}$/.test(log.spanId), 'spanId is not 16 hex digits');
          batch.push(log);
        }
      }
    }
    if (batch.some((log) => attribute(log.attributes, 'tollgate.api.id')?.stringValue === REFUSED_API)) {
      return json(400, { code: 3, message: 'invalid log record' });
    }
    logRecords.push(...batch);
    return json(200, {});
  });
  return { receiver, logRecords, resources, held: () => logRecords.map((log) => attribute(log.attributes, 'log.record.uid')?.stringValue as string) };
}
