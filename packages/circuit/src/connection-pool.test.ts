import { once } from 'node:events';
import { createServer } from 'node:net';
import type { AddressInfo, Socket } from 'node:net';
import { GuardBus, waitUntil } from '@guard/core';
import type { BreakerStateChange } from '@guard/core';
import { afterEach, describe, expect, it } from 'vitest';
import { WebSocketServer } from 'ws';
import type { WebSocket } from 'ws';
import { ConnectionPool } from './connection-pool.js';
import { attachStreamingServer } from './streaming-server.js';
import type { StreamingHandler } from './streaming-server.js';
import type { StreamMessage } from './stream-message.js';
import { closeAfterTest, closeTestResources, closeWsServer, newRegistry, refusedUrl, testPool as pool, wsTestServer } from './test-support.js';

afterEach(closeTestResources);

/** A real ws server that parses each request and lets `onMessage` answer it on the same socket (kept open). */
async function keepOpenServer(onMessage: (ws: WebSocket, message: StreamMessage) => void) {
  const received: StreamMessage[] = [];
  const server = await wsTestServer((ws) => {
    ws.on('message', (data) => {
      const message = JSON.parse(String(data)) as StreamMessage;
      received.push(message);
      onMessage(ws, message);
    });
  });
  return { ...server, received };
}

/** The package's own streaming helper: closes each connection (1000) after the terminal message. */
async function streamingServer(handler: StreamingHandler) {
  const wss = new WebSocketServer({ host: '127.0.0.1', port: 0 });
  await once(wss, 'listening');
  let connections = 0;
  wss.on('connection', () => connections++);
  closeAfterTest(wss, closeWsServer);
  closeAfterTest(attachStreamingServer(wss, handler), (streaming) => streaming.close());
  return { url: `ws://127.0.0.1:${(wss.address() as AddressInfo).port}`, connections: () => connections };
}

const echo = (ws: WebSocket, message: StreamMessage) => {
  if (message.type === 'cancel') return;
  ws.send(JSON.stringify({ type: 'result', echo: message.n, taskId: message.taskId }));
};

describe('ConnectionPool', () => {
  it('streams progress_update messages to onProgress and returns the terminal message', async () => {
    const server = await streamingServer(async (request, { progress }) => {
      for (let step = 1; step <= 3; step++) {
        await new Promise((resolve) => setImmediate(resolve));
        progress({ step });
      }
      return { type: 'result', total: request.n };
    });
    const connections = pool();
    const progress: StreamMessage[] = [];
    const reply = await connections.request(server.url, { type: 'analyze', n: 3 }, { taskId: 'job-1', onProgress: (m) => progress.push(m) });
    expect(reply).toEqual({ type: 'result', total: 3, taskId: 'job-1' });
    expect(progress.map((m) => m.step)).toEqual([1, 2, 3]);
    expect(connections.stats().activeTasks).toBe(0);
  });

  it('reuses a socket per URL for sequential requests', async () => {
    const server = await keepOpenServer(echo);
    const connections = pool();
    for (let n = 0; n < 5; n++) expect(await connections.request(server.url, { type: 'q', n })).toMatchObject({ type: 'result', echo: n });
    expect(server.counts.total).toBe(1);
    expect(connections.stats()).toMatchObject({ pooledConnections: 1, activeConnections: 0, openConnections: 1 });
  });

  it('works against a server that closes after each terminal message (retries a reused socket the server closed)', async () => {
    const server = await streamingServer((request) => ({ type: 'result', n: request.n }));
    const connections = pool();
    for (let n = 0; n < 5; n++) expect(await connections.request(server.url, { type: 'q', n })).toMatchObject({ type: 'result', n });
    expect(server.connections()).toBeGreaterThanOrEqual(5);
    expect(connections.breakerFor(server.url).state).toBe('closed');
  });

  it('serves concurrent requests against a server that closes after each terminal message, each run once', async () => {
    let runs = 0;
    const server = await streamingServer(async (request, { progress }) => {
      runs++;
      progress({ n: request.n });
      await new Promise((resolve) => setImmediate(resolve));
      return { type: 'result', n: request.n };
    });
    const connections = pool({ maxConcurrentConnections: 4 });
    const replies = await Promise.all(Array.from({ length: 60 }, (_, n) => connections.request(server.url, { type: 'q', n })));
    expect(replies.map((reply) => (reply.type === 'result' ? reply.n : reply.status))).toEqual(Array.from({ length: 60 }, (_, n) => n));
    expect(runs).toBe(60);
    expect(connections.breakerFor(server.url).state).toBe('closed');
  });

  it('never holds more than its limit of sockets under 500 concurrent requests', async () => {
    const server = await keepOpenServer((ws, message) => {
      setTimeout(() => echo(ws, message), 1);
    });
    const connections = pool({ maxConcurrentConnections: 8 });
    let peakOpen = 0;
    const replies = await Promise.all(
      Array.from({ length: 500 }, (_, n) =>
        connections.request(server.url, { type: 'q', n }).then((reply) => {
          peakOpen = Math.max(peakOpen, connections.stats().openConnections);
          return reply;
        }),
      ),
    );
    expect(replies.every((reply, n) => reply.type === 'result' && reply.echo === n)).toBe(true);
    expect(server.counts.peak).toBeLessThanOrEqual(8);
    expect(server.counts.peak).toBeGreaterThan(1);
    expect(peakOpen).toBeLessThanOrEqual(8);
    expect(server.counts.total).toBeLessThanOrEqual(8);
    expect(connections.stats()).toMatchObject({ waitingRequests: 0, activeConnections: 0 });
  });

  it('evicts idle sockets of other URLs when the limit is reached', async () => {
    const a = await keepOpenServer(echo);
    const b = await keepOpenServer(echo);
    const connections = pool({ maxConcurrentConnections: 1 });
    expect(await connections.request(a.url, { type: 'q', n: 1 })).toMatchObject({ echo: 1 });
    expect(await connections.request(b.url, { type: 'q', n: 2 })).toMatchObject({ echo: 2 });
    expect(a.counts.peak + b.counts.peak).toBe(2);
    expect(connections.stats().openConnections).toBe(1);
  });

  it('a dead server trips the breaker; later requests return circuit_open without connecting', async () => {
    const url = await refusedUrl();
    const bus = new GuardBus();
    const changes: BreakerStateChange[] = [];
    using _sub = bus.subscribe('breakerStateChange', (change) => changes.push(change));
    const connections = pool({ bus });
    for (let i = 0; i < 5; i++) {
      const reply = await connections.request(url, { type: 'q' });
      expect(reply).toMatchObject({ type: 'error', status: 'error' });
    }
    expect(changes).toEqual([expect.objectContaining({ circuit: new URL(url).host, from: 'closed', to: 'open' })]);
    for (let i = 0; i < 3; i++) {
      const reply = await connections.request(url, { type: 'q' }, { taskId: `t${i}` });
      expect(reply).toMatchObject({ type: 'error', status: 'circuit_open', circuit: new URL(url).host, taskId: `t${i}` });
    }
    expect(connections.stats()).toMatchObject({ openConnections: 0, connectingConnections: 0, openCircuits: [{ circuit: new URL(url).host, state: 'open' }] });
  });

  it('returns timeout when no terminal message arrives in time, and tells the server to cancel', async () => {
    const server = await keepOpenServer((ws, message) => {
      if (message.type !== 'cancel') ws.send(JSON.stringify({ type: 'progress_update', taskId: message.taskId }));
    });
    const connections = pool();
    const reply = await connections.request(server.url, { type: 'slow' }, { timeoutMs: 50, taskId: 'slow-1' });
    expect(reply).toMatchObject({ type: 'error', status: 'timeout', taskId: 'slow-1' });
    await waitUntil(() => server.received.some((m) => m.type === 'cancel'), { what: 'the cancel message' });
    expect(server.received.find((m) => m.type === 'cancel')).toEqual({ type: 'cancel', taskId: 'slow-1' });
  });

  it('cancel(taskId) and a caller signal end the request with status cancelled, not counted by the breaker', async () => {
    const server = await keepOpenServer((ws, message) => {
      if (message.type !== 'cancel') ws.send(JSON.stringify({ type: 'progress_update' }));
    });
    const connections = pool({ breaker: { failureThreshold: 1 } });
    const pending = connections.request(server.url, { type: 'long' }, { taskId: 'job-9', onProgress: () => void connections.cancel('job-9', 'user pressed stop') });
    expect(await pending).toMatchObject({ type: 'error', status: 'cancelled', taskId: 'job-9' });
    const controller = new AbortController();
    const second = connections.request(server.url, { type: 'long' }, { signal: controller.signal, onProgress: () => controller.abort(new Error('navigated away')) });
    expect(await second).toMatchObject({ status: 'cancelled', error: 'navigated away' });
    expect(connections.breakerFor(server.url).state).toBe('closed');
    expect(await connections.cancel('unknown')).toBe(false);
  });

  it('returns timeout when the server never completes the upgrade (connection timeout)', async () => {
    const sockets = new Set<Socket>();
    const tcp = createServer((socket) => sockets.add(socket));
    tcp.listen(0, '127.0.0.1');
    await once(tcp, 'listening');
    closeAfterTest(tcp, async () => {
      for (const socket of sockets) socket.destroy();
      await new Promise((resolve) => tcp.close(resolve));
    });
    const connections = pool({ connectionTimeoutMs: 50 });
    const reply = await connections.request(`ws://127.0.0.1:${(tcp.address() as AddressInfo).port}`, { type: 'q' });
    expect(reply).toMatchObject({ type: 'error', status: 'timeout' });
    expect(reply).toHaveProperty('error', expect.stringContaining('connecting'));
  });

  it('closes idle sockets after idleTimeoutMs', async () => {
    const server = await keepOpenServer(echo);
    const connections = pool({ idleTimeoutMs: 30 });
    await connections.request(server.url, { type: 'q', n: 1 });
    expect(connections.stats().pooledConnections).toBe(1);
    await waitUntil(() => server.counts.open === 0, { what: 'the idle socket to close' });
    expect(connections.stats()).toMatchObject({ pooledConnections: 0, openConnections: 0 });
  });

  it('close() cancels in-flight requests, rejects new ones with CLOSED and is idempotent', async () => {
    const server = await keepOpenServer(() => {});
    const connections = pool();
    const pending = connections.request(server.url, { type: 'hang' });
    await waitUntil(() => connections.stats().activeConnections > 0, { what: 'the request to take a socket' });
    await connections.close();
    await connections.close();
    expect(await pending).toMatchObject({ type: 'error', status: 'cancelled' });
    await expect(connections.request(server.url, { type: 'q' })).rejects.toMatchObject({ code: 'CLOSED' });
    expect(connections.stats().openConnections).toBe(0);
  });

  it('reports connections by state as metrics', async () => {
    const registry = newRegistry();
    const server = await keepOpenServer(echo);
    const connections = pool({ registry, metrics: true });
    await connections.request(server.url, { type: 'q', n: 1 });
    const text = await registry.metrics();
    expect(text).toContain('guard_circuit_pool_connections{state="idle"} 1');
    expect(text).toContain('guard_circuit_pool_connections{state="active"} 0');
    expect(text).toMatch(/guard_circuit_calls_total\{circuit="127\.0\.0\.1:\d+",outcome="success"\} 1/);
  });

  it('rejects bad options and arguments with typed errors', async () => {
    expect(() => new ConnectionPool({ maxConcurrentConnections: 0 })).toThrow(expect.objectContaining({ code: 'INVALID_OPTION' }));
    expect(() => new ConnectionPool({ connectionTimeoutMs: Number.NaN })).toThrow(expect.objectContaining({ code: 'INVALID_OPTION' }));
    expect(() => new ConnectionPool({ idleTimeoutMs: -1 })).toThrow(expect.objectContaining({ code: 'INVALID_OPTION' }));
    expect(() => new ConnectionPool({ metrics: false, breaker: { failureThreshold: -1 } })).toThrow(
      expect.objectContaining({ code: 'INVALID_OPTION', details: expect.objectContaining({ field: 'failureThreshold' }) }),
    );
    const connections = pool();
    await expect(connections.request('http://example.com', { type: 'q' })).rejects.toMatchObject({ code: 'INVALID_INPUT' });
    await expect(connections.request('ws://127.0.0.1:1', 42 as never)).rejects.toMatchObject({ code: 'INVALID_INPUT' });
    await expect(connections.request('ws://127.0.0.1:1', { type: 'q' }, { timeoutMs: -1 })).rejects.toMatchObject({ code: 'INVALID_OPTION' });
    const server = await keepOpenServer(() => {});
    const first = connections.request(server.url, { type: 'q' }, { taskId: 'dup', timeoutMs: 200 });
    await expect(connections.request(server.url, { type: 'q' }, { taskId: 'dup' })).rejects.toMatchObject({
      code: 'INVALID_INPUT',
      details: expect.objectContaining({ reason: 'exists' }) as unknown,
    });
    expect(await first).toMatchObject({ status: 'timeout' });
  });
});
