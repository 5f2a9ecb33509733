import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { createSocket } from 'node:dgram';
import { once } from 'node:events';
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { connect } from 'node:net';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { eventually } from './gateway-process.js';
import { freePort } from './redis-server.js';

const run = promisify(execFile);

export type SyslogTransport = 'udp' | 'tcp' | 'tls';

/** A message as rsyslog received it: the raw text, and the RFC 5424 fields as rsyslog parsed them. */
export interface ReceivedMessage {
  raw: string;
  version: string;
  facility: string;
  severity: string;
  hostname: string;
  appName: string;
  procid: string;
  msgid: string;
  structuredData: string;
  msg: string;
  time: string;
}

/** A free UDP port on 127.0.0.1 right now (rsyslog cannot be given port 0). */
async function freeUdpPort(): Promise<number> {
  const socket = createSocket('udp4');
  await new Promise<void>((resolve) => socket.bind(0, '127.0.0.1', resolve));
  const { port } = socket.address();
  await new Promise<void>((resolve) => socket.close(resolve));
  return port;
}

function accepts(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = connect(port, '127.0.0.1', () => {
      socket.destroy();
      resolve(true);
    });
    socket.on('error', () => resolve(false));
  });
}

/** A certificate authority and a server certificate for 127.0.0.1 signed by it, made with the openssl command. */
async function makeCertificates(directory: string): Promise<void> {
  const at = (name: string): string => join(directory, name);
  await run('openssl', ['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-keyout', at('ca.key'), '-out', at('ca.pem'), '-days', '2', '-subj', '/CN=tollgate test CA']);
  await run('openssl', ['req', '-newkey', 'rsa:2048', '-nodes', '-keyout', at('server.key'), '-out', at('server.csr'), '-subj', '/CN=localhost']);
  await writeFile(at('server.ext'), 'subjectAltName=IP:127.0.0.1,DNS:localhost\n');
  await run('openssl', ['x509', '-req', '-in', at('server.csr'), '-CA', at('ca.pem'), '-CAkey', at('ca.key'), '-CAcreateserial', '-out', at('server.pem'), '-days', '2', '-extfile', at('server.ext')]);
}

/**
 * A test's own `rsyslogd` (Debian's rsyslog and rsyslog-openssl): RFC 5424 over UDP, TCP and TLS
 * (octet-counted frames), each input's messages written as JSON lines to a file of its own with
 * the raw message and the fields rsyslog parsed. `stop()` then `start()` is an outage on the same ports.
 */
export class RsyslogServer {
  #child: ChildProcess | null = null;
  #output = '';

  private constructor(
    readonly directory: string,
    readonly ports: Record<SyslogTransport, number>,
  ) {}

  static async start(): Promise<RsyslogServer> {
    const directory = await mkdtemp(join(tmpdir(), 'tollgate-rsyslog-'));
    await mkdir(join(directory, 'work'));
    await makeCertificates(directory);
    const server = new RsyslogServer(directory, { udp: await freeUdpPort(), tcp: await freePort(), tls: await freePort() });
    await writeFile(server.#configFile, server.#config());
    await server.start();
    return server;
  }

  get caFile(): string {
    return join(this.directory, 'ca.pem');
  }

  async start(): Promise<void> {
    const child = spawn('rsyslogd', ['-n', '-f', this.#configFile, '-i', join(this.directory, 'rsyslogd.pid')], { stdio: ['ignore', 'pipe', 'pipe'] });
    child.stdout?.on('data', (chunk: Buffer) => (this.#output += chunk.toString()));
    child.stderr?.on('data', (chunk: Buffer) => (this.#output += chunk.toString()));
    const failed = new Promise<never>((_, reject) => {
      child.once('error', (error) => reject(new Error(`rsyslogd could not be started (apt-get install rsyslog rsyslog-openssl): ${error.message}`)));
      child.once('exit', (code) => reject(new Error(`rsyslogd exited with code ${code}:\n${this.#output}`)));
    });
    failed.catch(() => undefined);
    this.#child = child;
    await Promise.race([failed, this.#ready()]);
  }

  /** Stops rsyslogd (SIGTERM) and waits for it to exit. */
  async stop(): Promise<void> {
    const child = this.#child;
    this.#child = null;
    if (child === null || child.exitCode !== null || child.signalCode !== null) return;
    const exited = once(child, 'exit');
    child.kill('SIGTERM');
    await exited;
  }

  async close(): Promise<void> {
    await this.stop();
    await rm(this.directory, { recursive: true, force: true });
  }

  /** What rsyslog wrote for the messages received on one input so far (its readiness probes left out). */
  async received(transport: SyslogTransport): Promise<ReceivedMessage[]> {
    const text = await readFile(this.#outputFile(transport), 'utf8').catch(() => '');
    // rsyslogd may be writing the last line: only whole lines count.
    return text
      .split('\n')
      .slice(0, -1)
      .map((line) => JSON.parse(line) as ReceivedMessage)
      .filter((message) => message.appName !== 'rsyslog-probe');
  }

  get #configFile(): string {
    return join(this.directory, 'rsyslog.conf');
  }

  #outputFile(transport: SyslogTransport): string {
    return join(this.directory, `${transport}.jsonl`);
  }

  #config(): string {
    const { directory, ports } = this;
    const fields = { raw: 'rawmsg', version: 'protocol-version', facility: 'syslogfacility', severity: 'syslogseverity', hostname: 'hostname' };
    const more = { appName: 'app-name', procid: 'procid', msgid: 'msgid', structuredData: 'structured-data', msg: 'msg' };
    const properties = Object.entries({ ...fields, ...more }).map(([out, name]) => `  property(outname="${out}" name="${name}" format="jsonf")`);
    const transports: SyslogTransport[] = ['udp', 'tcp', 'tls'];
    return [
      `global(workDirectory="${join(directory, 'work')}" maxMessageSize="64k" net.enableDNS="off"`,
      `  defaultNetstreamDriverCAFile="${join(directory, 'ca.pem')}" defaultNetstreamDriverCertFile="${join(directory, 'server.pem')}" defaultNetstreamDriverKeyFile="${join(directory, 'server.key')}")`,
      'module(load="imudp")',
      'module(load="imtcp")',
      'template(name="parsed" type="list" option.jsonf="on") {',
      ...properties,
      '  property(outname="time" name="timereported" dateFormat="rfc3339" format="jsonf")',
      '}',
      ...transports.map((transport) => `ruleset(name="${transport}") { action(type="omfile" file="${this.#outputFile(transport)}" template="parsed") }`),
      // UDP has no flow control: a burst larger than the socket's receive buffer is dropped by the kernel.
      `input(type="imudp" address="127.0.0.1" port="${ports.udp}" ruleset="udp" rcvbufSize="16m")`,
      `input(type="imtcp" address="127.0.0.1" port="${ports.tcp}" ruleset="tcp")`,
      `input(type="imtcp" address="127.0.0.1" port="${ports.tls}" ruleset="tls" streamDriver.name="ossl" streamDriver.mode="1" streamDriver.authMode="anon")`,
      '',
    ].join('\n');
  }

  /** Ready once both TCP ports take connections and a probe sent over UDP shows in its file. */
  async #ready(): Promise<void> {
    const socket = createSocket('udp4');
    try {
      await eventually(
        async () => {
          socket.send('<14>1 - - rsyslog-probe - - - ready', this.ports.udp, '127.0.0.1');
          const text = await readFile(this.#outputFile('udp'), 'utf8').catch(() => '');
          return (text.includes('rsyslog-probe') && (await accepts(this.ports.tcp)) && (await accepts(this.ports.tls))) || undefined;
        },
        10_000,
        `rsyslogd (${this.directory}) to receive on port ${this.ports.udp}`,
      );
    } finally {
      socket.close();
    }
  }
}
