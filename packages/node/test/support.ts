import { createServer, type RequestListener, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { WebSocket, WebSocketServer, type ClientOptions } from 'ws';

/** The Postgres of the tests (trust auth): `GUARD_TEST_PG_URL`, else the local test database. */
export const PG_URL = process.env.GUARD_TEST_PG_URL ?? 'postgres://postgres@127.0.0.1:5432/test';

/** A real HTTP server on 127.0.0.1, port 0. */
export async function listen(handler: RequestListener): Promise<{ server: Server; base: string } & AsyncDisposable> {
  const server = createServer(handler);
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  return {
    server,
    base,
    [Symbol.asyncDispose]: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}

/** A `ws` server on its own HTTP server; `connect` resolves once the server saw the client. */
export async function wsServer(): Promise<{ wss: WebSocketServer; connect(options?: ClientOptions): Promise<WebSocket> } & AsyncDisposable> {
  const http = await listen(() => {});
  const wss = new WebSocketServer({ server: http.server });
  const url = http.base.replace('http:', 'ws:');
  const clients: WebSocket[] = [];
  return {
    wss,
    async connect(options) {
      const seen = new Promise((resolve) => wss.once('connection', resolve));
      const client = new WebSocket(url, options);
      clients.push(client);
      client.on('error', () => {});
      await Promise.all([seen, new Promise((resolve) => client.once('open', resolve))]);
      return client;
    },
    async [Symbol.asyncDispose]() {
      for (const c of clients) c.terminate();
      await new Promise<void>((resolve) => wss.close(() => resolve()));
      await http[Symbol.asyncDispose]();
    },
  };
}

/** A kysely schema with no typed tables: the tests query with `sql` and `selectNoFrom`. */
export type NoTables = Record<string, never>;

/** Resolves once `predicate` holds, checking on every tick of `intervalMs`; rejects after `timeoutMs`. */
export async function until(predicate: () => boolean | Promise<boolean>, what: string, timeoutMs = 15_000, intervalMs = 25): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await predicate())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, intervalMs));
  }
}
