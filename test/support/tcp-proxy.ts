import { connect, createServer, type AddressInfo, type Server, type Socket } from 'node:net';

/**
 * A TCP forwarder to a server (PostgreSQL, Redis...) that a test can cut, as an outage would:
 * every open connection is destroyed and new ones are refused until it is restored. Or it can
 * black-hole the traffic, as a dead network path would: connections stay open, nothing arrives.
 */
export class TcpProxy {
  readonly #sockets = new Set<Socket>();
  #server: Server | null = null;
  #port = 0;
  #blackHoled = false;

  private constructor(
    readonly targetHost: string,
    readonly targetPort: number,
  ) {}

  /** Listens on 127.0.0.1 (an OS-assigned port unless `port` is given) and forwards to the target. */
  static async start(targetHost: string, targetPort: number, port = 0): Promise<TcpProxy> {
    const proxy = new TcpProxy(targetHost, targetPort);
    await proxy.#listen(port);
    return proxy;
  }

  get port(): number {
    return this.#port;
  }

  /** Destroys every connection and stops listening: new connections are refused. */
  async cutOff(): Promise<void> {
    const server = this.#server;
    this.#server = null;
    for (const socket of this.#sockets) socket.destroy();
    this.#sockets.clear();
    if (server) await new Promise<void>((resolve) => server.close(() => resolve()));
  }

  /** Connections stay open and new ones are accepted, but every byte either way is dropped. */
  blackHole(): void {
    this.#blackHoled = true;
  }

  /** Forwards again (listening again on the same port after a cut). */
  async restore(): Promise<void> {
    this.#blackHoled = false;
    if (this.#server === null) await this.#listen(this.#port);
  }

  async close(): Promise<void> {
    await this.cutOff();
  }

  async #listen(port: number): Promise<void> {
    const server = createServer((client) => this.#forward(client));
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(port, '127.0.0.1', () => {
        server.off('error', reject);
        resolve();
      });
    });
    this.#port = (server.address() as AddressInfo).port;
    this.#server = server;
  }

  #forward(client: Socket): void {
    const upstream = connect(this.targetPort, this.targetHost);
    for (const socket of [client, upstream]) {
      this.#sockets.add(socket);
      socket.on('close', () => this.#sockets.delete(socket));
    }
    const end = (): void => {
      client.destroy();
      upstream.destroy();
    };
    client.on('error', end);
    upstream.on('error', end);
    client.on('close', end);
    upstream.on('close', end);
    client.on('data', (chunk: Buffer) => this.#blackHoled || upstream.write(chunk));
    upstream.on('data', (chunk: Buffer) => this.#blackHoled || client.write(chunk));
  }
}
