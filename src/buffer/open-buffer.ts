import { resolve } from 'node:path';
import type { Config } from '../config/schema.js';
import { AnalyticsShipper } from './analytics-shipper.js';
import type { BatchBuffer } from './batch-buffer.js';
import { RedisBuffer } from './redis-buffer.js';
import { spoolPath } from './spool.js';
import { SpoolWriter } from './spool-writer.js';

const MB = 1024 * 1024;
/** Encoded records that may wait in memory while the buffer is slow or full. */
const MAX_QUEUED_BYTES = 64 * MB;

export interface ShipperContext {
  group: string;
  instance: string;
  onDrop: (error: Error) => void;
  onError: (error: Error) => void;
}

function openBuffer(config: Config, spool: SpoolWriter, context: ShipperContext): BatchBuffer {
  const { buffer } = config.analytics;
  switch (buffer.type) {
    case 'redis':
      return new RedisBuffer({ spool, url: buffer.url, stream: buffer.stream, group: config.pump.group, instance: `${context.group}_${context.instance}`, onError: context.onError });
    default:
      return spool;
  }
}

/** The gateway's analytics buffer as `analytics.buffer` configures it; null for `type: none`. */
export function openAnalyticsShipper(config: Config, context: ShipperContext): AnalyticsShipper | null {
  const { buffer } = config.analytics;
  if (buffer.type === 'none') return null;
  const expiry = new Map(config.apis.map((api) => [api.id, api.expireAnalyticsAfterSec ?? config.analytics.expireAfterSec]));
  const spool = new SpoolWriter(spoolPath(resolve(buffer.directory), context.group, context.instance));
  return new AnalyticsShipper({
    buffer: openBuffer(config, spool, context),
    rendering: { instance: context.instance, expireAfterSec: (apiId) => (apiId === null ? undefined : expiry.get(apiId)) ?? config.analytics.expireAfterSec },
    maxDelayMs: buffer.fsyncIntervalMs,
    batchSize: buffer.batchSize,
    maxBufferBytes: buffer.maxSizeMb * MB,
    whenFull: buffer.whenFull,
    maxQueuedBytes: MAX_QUEUED_BYTES,
    onDrop: context.onDrop,
    onError: context.onError,
  });
}
