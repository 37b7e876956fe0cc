import { once } from 'node:events';
import type { Socket } from 'node:net';
import { isGuardError } from '@guard/core';
import { afterEach, describe, expect, it } from 'vitest';
import type { WebSocket } from 'ws';
import { ConnectionPool } from './connection-pool.js';
import type { ConnectionPoolOptions } from './connection-pool.js';
import { closeTestResources, refusedUrl, testPool as pool, wsTestServer } from './test-support.js';

afterEach(closeTestResources);

/** A real ws server that echoes text frames; `break` makes it send a malformed frame, `hang up` closes. */
function echoServer() {
  return wsTestServer((ws) => {
    ws.on('message', (data) => {
      const text = String(data);
      if (text === 'break') {
        // A frame with the reserved opcode 3: the client must fail the connection.
        (ws as unknown as { _socket: Socket })._socket.write(Buffer.from([0x83, 0x00]));
      } else if (text === 'hang up') ws.close(1011, 'bye');
      else ws.send(`echo:${text}`);
    });
  });
}

/** An echo server, a pool (with `options`) and a first lease on it. */
async function leaseOnEchoServer(options: ConnectionPoolOptions = {}) {
  const server = await echoServer();
  const p = pool(options);
  return { server, p, lease: await p.acquire(server.url) };
}

async function reply(socket: WebSocket, text: string): Promise<string> {
  const received = once(socket, 'message');
  socket.send(text);
  const [data] = (await received) as [Buffer];
  return String(data);
}

/** One turn of the event loop: lets queued I/O callbacks and promise jobs run (no wall-clock wait). */
const turn = () => new Promise<void>((resolve) => setImmediate(resolve));

describe('ConnectionPool.acquire', () => {
  it('lends a socket for the caller’s own protocol; disposing the lease returns it (and its slot) to the pool for reuse', async () => {
    const server = await echoServer();
    const p = pool({ maxConcurrentConnections: 1 });
    let first: WebSocket;
    {
      await using lease = await p.acquire(server.url);
      first = lease.socket;
      expect(lease.reused).toBe(false);
      expect(await reply(lease.socket, 'hello')).toBe('echo:hello');
      expect(p.stats()).toMatchObject({ activeConnections: 1, leasedConnections: 1, pooledConnections: 0, openConnections: 1 });
    }
    expect(p.stats()).toMatchObject({ activeConnections: 0, leasedConnections: 0, pooledConnections: 1, openConnections: 1 });
    await using again = await p.acquire(server.url);
    expect(again.reused).toBe(true);
    expect(again.socket).toBe(first);
    expect(await reply(again.socket, 'again')).toBe('echo:again');
    expect(server.counts.total).toBe(1);
  });

  it('holds the semaphore slot: a second acquire waits until the first lease is released, then gets the same socket', async () => {
    const { server, p, lease: first } = await leaseOnEchoServer({ maxConcurrentConnections: 1 });
    let second: Awaited<ReturnType<ConnectionPool['acquire']>> | undefined;
    const waiting = p.acquire(server.url).then((lease) => (second = lease));
    await turn();
    expect(second).toBeUndefined();
    expect(p.stats().waitingRequests).toBe(1);
    await first.release();
    await waiting;
    expect(second!.socket).toBe(first.socket);
    expect(second!.reused).toBe(true);
    await first.release(); // idempotent: does not give the socket back twice
    expect(p.stats()).toMatchObject({ leasedConnections: 1, pooledConnections: 0, openConnections: 1 });
    await second!.release();
    expect(server.counts.total).toBe(1);
  });

  it('destroys a socket that errored during the lease instead of pooling it; the next acquire opens a fresh one', async () => {
    const { server, p, lease } = await leaseOnEchoServer();
    const failed = once(lease.socket, 'error');
    lease.socket.send('break');
    const [error] = (await failed) as [Error];
    expect(error.message).toMatch(/opcode/i);
    expect(lease.broken).toBe(true);
    await lease.release();
    expect(p.stats()).toMatchObject({ pooledConnections: 0, leasedConnections: 0, activeConnections: 0 });
    await using next = await p.acquire(server.url);
    expect(next.reused).toBe(false);
    expect(next.socket).not.toBe(lease.socket);
    expect(await reply(next.socket, 'ok?')).toBe('echo:ok?');
    expect(server.counts.total).toBe(2);
  });

  it('does not pool a socket the server closed during the lease, nor one the caller destroyed', async () => {
    const { server, p, lease: hungUp } = await leaseOnEchoServer();
    const closed = once(hungUp.socket, 'close');
    hungUp.socket.send('hang up');
    await closed;
    expect(hungUp.broken).toBe(true);
    await hungUp.release();
    const destroyed = await p.acquire(server.url);
    expect(destroyed.reused).toBe(false);
    await destroyed.destroy('protocol state unknown');
    expect(destroyed.socket.readyState).toBe(destroyed.socket.CLOSED);
    expect(p.stats()).toMatchObject({ pooledConnections: 0, openConnections: 0, leasedConnections: 0 });
    expect(server.counts.total).toBe(2);
  });

  it('removes the listeners the caller added during the lease, so the next lease of the socket does not get its frames', async () => {
    const { server, p, lease: before } = await leaseOnEchoServer();
    const baseline = before.socket.listenerCount('message');
    await before.release();
    const seenByOldLease: string[] = [];
    {
      await using lease = await p.acquire(server.url);
      lease.socket.on('message', (data) => seenByOldLease.push(String(data)));
      lease.socket.once('close', () => {});
      expect(await reply(lease.socket, 'one')).toBe('echo:one');
    }
    await using next = await p.acquire(server.url);
    expect(next.socket.listenerCount('message')).toBe(baseline);
    expect(next.socket.listenerCount('close')).toBe(before.socket.listenerCount('close'));
    expect(await reply(next.socket, 'two')).toBe('echo:two');
    expect(seenByOldLease).toEqual(['echo:one']);
  });

  it('gives up waiting for a slot when the signal aborts (ABORTED, not a breaker failure), and the slot goes to the pool', async () => {
    const { server, p, lease: held } = await leaseOnEchoServer({ maxConcurrentConnections: 1, breaker: { failureThreshold: 1 } });
    const controller = new AbortController();
    const waiting = p.acquire(server.url, { signal: controller.signal });
    await turn();
    expect(p.stats().waitingRequests).toBe(1);
    controller.abort(new Error('user left'));
    const error = await waiting.catch((e: unknown) => e);
    expect(isGuardError(error, 'ABORTED')).toBe(true);
    expect(((error as Error).cause as Error).message).toBe('user left');
    expect(p.stats().waitingRequests).toBe(0);
    expect(p.breakerFor(server.url).state).toBe('closed');
    await held.release();
    expect(p.stats()).toMatchObject({ pooledConnections: 1, leasedConnections: 0 });
    const already = AbortSignal.abort('gone');
    expect(isGuardError(await p.acquire(server.url, { signal: already }).catch((e: unknown) => e), 'ABORTED')).toBe(true);
  });

  it('counts connect failures on the URL’s breaker and then fails fast with CIRCUIT_OPEN', async () => {
    const url = await refusedUrl();
    const p = pool({ breaker: { failureThreshold: 2, resetTimeoutMs: 60_000 } });
    for (let i = 0; i < 2; i++) {
      const error = await p.acquire(url).catch((e: unknown) => e);
      expect((error as NodeJS.ErrnoException).code).toBe('ECONNREFUSED');
    }
    expect(p.breakerFor(url).state).toBe('open');
    const open = await p.acquire(url).catch((e: unknown) => e);
    expect(isGuardError(open, 'CIRCUIT_OPEN')).toBe(true);
    expect(p.stats()).toMatchObject({ openConnections: 0, connectingConnections: 0, leasedConnections: 0 });
  });

  it('close() rejects a waiting acquire with CLOSED and closes leased sockets; releasing afterwards is harmless', async () => {
    const server = await echoServer();
    const p = new ConnectionPool({ metrics: false, maxConcurrentConnections: 1 });
    const held = await p.acquire(server.url);
    const waiting = p.acquire(server.url).catch((e: unknown) => e);
    await turn();
    await p.close();
    expect(isGuardError(await waiting, 'CLOSED')).toBe(true);
    expect(held.socket.readyState).toBe(held.socket.CLOSED);
    await held.release();
    expect(isGuardError(await p.acquire(server.url).catch((e: unknown) => e), 'CLOSED')).toBe(true);
    expect(p.stats()).toMatchObject({ openConnections: 0, leasedConnections: 0, activeConnections: 0 });
  });

  it('rejects a URL that is not ws:// or wss:// with INVALID_INPUT', async () => {
    const p = pool();
    expect(isGuardError(await p.acquire('http://example.test').catch((e: unknown) => e), 'INVALID_INPUT')).toBe(true);
  });
});
