import { isIP } from 'node:net';
import { z } from 'zod';

export const DETAILED_RECORDING_LEVELS = ['off', 'headers', 'full', 'errors'] as const;
export type DetailedRecording = (typeof DETAILED_RECORDING_LEVELS)[number];
export const TRAFFIC_LOG_OUTPUTS = ['none', 'file', 'stdout'] as const;
export type TrafficLogOutput = (typeof TRAFFIC_LOG_OUTPUTS)[number];
export const PAYLOAD_LAYOUTS = ['files', 'packed'] as const;

const HTTP_METHODS = ['GET', 'HEAD', 'POST', 'PUT', 'PATCH', 'DELETE', 'OPTIONS', 'TRACE', 'CONNECT', '*'] as const;

const detailedRecording = z.enum(DETAILED_RECORDING_LEVELS);
const positiveInt = z.number().int().positive();

/** Node fires a timer set above 2^31-1 ms after 1 ms, so no duration may be longer. */
const MAX_TIMER_MS = 2 ** 31 - 1;
const milliseconds = positiveInt.max(MAX_TIMER_MS);
const seconds = z.number().positive().max(Math.floor(MAX_TIMER_MS / 1000));
const name = z.string().min(1).regex(/^[A-Za-z0-9._-]+$/, 'expected letters, digits, ".", "_" or "-" only');

const httpUrl = z.url({ protocol: /^https?$/, error: 'expected an http:// or https:// URL' });

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

export const configSchema = z.strictObject({
  gateway: gatewaySchema.prefault({}),
  apis: z.array(apiSchema).default([]),
  analytics: analyticsSchema.prefault({}),
  trafficLog: trafficLogSchema.prefault({}),
});

export type Config = z.infer<typeof configSchema>;
export type ApiConfig = Config['apis'][number];
export type EndpointConfig = ApiConfig['endpoints'][number];
export type TimeoutsConfig = z.infer<typeof timeoutsSchema>;

/** Payload files are written only alongside a traffic log. */
export function payloadStorageOn(trafficLog: Config['trafficLog']): boolean {
  return trafficLog.output !== 'none' && trafficLog.payloads.enabled;
}
