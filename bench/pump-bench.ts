/**
 * Records/s one `tollgate pump` process delivers through each sink (one sink per target): a spool
 * is filled with records as the gateway writes them (batches of 500), then the pump is started on
 * it and timed from the first batch that leaves the spool to the empty spool (its start-up is not
 * counted). Rounds interleave the targets; medians are printed, with the CPU each record cost the
 * pump and the receiving server's processes (SERVER_COMMANDS). `postgres-aggregates` is `postgres`
 * with `aggregatesTable`, timed until the last record is aggregated too: the cost of aggregation.
 * The other targets (each checked after its round to have received every record, except StatsD
 * over UDP, which may lose datagrams: what its socket got is printed):
 * - `http`: ndjson to a node:http server that counts the lines and answers 200;
 * - `statsd`: UDP to a socket counting datagrams;
 * - `syslog`: tcp (octet counting) to a TCP server that reads and discards: not rsyslog;
 *   these three receivers run in one child process (bench/sink-receivers.ts, named `bench-receiver`);
 * - `nats`: NATS JetStream at PUMP_BENCH_NATS (nats://127.0.0.1:4222), into a stream of the bench's own (createStream), deleted after;
 * - `amqp`: RabbitMQ at PUMP_BENCH_AMQP (amqp://guest:guest@127.0.0.1:5672), into a durable queue of the bench's own, deleted after;
 * - `prometheus`: counted into the pump's metrics on `pump.health`'s port, scraped once after the round.
 *
 * Environment: PUMP_BENCH_RECORDS (200000), PUMP_BENCH_ROUNDS (3), PUMP_BENCH_SINK_BATCH (1000),
 * PUMP_BENCH_CONNECTIONS (3), PUMP_BENCH_TARGETS (postgres,postgres-aggregates,file; mysql, http, nats, amqp, statsd, syslog and prometheus too), PUMP_BENCH_SOURCES (embedded,redis: the spool, or a Redis stream at PUMP_BENCH_REDIS, redis://127.0.0.1:6379), PUMP_BENCH_PG (postgres://postgres@127.0.0.1:5432/test),
 * PUMP_BENCH_MYSQL (mysql://root@127.0.0.1:3306: the mysql target's server, where a database of its own is made and dropped),
 * PUMP_BENCH_SHAPE: `answered` (default: the gateway answered, one leg, about 1 KB as MessagePack) or
 * `proxied` (a client leg and a back-end leg, about 1.5 KB); neither records header blocks.
 */
import { randomBytes } from 'node:crypto';
import { fork, spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { jetstreamManager } from '@nats-io/jetstream';
import { connect as connectNats } from '@nats-io/transport-node';
import { connect as connectAmqp } from 'amqplib';
import mysql from 'mysql2/promise';
import pg from 'pg';
import { createClient } from 'redis';
import { encodeBatch } from '../src/analytics/codec.js';
import { Spool, spoolPath } from '../src/buffer/spool.js';
import { newCorrelationId } from '../src/recording/correlation-id.js';
import { builtRecords } from '../test/support/built-records.js';
import { parseExposition, samplesOf } from '../test/support/prometheus-text.js';
import { BIN } from '../test/support/gateway-process.js';
import { commandCpuSeconds, groupCpuSeconds } from './cpu.js';
import { positiveIntFromEnv } from './env.js';
import { freePort, scratchDirectory } from './processes.js';
import type { ReceivedCounts, ReceiverPorts } from './sink-receivers.js';
import { median } from './summary.js';

const RECORDS = positiveIntFromEnv('PUMP_BENCH_RECORDS', 200_000);
const ROUNDS = positiveIntFromEnv('PUMP_BENCH_ROUNDS', 3);
const SINK_BATCH = positiveIntFromEnv('PUMP_BENCH_SINK_BATCH', 1000);
const CONNECTIONS = positiveIntFromEnv('PUMP_BENCH_CONNECTIONS', 3);
const TARGETS = (process.env.PUMP_BENCH_TARGETS ?? 'postgres,postgres-aggregates,file').split(',').filter(Boolean);
const SOURCES = (process.env.PUMP_BENCH_SOURCES ?? 'embedded,redis').split(',').filter(Boolean);
for (const source of SOURCES) if (source !== 'embedded' && source !== 'redis') throw new Error(`PUMP_BENCH_SOURCES: expected embedded or redis, found ${source}`);
const REDIS_URL = process.env.PUMP_BENCH_REDIS ?? 'redis://127.0.0.1:6379';
const USES_POSTGRES = TARGETS.some((target) => target.startsWith('postgres'));
const ADMIN_URL = process.env.PUMP_BENCH_PG ?? 'postgres://postgres@127.0.0.1:5432/test';
const SHAPE = process.env.PUMP_BENCH_SHAPE ?? 'answered';
if (SHAPE !== 'answered' && SHAPE !== 'proxied') throw new Error(`PUMP_BENCH_SHAPE: expected answered or proxied, found ${SHAPE}`);
/** Records per spooled batch, as the gateway writes them. */
const SPOOL_BATCH = 500;

const scratch = await scratchDirectory('tollgate-pump-bench-');
const template = builtRecords(SPOOL_BATCH, { headers: false, upstream: SHAPE === 'proxied' });
const recordBytes = encodeBatch(template).length / SPOOL_BATCH;
const jsonBytes = Buffer.byteLength(template.map((record) => JSON.stringify(record)).join('')) / SPOOL_BATCH;

const admin = new pg.Client({ connectionString: ADMIN_URL });
const database = `tollgate_bench_${randomBytes(4).toString('hex')}`;
if (USES_POSTGRES) {
  await admin.connect().catch((error: Error) => {
    throw new Error(`the postgres target needs PostgreSQL at ${ADMIN_URL}: ${error.message}`);
  });
  await admin.query(`CREATE DATABASE ${database}`);
}
const MYSQL_URL = process.env.PUMP_BENCH_MYSQL ?? 'mysql://root@127.0.0.1:3306';
const mysqlAdmin = TARGETS.includes('mysql')
  ? await mysql.createConnection(MYSQL_URL).catch((error: Error) => {
      throw new Error(`the mysql target needs MariaDB or MySQL at ${MYSQL_URL}: ${error.message}`);
    })
  : null;
await mysqlAdmin?.query(`CREATE DATABASE ${database}`);
const NATS_URL = process.env.PUMP_BENCH_NATS ?? 'nats://127.0.0.1:4222';
const nats = TARGETS.includes('nats')
  ? await connectNats({ servers: NATS_URL, timeout: 5_000 }).catch((error: Error) => {
      throw new Error(`the nats target needs a NATS server with JetStream at ${NATS_URL}: ${error.message}`);
    })
  : null;
const natsManager = nats === null ? null : await jetstreamManager(nats);
const AMQP_URL = process.env.PUMP_BENCH_AMQP ?? 'amqp://guest:guest@127.0.0.1:5672';
const amqp = TARGETS.includes('amqp')
  ? await connectAmqp(AMQP_URL).catch((error: Error) => {
      throw new Error(`the amqp target needs RabbitMQ at ${AMQP_URL}: ${error.message}`);
    })
  : null;
const amqpChannel = await amqp?.createChannel();
const RECEIVED_TARGETS = ['http', 'statsd', 'syslog'];
const receiver = TARGETS.some((target) => RECEIVED_TARGETS.includes(target)) ? await startReceivers() : null;
/** The processes whose CPU counts as the server's, per target. */
const SERVER_COMMANDS: Record<string, string> = {
  postgres: 'postgres',
  'postgres-aggregates': 'postgres',
  mysql: commandCpuSeconds('mariadbd') ? 'mariadbd' : 'mysqld',
  nats: 'nats-server',
  amqp: 'beam.smp',
  ...Object.fromEntries(RECEIVED_TARGETS.map((target) => [target, 'bench-receiver'])),
};
/** The targets whose records are counted in a table after each round. */
const TABLE_TARGETS = ['postgres', 'postgres-aggregates', 'mysql'];
const databaseUrl = (): string => {
  const url = new URL(ADMIN_URL);
  url.pathname = `/${database}`;
  return url.toString();
};

/** The child process of bench/sink-receivers.ts, once it listens. */
async function startReceivers(): Promise<{ child: ChildProcess; ports: ReceiverPorts; counts(): Promise<ReceivedCounts> }> {
  const child = fork(new URL('./sink-receivers.ts', import.meta.url), { execArgv: ['--import', 'tsx'], stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
  const [{ ports }] = (await once(child, 'message')) as [{ ports: ReceiverPorts }];
  const counts = async (): Promise<ReceivedCounts> => {
    const answer = once(child, 'message') as Promise<[{ counts: ReceivedCounts }]>;
    child.send('counts');
    return (await answer)[0].counts;
  };
  return { child, ports, counts };
}

/** RECORDS fresh records (new ids, the template's content) in batches as a gateway writes them. */
function* freshBatches(): Generator<{ data: Buffer; records: number }> {
  for (let filled = 0; filled < RECORDS; ) {
    const count = Math.min(SPOOL_BATCH, RECORDS - filled);
    yield { data: encodeBatch(template.slice(0, count).map((record) => ({ ...record, id: newCorrelationId() }))), records: count };
    filled += count;
  }
}

/** The buffer a round drains: how many records it still holds, and what the pump's config says of it. */
interface FilledBuffer {
  remaining(): Promise<number>;
  config: Record<string, unknown>;
  close(): Promise<void>;
}

function filledSpool(directory: string): FilledBuffer {
  const spool = new Spool(spoolPath(join(directory, 'spool'), 'bench', 'instance-1'));
  for (const batch of freshBatches()) spool.append([batch]);
  spool.checkpoint();
  return {
    remaining: async () => spool.totals().records,
    config: { type: 'embedded', directory: join(directory, 'spool') },
    close: async () => spool.close(),
  };
}

/** A stream of its own holding the batches as the redis buffer adds them (one entry per batch); the pump deletes what it acknowledged. */
async function filledStream(name: string): Promise<FilledBuffer> {
  const client = await createClient({ url: REDIS_URL }).connect().catch((error: Error) => {
    throw new Error(`the redis source needs Redis at ${REDIS_URL}: ${error.message}`);
  });
  await client.del(name);
  const adds = [...freshBatches()].map((batch) => client.sendCommand(['XADD', name, '*', 'data', batch.data, 'records', String(batch.records), 'instance', 'bench']));
  await Promise.all(adds);
  return {
    remaining: async () => (await client.xLen(name)) * SPOOL_BATCH,
    config: { type: 'redis', url: REDIS_URL, stream: name },
    close: async () => {
      await client.del(name);
      client.destroy();
    },
  };
}

/** The pump's configuration for one round: the filled buffer, one sink. */
function configFor(target: string, round: string, directory: string, buffer: Record<string, unknown>, healthPort: number): string {
  const postgres = { type: 'postgres', url: databaseUrl(), table: `bench_${round}`, connections: CONNECTIONS, batchSize: SINK_BATCH };
  const sink =
    target === 'postgres'
      ? postgres
      : target === 'postgres-aggregates'
        ? { ...postgres, table: `bench_aggregated_${round}`, aggregatesTable: `bench_aggregates_${round}` }
      : target === 'mysql'
        ? { type: 'mysql', url: `${MYSQL_URL.replace(/\/$/, '')}/${database}`, table: `bench_${round}`, connections: CONNECTIONS, batchSize: SINK_BATCH }
        : target === 'file'
          ? { type: 'file', directory: join(directory, 'records'), batchSize: SINK_BATCH }
          : target === 'http'
            ? { type: 'http', url: `http://127.0.0.1:${receiver?.ports.http}/records`, format: { type: 'ndjson' }, batchSize: SINK_BATCH }
            : target === 'nats'
              ? { type: 'nats', servers: NATS_URL, stream: streamName(round), subject: subjectName(round), createStream: true, batchSize: SINK_BATCH }
              : target === 'amqp'
                ? { type: 'amqp', url: AMQP_URL, queue: queueName(round), batchSize: SINK_BATCH }
                : target === 'statsd'
                  ? { type: 'statsd', host: '127.0.0.1', port: receiver?.ports.statsd, batchSize: SINK_BATCH }
                  : target === 'syslog'
                    ? { type: 'syslog', transport: 'tcp', host: '127.0.0.1', port: receiver?.ports.syslog, batchSize: SINK_BATCH }
                    : target === 'prometheus'
                      ? { type: 'prometheus', batchSize: SINK_BATCH }
                      : null;
  if (sink === null) {
    throw new Error(`PUMP_BENCH_TARGETS: expected postgres, postgres-aggregates, mysql, file, http, nats, amqp, statsd, syslog or prometheus, found ${target}`);
  }
  const config = {
    analytics: { buffer },
    pump: {
      group: `bench-${round}`,
      deadLetterDirectory: join(directory, 'dead-letter'),
      sinks: [sink],
      ...(target === 'prometheus' ? { health: { host: '127.0.0.1', port: healthPort } } : {}),
    },
  };
  const file = join(directory, 'tollgate.yaml');
  writeFileSync(file, JSON.stringify(config));
  return file;
}

const streamName = (round: string): string => `${database}_${round}`;
const subjectName = (round: string): string => `tollgate.bench.${database}.${round}`;
const queueName = (round: string): string => `${database}_${round}`;

interface Drain {
  seconds: number;
  records: number;
  pumpCpuSeconds: number;
  serverCpuSeconds: number | undefined;
}

/** Starts `tollgate pump` on the filled buffer and times it from the first batch it takes away to the empty buffer. */
async function drain(
  configFile: string,
  buffer: FilledBuffer,
  serverCommand: string | undefined,
  settled?: () => Promise<boolean>,
  beforeStop?: () => Promise<void>,
): Promise<Drain> {
  // Its own process group, so that its CPU is read apart from everything else.
  const pump = spawn(process.execPath, [BIN, 'pump', '--config', configFile], { stdio: ['ignore', 'ignore', 'pipe'], detached: true });
  let output = '';
  pump.stderr.on('data', (chunk: Buffer) => (output += chunk.toString()));
  const exited = once(pump, 'exit');
  const pid = pump.pid as number;
  const pumpCpu = (): number => groupCpuSeconds([pid])?.[0] ?? Number.NaN;
  try {
    const deadline = Date.now() + 600_000;
    const waitFor = async (done: (records: number) => boolean, what: string): Promise<number> => {
      for (;;) {
        const records = await buffer.remaining();
        if (done(records)) return records;
        if (pump.exitCode !== null) throw new Error(`the pump exited (${pump.exitCode}) ${what}:\n${output}`);
        if (Date.now() > deadline) throw new Error(`the pump took more than 10 minutes ${what}:\n${output}`);
        await sleep(5);
      }
    };
    const left = await waitFor((records) => records < RECORDS, 'before taking any batch');
    const started = performance.now();
    // The server's processes on this host: their CPU per record, beside the pump's.
    const serverCpu = (): number | undefined => (serverCommand === undefined ? undefined : commandCpuSeconds(serverCommand));
    const [pumpBefore, serverBefore] = [pumpCpu(), serverCpu()];
    await waitFor((records) => records === 0, 'before emptying the buffer');
    while (settled && !(await settled())) {
      if (pump.exitCode !== null) throw new Error(`the pump exited (${pump.exitCode}) before settling:\n${output}`);
      if (Date.now() > deadline) throw new Error(`the pump took more than 10 minutes to settle:\n${output}`);
      await sleep(5);
    }
    const seconds = (performance.now() - started) / 1000;
    const [pumpAfter, serverAfter] = [pumpCpu(), serverCpu()];
    await beforeStop?.();
    return {
      seconds,
      records: left,
      pumpCpuSeconds: pumpAfter - pumpBefore,
      serverCpuSeconds: serverBefore === undefined || serverAfter === undefined ? undefined : serverAfter - serverBefore,
    };
  } finally {
    pump.kill('SIGTERM');
    await exited;
  }
}

async function rowsIn(target: string, table: string): Promise<number> {
  if (target === 'mysql') {
    const [rows] = await (mysqlAdmin as mysql.Connection).query<mysql.RowDataPacket[]>(`SELECT count(*) AS n FROM ${database}.${table}`);
    return Number(rows[0]?.n);
  }
  const client = new pg.Client({ connectionString: databaseUrl() });
  await client.connect();
  try {
    return (await client.query<{ n: number }>(`SELECT count(*)::int AS n FROM ${table}`)).rows[0]?.n ?? 0;
  } finally {
    await client.end();
  }
}

/** The records the pump's prometheus sink counted, from `/metrics` on pump.health's port. */
async function countedByPrometheus(healthPort: number): Promise<number> {
  const response = await fetch(`http://127.0.0.1:${healthPort}/metrics`);
  if (!response.ok) throw new Error(`prometheus: GET /metrics answered ${response.status}`);
  return samplesOf(parseExposition(await response.text()), 'tollgate_requests_total').reduce((sum, sample) => sum + sample.value, 0);
}

/**
 * After a round: checks that the target has every record (or, for StatsD over UDP, which may lose
 * datagrams, what reached its socket) and removes the round's stream or queue; a note on what it
 * received, if anything is worth printing.
 */
async function checkDelivered(name: string, target: string, round: string, before: ReceivedCounts | undefined): Promise<string> {
  const missing = (found: number): Error => new Error(`${name}: ${found} of ${RECORDS} records delivered`);
  if (TABLE_TARGETS.includes(target)) {
    const found = await rowsIn(target, target === 'postgres-aggregates' ? `bench_aggregated_${round}` : `bench_${round}`);
    if (found !== RECORDS) throw missing(found);
    return '';
  }
  if (target === 'nats') {
    const messages = (await (natsManager as NonNullable<typeof natsManager>).streams.info(streamName(round))).state.messages;
    await natsManager?.streams.delete(streamName(round));
    if (messages !== RECORDS) throw missing(messages);
    return '';
  }
  if (target === 'amqp') {
    const { messageCount } = await (amqpChannel as NonNullable<typeof amqpChannel>).checkQueue(queueName(round));
    await amqpChannel?.deleteQueue(queueName(round));
    // At least once: a batch whose confirms were lost is published again.
    if (messageCount < RECORDS) throw missing(messageCount);
    return messageCount > RECORDS ? `; ${messageCount - RECORDS} messages twice` : '';
  }
  if (receiver === null || before === undefined) return '';
  const after = await receiver.counts();
  if (target === 'http') {
    const lines = after.httpLines - before.httpLines;
    if (lines < RECORDS) throw missing(lines);
    return lines > RECORDS ? `; ${lines - RECORDS} lines twice` : '';
  }
  if (target === 'statsd') {
    return `; the socket got ${after.statsdDatagrams - before.statsdDatagrams} datagrams, ${after.statsdLines - before.statsdLines} lines`;
  }
  if (target === 'syslog') {
    const bytes = after.syslogBytes - before.syslogBytes;
    if (bytes === 0) throw missing(0);
    return `; the TCP server (not rsyslog) read ${(bytes / 1e6).toFixed(1)} MB`;
  }
  return '';
}

/** Whether every record written with aggregates was aggregated: its pending table is empty and the minutes count them all. */
async function aggregated(client: pg.Client, round: string): Promise<boolean> {
  const table = `bench_aggregates_${round}`;
  try {
    const found = await client.query<{ pending: number | null; hits: number | null }>(
      `SELECT (SELECT count(*)::int FROM ${table}_pending) AS pending, (SELECT sum(hits)::int FROM ${table} WHERE dimension = 'total' AND bucket_size = 'minute') AS hits`,
    );
    return found.rows[0]?.pending === 0 && found.rows[0]?.hits === RECORDS;
  } catch {
    return false; // The pump has not made the table yet.
  }
}

console.log(
  `pump bench: ${RECORDS} ${SHAPE} records of ${Math.round(recordBytes)} B MessagePack (${Math.round(jsonBytes)} B as JSON), spooled in batches of ${SPOOL_BATCH}; ` +
    `sink batches of ${SINK_BATCH}; postgres on ${CONNECTIONS} connections; ${ROUNDS} interleaved rounds; one tollgate pump process`,
);
const runs = SOURCES.flatMap((source) => TARGETS.map((target) => ({ source, target, name: SOURCES.length > 1 ? `${target} from ${source}` : target })));
const rates = new Map<string, number[]>(runs.map(({ name }) => [name, []]));
const micros = new Map<string, [number, number][]>(runs.map(({ name }) => [name, []]));
try {
  for (let round = 1; round <= ROUNDS; round++) {
    for (const { source, target, name } of runs) {
      const directory = join(scratch, `${target}-${source}-${round}`);
      mkdirSync(join(directory, 'spool'), { recursive: true });
      const buffer = source === 'redis' ? await filledStream(`tollgate:bench:${database}:${target}:${round}`) : filledSpool(directory);
      const checker = target === 'postgres-aggregates' ? new pg.Client({ connectionString: databaseUrl() }) : null;
      await checker?.connect();
      // Tables of their own per round and source: `bench_<source>_<round>`.
      const tables = `${source}_${round}`;
      const settled = checker ? () => aggregated(checker, tables) : undefined;
      const healthPort = target === 'prometheus' ? await freePort() : 0;
      // The prometheus sink's counts live in the pump: read before it stops.
      const scraped = async (): Promise<void> => {
        const counted = await countedByPrometheus(healthPort);
        if (counted !== RECORDS) throw new Error(`${name}: ${counted} of ${RECORDS} records counted`);
      };
      const received = target === 'http' || target === 'statsd' || target === 'syslog' ? await receiver?.counts() : undefined;
      const result = await drain(
        configFor(target, tables, directory, buffer.config, healthPort),
        buffer,
        SERVER_COMMANDS[target],
        settled,
        target === 'prometheus' ? scraped : undefined,
      )
        .finally(() => checker?.end())
        .finally(() => buffer.close());
      const note = await checkDelivered(name, target, tables, received);
      const rate = result.records / result.seconds;
      const pumpMicros = (result.pumpCpuSeconds * 1e6) / result.records;
      const serverMicros = result.serverCpuSeconds !== undefined ? (result.serverCpuSeconds * 1e6) / result.records : undefined;
      rates.get(name)?.push(rate);
      micros.get(name)?.push([pumpMicros, serverMicros ?? 0]);
      console.log(
        `round ${round} ${name}: ${Math.round(rate)} records/s (${result.records} in ${result.seconds.toFixed(2)} s); CPU per record: ${pumpMicros.toFixed(1)} us in the pump` +
          (serverMicros === undefined ? '' : `, ${serverMicros.toFixed(1)} us in ${SERVER_COMMANDS[target]}`) +
          note,
      );
    }
  }
  for (const { target, name } of runs) {
    const values = rates.get(name) ?? [];
    const cpu = micros.get(name) ?? [];
    const pump = median(cpu.map(([pumpMicros]) => pumpMicros));
    const server = median(cpu.map(([, serverMicros]) => serverMicros));
    console.log(
      `median ${name}: ${Math.round(median(values))} records/s over ${values.length} rounds; CPU per record ${pump.toFixed(1)} us in the pump` +
        (target in SERVER_COMMANDS
          ? `, ${server.toFixed(1)} us in ${SERVER_COMMANDS[target]}` + (RECEIVED_TARGETS.includes(target) ? '' : " (every session's: other users of the server count too)")
          : ''),
    );
  }
  for (const source of SOURCES) {
    const of = (target: string): number[] | undefined => rates.get(runs.find((run) => run.source === source && run.target === target)?.name ?? '');
    const [plain, aggregating] = [of('postgres'), of('postgres-aggregates')];
    if (plain?.length && aggregating?.length) {
      const cost = (1 - median(aggregating) / median(plain)) * 100;
      console.log(`aggregation costs ${cost.toFixed(1)}% of the pump's PostgreSQL throughput from the ${source} buffer (goal: <= 15%)`);
    }
  }
} finally {
  if (USES_POSTGRES) {
    await admin.query(`DROP DATABASE IF EXISTS ${database} WITH (FORCE)`);
    await admin.end();
  }
  await mysqlAdmin?.query(`DROP DATABASE IF EXISTS ${database}`);
  await mysqlAdmin?.end();
  // A round that failed leaves its stream or queue.
  if (natsManager !== null) {
    for await (const stream of natsManager.streams.names()) if (stream.startsWith(database)) await natsManager.streams.delete(stream);
  }
  await nats?.close();
  for (const { source, target } of runs) {
    if (target !== 'amqp') continue;
    for (let round = 1; round <= ROUNDS; round++) await amqpChannel?.deleteQueue(queueName(`${source}_${round}`));
  }
  await amqp?.close();
  receiver?.child.disconnect();
}
