import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { ClientOptions, ServerOptions, WebSocket, WebSocketServer } from 'ws';

/**
 * One client of a {@link WsTestServer} and the server's side of it.
 *
 * @example
 * const { client, server, closed } = await fx.connect();
 */
export interface WsTestPeer {
  readonly client: WebSocket;
  /** The server's socket for `client`: what a `WebSocketTracker` tracks. */
  readonly server: WebSocket;
  /** Resolves with the close code the client saw. */
  readonly closed: Promise<number>;
}

/**
 * A real `ws` server on 127.0.0.1, port 0, for tests.
 *
 * @example
 * await using fx = await wsTestServer();
 * const tracker = new WebSocketTracker(fx.wss);
 */
export interface WsTestServer extends AsyncDisposable {
  readonly wss: WebSocketServer;
  readonly url: string;
  /** Connects a client that reads and never acks; resolves once the server saw it. */
  connect(options?: ClientOptions): Promise<WsTestPeer>;
}

/**
 * Starts a {@link WsTestServer} (`maxPayload` goes to the `WebSocketServer`); disposing it terminates every client
 * and closes the server. `ws` (an optional peer) is loaded here, so importing `@guard/detectors/testing` does not need it.
 *
 * @example
 * await using fx = await wsTestServer();
 * const { client, server } = await fx.connect();
 */
export async function wsTestServer(options: Pick<ServerOptions, 'maxPayload'> = {}): Promise<WsTestServer> {
  const { WebSocket, WebSocketServer } = await import('ws');
  const http = createServer();
  const wss = new WebSocketServer({ ...options, server: http });
  await new Promise<void>((resolve) => http.listen(0, '127.0.0.1', resolve));
  const url = `ws://127.0.0.1:${(http.address() as AddressInfo).port}`;
  const clients: WebSocket[] = [];
  return {
    wss,
    url,
    async connect(options) {
      const server = new Promise<WebSocket>((resolve) => wss.once('connection', resolve));
      const client = new WebSocket(url, options);
      clients.push(client);
      const closed = new Promise<number>((resolve) => client.once('close', (code: number) => resolve(code)));
      await new Promise<void>((resolve, reject) => {
        client.once('open', () => resolve());
        client.once('error', reject);
      });
      return { client, server: await server, closed };
    },
    async [Symbol.asyncDispose]() {
      for (const client of clients) client.terminate();
      for (const socket of wss.clients) socket.terminate();
      await new Promise<void>((resolve) => wss.close(() => resolve()));
      await new Promise<void>((resolve) => http.close(() => resolve()));
    },
  };
}
