import { connect, createServer, type Server, type Socket } from 'node:net';
import type { AddressInfo } from 'node:net';

/**
 * A loopback TCP proxy that can simulate a network partition: `partition()` stops forwarding in both directions
 * without closing or resetting anything (bytes wait, as they would in a real partition while TCP retransmits),
 * `restore()` delivers them and forwards again. New connections are accepted but get no answer while partitioned.
 */
export class PartitionProxy implements AsyncDisposable {
  readonly port: number;
  readonly #server: Server;
  readonly #sockets = new Set<Socket>();
  readonly #held: { to: Socket; chunk: Buffer }[] = [];
  #partitioned = false;

  private constructor(server: Server) {
    this.#server = server;
    this.port = (server.address() as AddressInfo).port;
  }

  /** Starts a proxy on 127.0.0.1:0 in front of `targetHost:targetPort`. */
  static async start(targetPort: number, targetHost = '127.0.0.1'): Promise<PartitionProxy> {
    const ready: { proxy?: PartitionProxy } = {};
    const server = createServer((client) => ready.proxy!.#pipe(client, connect(targetPort, targetHost)));
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    ready.proxy = new PartitionProxy(server);
    return ready.proxy;
  }

  /** Open proxied connections (both halves counted once). */
  get connections(): number {
    return this.#sockets.size / 2;
  }

  partition(): void {
    this.#partitioned = true;
  }

  restore(): void {
    this.#partitioned = false;
    for (const { to, chunk } of this.#held.splice(0)) if (!to.destroyed) to.write(chunk);
  }

  #pipe(client: Socket, upstream: Socket): void {
    for (const [from, to] of [[client, upstream], [upstream, client]] as const) {
      this.#sockets.add(from);
      from.on('data', (chunk: Buffer) => {
        if (this.#partitioned) this.#held.push({ to, chunk });
        else if (!to.destroyed) to.write(chunk);
      });
      from.on('error', () => to.destroy());
      from.once('close', () => {
        this.#sockets.delete(from);
        to.destroy();
      });
    }
  }

  async close(): Promise<void> {
    for (const socket of this.#sockets) socket.destroy();
    await new Promise<void>((resolve) => this.#server.close(() => resolve()));
  }

  async [Symbol.asyncDispose](): Promise<void> {
    await this.close();
  }
}
