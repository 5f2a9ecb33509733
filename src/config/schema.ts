import { isIP } from 'node:net';
import { z } from 'zod';
import { sinkConfigSchema } from '../pump/sinks/registry.js';
import { httpUrl, milliseconds, name, positiveInt, seconds } from './primitives.js';

export const DETAILED_RECORDING_LEVELS = ['off', 'headers', 'full', 'errors'] as const;
export type DetailedRecording = (typeof DETAILED_RECORDING_LEVELS)[number];
export const TRAFFIC_LOG_OUTPUTS = ['none', 'file', 'stdout'] as const;
export type TrafficLogOutput = (typeof TRAFFIC_LOG_OUTPUTS)[number];
export const PAYLOAD_LAYOUTS = ['files', 'packed'] as const;
export const BUFFER_TYPES = ['none', 'embedded', 'redis'] as const;
export const WHEN_FULL_POLICIES = ['dropNewest', 'dropOldest', 'reject'] as const;

const HTTP_METHODS = ['GET', 'HEAD', 'POST', 'PUT', 'PATCH', 'DELETE', 'OPTIONS', 'TRACE', 'CONNECT', '*'] as const;

const detailedRecording = z.enum(DETAILED_RECORDING_LEVELS);

/** A single address or a CIDR block, IPv4 or IPv6. */
const ipOrCidr = z.string().refine(
  (value) => {
    const [address, bits, extra] = value.split('/');
    if (extra !== undefined || address === undefined) return false;
    const family = isIP(address);
    if (family === 0) return false;
    if (bits === undefined) return true;
    const prefix = Number(bits);
    return /^\d+$/.test(bits) && prefix <= (family === 4 ? 32 : 128);
  },
  { error: 'expected an IP address or CIDR block such as 10.0.0.0/8' },
);

const endpointSchema = z.strictObject({
  method: z.enum(HTTP_METHODS).default('*'),
  path: z.string().startsWith('/'),
  doNotTrack: z.boolean().optional(),
  detailedRecording: detailedRecording.optional(),
});

const timeoutsSchema = z.strictObject({
  connectMs: milliseconds.default(5_000),
  responseHeadersMs: milliseconds.default(30_000),
  idleMs: milliseconds.default(60_000),
});

const apiSchema = z.strictObject({
  id: name,
  name: z.string().min(1),
  version: z.string().min(1).default('Non Versioned'),
  orgId: z.string().default('default'),
  listenPath: z.string().startsWith('/'),
  target: z.union([httpUrl, z.array(httpUrl).min(1)]),
  stripListenPath: z.boolean().default(true),
  retries: z.number().int().min(0).max(10).default(0),
  doNotTrack: z.boolean().default(false),
  detailedRecording: detailedRecording.optional(),
  tagHeaders: z.array(z.string().min(1)).default([]),
  tags: z.array(z.string().min(1)).default([]),
  endpoints: z.array(endpointSchema).default([]),
  timeouts: timeoutsSchema.partial().optional(),
  /** How long this API's analytics records are kept (their `expireAt`); default `analytics.expireAfterSec`. */
  expireAnalyticsAfterSec: seconds.optional(),
});

const gatewaySchema = z.strictObject({
  host: z.string().min(1).default('127.0.0.1'),
  port: z.number().int().min(0).max(65_535).default(8080),
  group: name.default('group-1'),
  instance: name.default('instance-1'),
  domain: z.string().min(1).default('tollgate'),
  workers: z.union([z.number().int().min(1).max(256), z.literal('auto')]).default(1),
  tls: z.strictObject({ cert: z.string().min(1), key: z.string().min(1) }).optional(),
  timeouts: timeoutsSchema.prefault({}),
  maxConnectionsPerTarget: positiveInt.default(256),
  targetCooldownMs: milliseconds.default(10_000),
  shutdownTimeoutMs: milliseconds.default(30_000),
  keepAliveTimeoutMs: milliseconds.default(65_000),
  maxConnections: positiveInt.optional(),
  maxRequestHeaderBytes: positiveInt.default(16_384),
  requestHeadersTimeoutMs: milliseconds.default(10_000),
});

const analyticsSchema = z.strictObject({
  enabled: z.boolean().default(true),
  detailedRecording: detailedRecording.optional(),
  ignoredIps: z.array(ipOrCidr).default([]),
  redact: z
    .strictObject({
      headers: z.array(z.string().min(1)).default([]),
      queryParams: z.array(z.string().min(1)).default([]),
      jsonFields: z.array(z.string().min(1)).default([]),
    })
    .prefault({}),
  maxPayloadBytes: z.number().int().min(0).default(1_048_576),
  payloadMemoryMb: z.number().positive().default(64),
  /** The request header whose value identifies the caller; the record keeps its SHA-256, never the key. */
  apiKeyHeader: z.string().min(1).optional(),
  /** SHA-256 (hex) of a key to the alias records show. */
  keyAliases: z.record(z.string().regex(/^[0-9a-f]{64}$/, 'expected a SHA-256 hash: 64 lowercase hex characters'), z.string().min(1)).default({}),
  expireAfterSec: seconds.default(30 * 24 * 3600),
  /** Keep the redacted bodies in the analytics records themselves (capped at maxPayloadBytes). */
  recordBodies: z.boolean().default(false),
  buffer: z
    .strictObject({
      type: z.enum(BUFFER_TYPES).default('none'),
      /** The embedded spool (one file per gateway process); with redis, the local copy kept until the pumps acknowledge. */
      directory: z.string().min(1).default('data/spool'),
      /** Records wait in memory at most this long before their batch is written. */
      fsyncIntervalMs: milliseconds.default(100),
      /** A batch is written as soon as it holds this many records. */
      batchSize: positiveInt.default(500),
      maxSizeMb: z.number().positive().default(1024),
      whenFull: z.enum(WHEN_FULL_POLICIES).default('dropNewest'),
      url: z.url({ protocol: /^rediss?$/, error: 'expected a redis:// or rediss:// URL' }).default('redis://127.0.0.1:6379'),
      stream: z.string().min(1).default('tollgate:records'),
    })
    .prefault({}),
  normaliseUrls: z
    .strictObject({
      uuids: z.boolean().default(true),
      ulids: z.boolean().default(true),
      numbers: z.boolean().default(true),
      patterns: z
        .array(
          z.string().refine(
            (pattern) => {
              try {
                new RegExp(pattern);
                return true;
              } catch {
                return false;
              }
            },
            { error: 'expected a valid regular expression' },
          ),
        )
        .default([]),
    })
    .prefault({}),
});

const trafficLogSchema = z.strictObject({
  output: z.enum(TRAFFIC_LOG_OUTPUTS).default('file'),
  directory: z.string().min(1).default('logs'),
  maxFileSizeMb: z.number().positive().default(20),
  maxDiskSpaceMb: z.number().positive().default(1024),
  diskCheckIntervalSec: seconds.default(600),
  payloads: z
    .strictObject({
      enabled: z.boolean().default(false),
      directory: z.string().min(1).default('logs/payloads'),
      layout: z.enum(PAYLOAD_LAYOUTS).default('files'),
      maxFileSizeMb: z.number().positive().default(64),
      maxWriteDelayMs: milliseconds.default(500),
    })
    .prefault({}),
});

const pumpSchema = z.strictObject({
  /** The Redis consumer group the pumps share. */
  group: name.default('tollgate-pumps'),
  /** This pump's name in the group; default `<hostname>-<pid>`. */
  consumer: name.optional(),
  /** Stream entries another pump took and left unacknowledged this long are claimed by this one (a crashed pump's). */
  claimIdleMs: milliseconds.default(30_000),
  health: z.strictObject({ host: z.string().min(1).default('127.0.0.1'), port: z.number().int().min(0).max(65_535) }).optional(),
  /** Batches a sink gave up on, one spool per sink, for `tollgate replay`. */
  deadLetterDirectory: z.string().min(1).default('data/dead-letter'),
  /** Source batches taken at once; bounds the pump's memory whatever the sinks do. */
  maxBatchesInFlight: positiveInt.default(6),
  sinks: z.array(sinkConfigSchema).default([]),
});

export const configSchema = z.strictObject({
  gateway: gatewaySchema.prefault({}),
  apis: z.array(apiSchema).default([]),
  analytics: analyticsSchema.prefault({}),
  trafficLog: trafficLogSchema.prefault({}),
  pump: pumpSchema.prefault({}),
});

export type Config = z.infer<typeof configSchema>;
export type ApiConfig = Config['apis'][number];
export type EndpointConfig = ApiConfig['endpoints'][number];
export type TimeoutsConfig = z.infer<typeof timeoutsSchema>;
export type BufferConfig = Config['analytics']['buffer'];
export type PumpConfig = Config['pump'];

/** Payload files are written only alongside a traffic log. */
export function payloadStorageOn(trafficLog: Config['trafficLog']): boolean {
  return trafficLog.output !== 'none' && trafficLog.payloads.enabled;
}
