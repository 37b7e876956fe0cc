import { once } from 'node:events';
import { connect } from 'node:net';
import type { Socket } from 'node:net';
import { GuardBus, isGuardError } from '@guard/core';
import type { Detection, SanitizeResult, WebSocketTarget } from '@guard/core';
import { afterEach, describe, expect, it } from 'vitest';
import { WebSocket, WebSocketServer } from 'ws';
import { DeferredSanitizer } from './deferred-sanitizer.js';
import { createWebSocketSanitizer, defaultCloseCode } from './websocket-sanitizer.js';

/**
 * A minimal real tracker: server sockets by id, the guard's `send` with ids, acks from clients. It names the
 * per-socket close `close(id, code, reason)`, as core's `WebSocketTarget` did: the sanitizer still accepts that.
 */
class TestWsTracker implements WebSocketTarget {
  readonly sockets = new Map<string, WebSocket>();
  readonly pending = new Map<string, Set<number>>();
  #next = 0;

  constructor(readonly server: WebSocketServer) {
    server.on('connection', (socket, request) => {
      const id = String(request.headers['x-conn-id']);
      this.sockets.set(id, socket);
      this.pending.set(id, new Set());
      socket.on('message', (data) => {
        const message = JSON.parse(String(data)) as { type: string; id: number };
        if (message.type === 'ack') this.pending.get(id)?.delete(message.id);
      });
    });
  }

  send(id: string, payload: unknown): void {
    const msgId = ++this.#next;
    this.pending.get(id)!.add(msgId);
    this.sockets.get(id)!.send(JSON.stringify({ id: msgId, payload }));
  }

  close(id: string, code: number, reason: string): boolean {
    const socket = this.sockets.get(id);
    if (!socket) return false;
    socket.close(code, reason);
    return true;
  }
  terminate(id: string): boolean {
    const socket = this.sockets.get(id);
    if (!socket) return false;
    socket.terminate();
    return true;
  }
  isAlive(id: string): boolean {
    const socket = this.sockets.get(id);
    return socket !== undefined && socket.readyState !== WebSocket.CLOSED;
  }
  forget(id: string): number {
    const dropped = this.pending.get(id)?.size ?? 0;
    this.sockets.delete(id);
    this.pending.delete(id);
    return dropped;
  }
}

const cleanups: Array<() => Promise<void> | void> = [];
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
});

async function startServer(): Promise<{ server: WebSocketServer; tracker: TestWsTracker; url: string }> {
  const server = new WebSocketServer({ host: '127.0.0.1', port: 0 });
  await once(server, 'listening');
  cleanups.push(
    () =>
      new Promise<void>((resolve) => {
        for (const client of server.clients) client.terminate();
        server.close(() => resolve());
      }),
  );
  const { port } = server.address() as { port: number };
  return { server, tracker: new TestWsTracker(server), url: `ws://127.0.0.1:${port}` };
}

/** A `ws` client that reads messages but never acks (it does answer the close handshake, as `ws` does). */
async function silentClient(url: string, id: string, tracker: TestWsTracker): Promise<{ client: WebSocket; received: unknown[] }> {
  const client = new WebSocket(url, { headers: { 'x-conn-id': id } });
  cleanups.push(() => client.terminate());
  const received: unknown[] = [];
  client.on('message', (data) => received.push(JSON.parse(String(data))));
  await once(client, 'open');
  while (!tracker.sockets.has(id)) await new Promise((resolve) => setImmediate(resolve));
  return { client, received };
}

/** A raw TCP peer that completes the upgrade and then ignores everything, including the close frame. */
async function deafPeer(port: number, id: string, tracker: TestWsTracker): Promise<{ socket: Socket; bytes: () => Buffer }> {
  const socket = connect(port, '127.0.0.1');
  cleanups.push(() => void socket.destroy());
  await once(socket, 'connect');
  const chunks: Buffer[] = [];
  socket.on('data', (chunk: Buffer) => chunks.push(chunk));
  socket.write(
    'GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n' +
      `Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\nx-conn-id: ${id}\r\n\r\n`,
  );
  while (!tracker.sockets.has(id)) await new Promise((resolve) => setImmediate(resolve));
  return { socket, bytes: () => Buffer.concat(chunks) };
}

/** The close code in the first close frame (opcode 8, unmasked, from the server) after the HTTP response. */
function closeCodeIn(bytes: Buffer): number | undefined {
  const start = bytes.indexOf('\r\n\r\n') + 4;
  for (let i = start; i < bytes.length - 3; ) {
    const opcode = bytes[i]! & 0x0f;
    const length = bytes[i + 1]! & 0x7f;
    if (opcode === 8) return bytes.readUInt16BE(i + 2);
    i += 2 + length;
  }
  return undefined;
}

function detection(resourceId: string, pattern = 'no_ack', details: Record<string, unknown> = {}): Detection {
  return { id: `det_${resourceId}`, component: 'websocket', pattern, severity: 'critical', resourceId, message: 'unacked', details, detectedAt: Date.now() };
}

describe('createWebSocketSanitizer against a real ws server', () => {
  it('closes a client that never acks with 1008, drops it from the map and counts its pending messages', async () => {
    const { server, tracker, url } = await startServer();
    const { client, received } = await silentClient(url, 'never-acks', tracker);
    for (let i = 0; i < 3; i++) tracker.send('never-acks', { tick: i });
    while (received.length < 3) await new Promise((resolve) => setImmediate(resolve));
    const closed = once(client, 'close');

    const report = await createWebSocketSanitizer(tracker, { graceMs: 5_000 }).sanitize(detection('never-acks'), { signal: new AbortController().signal });

    const [code, reason] = (await closed) as [number, Buffer];
    expect(code).toBe(1008);
    expect(String(reason)).toBe('parasite guard: no_ack');
    expect(report).toEqual({
      outcome: 'success',
      actions: ['close(1008)', 'forget'],
      details: { code: 1008, terminated: false, droppedMessages: 3 },
    });
    expect(tracker.sockets.has('never-acks')).toBe(false);
    expect(server.clients.size).toBe(0);
  });

  it('terminates a peer that ignores the close frame once the grace is over', async () => {
    const { server, tracker } = await startServer();
    const { port } = server.address() as { port: number };
    const peer = await deafPeer(port, 'deaf', tracker);
    tracker.send('deaf', 'hello');
    const ended = once(peer.socket, 'close');

    const report = await createWebSocketSanitizer(tracker, { graceMs: 300 }).sanitize(detection('deaf', 'no_ack', { kind: 'missed_pong' }), {
      signal: new AbortController().signal,
    });

    // how long the grace really took is an e2e figure (tests/e2e/detectors-websocket-heal.test.ts)
    await ended; // the server destroyed the TCP connection
    expect(closeCodeIn(peer.bytes())).toBe(1011);
    expect(report).toMatchObject({ outcome: 'success', actions: ['close(1011)', 'terminate', 'forget'], details: { terminated: true, droppedMessages: 1 } });
    expect(tracker.sockets.size).toBe(0);
    while (server.clients.size > 0) await new Promise((resolve) => setImmediate(resolve));
  });

  it('terminates at once when the job is aborted during the grace', async () => {
    const { server, tracker } = await startServer();
    const { port } = server.address() as { port: number };
    const peer = await deafPeer(port, 'deaf-2', tracker);
    const ended = once(peer.socket, 'close');
    const controller = new AbortController();
    setTimeout(() => controller.abort(new Error('job timed out')), 50);
    await expect(createWebSocketSanitizer(tracker, { graceMs: 60_000 }).sanitize(detection('deaf-2'), { signal: controller.signal })).rejects.toThrow(
      'job timed out',
    );
    await ended;
    expect(tracker.sockets.has('deaf-2')).toBe(false);
  });

  it('skips a connection that is already gone', async () => {
    const { tracker } = await startServer();
    const report = await createWebSocketSanitizer(tracker).sanitize(detection('unknown'), { signal: new AbortController().signal });
    expect(report).toMatchObject({ outcome: 'skipped', details: { alreadyClosed: true, droppedMessages: 0 } });
  });

  it('heals end to end through the DeferredSanitizer and emits the result', async () => {
    const { tracker, url } = await startServer();
    const bus = new GuardBus();
    const results: SanitizeResult[] = [];
    bus.subscribe('sanitization', (r) => results.push(r));
    await using sanitizer = new DeferredSanitizer({
      sanitizers: [createWebSocketSanitizer(tracker, { graceMs: 1_000 })],
      bus,
      delaysMs: { websocket: 20 },
      metrics: false,
    });
    const { client } = await silentClient(url, 'slow', tracker);
    tracker.send('slow', 'x');
    const closed = once(client, 'close');
    expect(sanitizer.schedule(detection('slow', 'no_ack', { kind: 'slow_consumer' }))).toBe(true);
    expect(sanitizer.schedule(detection('slow'))).toBe(false);
    await expect(sanitizer.waitForSanitization(5_000)).resolves.toBe(true);
    expect((await closed)[0]).toBe(1008);
    expect(results).toHaveLength(1);
    expect(results[0]).toMatchObject({ component: 'websocket', resourceId: 'slow', outcome: 'success', details: { droppedMessages: 1 } });
  });
});

describe('close codes', () => {
  it('uses 1008 for policy kinds and 1011 otherwise; a fixed or computed code wins', async () => {
    expect(defaultCloseCode(detection('a', 'no_ack'))).toBe(1008);
    expect(defaultCloseCode(detection('a', 'x', { kind: 'slow_consumer' }))).toBe(1008);
    expect(defaultCloseCode(detection('a', 'x', { reason: 'buffered_amount' }))).toBe(1008);
    expect(defaultCloseCode(detection('a', 'no_ack', { kind: 'missed_pong' }))).toBe(1011);
    expect(defaultCloseCode(detection('a', 'ping_timeout'))).toBe(1011);
  });

  it('rejects bad options with INVALID_OPTION', () => {
    const target = { close: () => true, terminate: () => true, isAlive: () => true, forget: () => 0 };
    for (const options of [{ graceMs: -1 }, { code: 1005 }, { code: 999 }, { code: 2000 }, { pollMs: 0 }, { code: 'x' as never }]) {
      try {
        createWebSocketSanitizer(target, options);
        expect.unreachable();
      } catch (error) {
        expect(isGuardError(error, 'INVALID_OPTION')).toBe(true);
      }
    }
    expect(() => createWebSocketSanitizer(target, { code: 4000 })).not.toThrow();
  });
});
