import { once } from 'node:events';
import { connect, createServer } from 'node:net';
import type { AddressInfo, Socket } from 'node:net';

/**
 * A loopback TCP proxy in front of a server, to cut the network under a client: `reset()` kills every connection
 * with a TCP RST; `partition()` stops forwarding (both directions are paused, new connections are held, so the
 * peers see silence, as behind a dropped link) until `heal()`.
 */
export interface TcpProxy extends AsyncDisposable {
  readonly port: number;
  /** Connections currently open through the proxy. */
  readonly connections: number;
  reset(): void;
  partition(): void;
  heal(): void;
  close(): Promise<void>;
}

interface Pair {
  readonly client: Socket;
  upstream: Socket | undefined;
}

/**
 * Starts a {@link TcpProxy} on 127.0.0.1 (port 0) forwarding to `targetHost:targetPort`.
 *
 * @example
 * await using proxy = await startTcpProxy(serverPort(db.url));
 * const cut = new pg.Pool({ connectionString: urlThrough(db.url, proxy.port) });
 * proxy.partition(); // queries on `cut` now hang until their timeout
 */
export async function startTcpProxy(targetPort: number, targetHost = '127.0.0.1'): Promise<TcpProxy> {
  const pairs = new Set<Pair>();
  let partitioned = false;
  const forward = (pair: Pair) => {
    if (pair.upstream || pair.client.destroyed) return;
    const { client } = pair;
    const upstream = connect(targetPort, targetHost);
    pair.upstream = upstream;
    upstream.on('error', () => client.destroy());
    client.on('error', () => upstream.destroy());
    client.pipe(upstream);
    upstream.pipe(client);
    client.on('close', () => upstream.destroy());
    upstream.on('close', () => client.destroy());
  };
  const server = createServer((client) => {
    client.on('error', () => {});
    const pair: Pair = { client, upstream: undefined };
    pairs.add(pair);
    client.on('close', () => pairs.delete(pair));
    if (partitioned) client.pause();
    else forward(pair);
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const proxy: TcpProxy = {
    port: (server.address() as AddressInfo).port,
    get connections() {
      return pairs.size;
    },
    reset() {
      for (const pair of [...pairs]) {
        pair.client.resetAndDestroy();
        pair.upstream?.resetAndDestroy();
      }
      pairs.clear();
    },
    partition() {
      partitioned = true;
      for (const { client, upstream } of pairs) {
        client.pause();
        upstream?.pause();
      }
    },
    heal() {
      partitioned = false;
      for (const pair of [...pairs]) {
        if (!pair.upstream) forward(pair);
        else {
          pair.client.resume();
          pair.upstream.resume();
        }
      }
    },
    async close() {
      proxy.reset();
      server.close();
      await once(server, 'close');
    },
    [Symbol.asyncDispose]: () => proxy.close(),
  };
  return proxy;
}

/**
 * `url` with its host and port replaced: the same database reached through a proxy on loopback `port`.
 *
 * @example
 * urlThrough('postgres://postgres@127.0.0.1:5432/t', 40123); // 'postgres://postgres@127.0.0.1:40123/t'
 */
export function urlThrough(url: string, port: number): string {
  const through = new URL(url);
  through.hostname = '127.0.0.1';
  through.port = String(port);
  return through.toString();
}

/**
 * The port of the server behind `url` (5432 when the URL names none), for a {@link TcpProxy} in front of it.
 *
 * @example
 * await using proxy = await startTcpProxy(serverPort(db.url), new URL(db.url).hostname);
 */
export function serverPort(url: string): number {
  return Number(new URL(url).port || 5432);
}
