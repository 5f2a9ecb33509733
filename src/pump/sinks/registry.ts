import { z } from 'zod';
import { commonSinkOptions, type SinkDefinition } from '../sink.js';
import { amqpSink } from './amqp.js';
import { fileSink } from './file.js';
import { httpSink } from './http.js';
import { mysqlSink } from './mysql.js';
import { natsSink } from './nats.js';
import { postgresSink } from './postgres.js';
import { prometheusSink } from './prometheus.js';
import { statsdSink } from './statsd.js';
import { stdoutSink } from './stdout.js';
import { syslogSink } from './syslog.js';

/** Every kind of sink: adding one is one file and one line here. */
export const SINKS = [
  fileSink,
  stdoutSink,
  postgresSink,
  httpSink,
  natsSink,
  amqpSink,
  mysqlSink,
  statsdSink,
  prometheusSink,
  syslogSink,
] as const satisfies readonly SinkDefinition<any>[];

export type SinkType = (typeof SINKS)[number]['type'];

/** A sink's configuration: its `type`, the options every sink has, and its own. */
export const sinkConfigSchema = z.discriminatedUnion(
  'type',
  SINKS.map((sink) => z.strictObject({ type: z.literal(sink.type), ...commonSinkOptions, ...sink.options })) as unknown as [
    z.ZodObject<{ type: z.ZodLiteral<string> }>,
    ...z.ZodObject<{ type: z.ZodLiteral<string> }>[],
  ],
);
