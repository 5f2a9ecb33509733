import type { z } from 'zod';
import type { CommonSinkOptions, Sink } from '../sink.js';
import { SINKS, type sinkConfigSchema } from './registry.js';

/** One entry of `pump.sinks`, as the schema parsed it: its type, the common options and its own. */
export type SinkConfig = z.infer<typeof sinkConfigSchema> & CommonSinkOptions;

/** A sink's name: its `name` option, else its type. */
export function sinkName(config: SinkConfig): string {
  return config.name ?? config.type;
}

export function createSink(config: SinkConfig, notify: (message: string) => void): Sink {
  const definition = SINKS.find((sink) => sink.type === config.type);
  // The schema admits only the types SINKS lists.
  if (definition === undefined) throw new Error(`no sink of type ${JSON.stringify(config.type)}`);
  return definition.create(config as never, { name: sinkName(config), notify });
}
