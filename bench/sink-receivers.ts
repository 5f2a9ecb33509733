/**
 * The receivers the pump bench's http, statsd and syslog targets deliver to, in a process of their
 * own (its name `bench-receiver`, so that its CPU is read apart from the bench's): an HTTP server
 * counting NDJSON lines and answering 200, a UDP socket counting StatsD datagrams and lines, and a
 * TCP server that reads and discards (counting bytes) — not rsyslog. Started with `fork`: it
 * sends its ports once listening, then answers each `counts` message with what it has received.
 */
import { createSocket } from 'node:dgram';
import { once } from 'node:events';
import { createServer as createHttpServer } from 'node:http';
import { createServer as createTcpServer, type AddressInfo } from 'node:net';

export interface ReceiverPorts {
  http: number;
  statsd: number;
  syslog: number;
}

export interface ReceivedCounts {
  /** NDJSON lines in the bodies of the requests answered. */
  httpLines: number;
  statsdDatagrams: number;
  statsdLines: number;
  syslogBytes: number;
}

const NEWLINE = 0x0a;

/** Newlines in a chunk: one per NDJSON or StatsD line. */
function newlines(chunk: Buffer): number {
  let count = 0;
  for (let at = chunk.indexOf(NEWLINE); at !== -1; at = chunk.indexOf(NEWLINE, at + 1)) count++;
  return count;
}

async function main(): Promise<void> {
  process.title = 'bench-receiver';
  const counts: ReceivedCounts = { httpLines: 0, statsdDatagrams: 0, statsdLines: 0, syslogBytes: 0 };

  const http = createHttpServer((request, response) => {
    let lines = 0;
    let last = NEWLINE;
    request.on('data', (chunk: Buffer) => {
      lines += newlines(chunk);
      last = chunk[chunk.length - 1] ?? last;
    });
    request.on('end', () => {
      // A body whose last line has no newline still holds that line.
      counts.httpLines += lines + (last === NEWLINE ? 0 : 1);
      response.writeHead(200, { 'content-type': 'text/plain' }).end('ok\n');
    });
  });
  http.keepAliveTimeout = 60_000;
  http.listen(0, '127.0.0.1');

  const statsd = createSocket('udp4');
  statsd.on('message', (datagram: Buffer) => {
    counts.statsdDatagrams++;
    counts.statsdLines += newlines(datagram) + 1;
  });
  statsd.bind(0, '127.0.0.1');

  const syslog = createTcpServer((socket) => {
    socket.on('data', (chunk: Buffer) => (counts.syslogBytes += chunk.length));
    socket.on('error', () => socket.destroy());
  });
  syslog.listen(0, '127.0.0.1');

  await Promise.all([once(http, 'listening'), once(statsd, 'listening'), once(syslog, 'listening')]);
  const ports: ReceiverPorts = {
    http: (http.address() as AddressInfo).port,
    statsd: statsd.address().port,
    syslog: (syslog.address() as AddressInfo).port,
  };
  process.send?.({ ports });
  process.on('message', (message) => {
    if (message === 'counts') process.send?.({ counts });
  });
  // Gone with the bench.
  process.on('disconnect', () => process.exit(0));
}

await main();
