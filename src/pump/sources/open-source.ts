import { resolve } from 'node:path';
import { ConfigError } from '../../config/load.js';
import type { Config } from '../../config/schema.js';
import type { DeadLetter } from '../dead-letter.js';
import type { BatchSource } from '../source.js';
import { EmbeddedSource } from './embedded-source.js';
import { RedisSource } from './redis-source.js';

export interface SourceContext {
  /** Where batches that cannot be decoded go. */
  undecodable: DeadLetter;
  onUndecodable: () => void;
  notify: (message: string) => void;
  /** Names the configuration in errors. */
  configSource: string;
}

/** The buffer the pump reads, by `analytics.buffer.type`: the one place a kind of buffer is plugged in. */
export function openSource(config: Config, context: SourceContext): BatchSource {
  const buffer = config.analytics.buffer;
  switch (buffer.type) {
    case 'embedded':
      return new EmbeddedSource({ directory: resolve(buffer.directory), undecodable: context.undecodable, onUndecodable: context.onUndecodable, notify: context.notify });
    case 'redis':
      return new RedisSource({
        url: buffer.url,
        stream: buffer.stream,
        group: config.pump.group,
        consumer: config.pump.consumer,
        claimIdleMs: config.pump.claimIdleMs,
        undecodable: {
          putEncoded: (data, records) => {
            context.onUndecodable();
            return context.undecodable.putEncoded(data, records);
          },
        },
        onError: (error) => context.notify(error.message),
      });
    case 'none':
      throw new ConfigError(context.configSource, ['analytics.buffer.type: expected embedded or redis for the pump, found none']);
  }
}
