import { once } from 'node:events';
import { connect, createServer } from 'node:net';
import type { AddressInfo, Server, Socket } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { waitUntil } from '../time.js';
import { serverPort, startTcpProxy, urlThrough } from '../testing.js';

let echo: Server | undefined;
afterEach(async () => {
  echo?.close();
  echo = undefined;
});

/** An echo server on loopback port 0. */
async function echoServer(): Promise<number> {
  echo = createServer((socket) => {
    socket.on('error', () => {});
    socket.pipe(socket);
  });
  echo.listen(0, '127.0.0.1');
  await once(echo, 'listening');
  return (echo.address() as AddressInfo).port;
}

/** A client socket that collects what it receives. */
async function client(port: number): Promise<{ socket: Socket; received: () => string; closed: Promise<NodeJS.ErrnoException | undefined> }> {
  const socket = connect(port, '127.0.0.1');
  let error: NodeJS.ErrnoException | undefined;
  socket.on('error', (e) => (error = e));
  let text = '';
  socket.on('data', (chunk: Buffer) => (text += chunk.toString()));
  const closed = new Promise<NodeJS.ErrnoException | undefined>((resolve) => socket.once('close', () => resolve(error)));
  await once(socket, 'connect');
  return { socket, received: () => text, closed };
}

describe('startTcpProxy', () => {
  it('forwards both ways and counts its connections', async () => {
    await using proxy = await startTcpProxy(await echoServer());
    const c = await client(proxy.port);
    c.socket.write('ping');
    await waitUntil(() => c.received() === 'ping', { timeoutMs: 5_000, what: 'the echo' });
    expect(proxy.connections).toBe(1);
    c.socket.destroy();
    await waitUntil(() => proxy.connections === 0, { timeoutMs: 5_000, what: 'the pair to go' });
  });

  it('partition() silences open and new connections until heal() lets the held bytes through', async () => {
    await using proxy = await startTcpProxy(await echoServer());
    const open = await client(proxy.port);
    proxy.partition();
    const held = await client(proxy.port);
    open.socket.write('a');
    held.socket.write('b');
    // A negative check needs a window: one loopback round trip is far below it.
    await new Promise((resolve) => setTimeout(resolve, 100));
    expect([open.received(), held.received()]).toEqual(['', '']);
    proxy.heal();
    await waitUntil(() => open.received() === 'a' && held.received() === 'b', { timeoutMs: 5_000, what: 'the held bytes' });
    open.socket.destroy();
    held.socket.destroy();
  });

  it('reset() cuts every connection with a TCP reset', async () => {
    await using proxy = await startTcpProxy(await echoServer());
    const c = await client(proxy.port);
    await waitUntil(() => proxy.connections === 1, { timeoutMs: 5_000, what: 'the proxy to accept' });
    proxy.reset();
    expect((await c.closed)?.code).toBe('ECONNRESET');
    expect(proxy.connections).toBe(0);
  });
});

describe('urlThrough and serverPort', () => {
  it('point a URL at the proxy and read the server port (5432 by default)', () => {
    expect(urlThrough('postgres://postgres@db.example:5433/t?x=1', 40123)).toBe('postgres://postgres@127.0.0.1:40123/t?x=1');
    expect(serverPort('postgres://postgres@127.0.0.1:5433/t')).toBe(5433);
    expect(serverPort('postgres://postgres@localhost/t')).toBe(5432);
  });
});
