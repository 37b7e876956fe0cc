import { CloseStack, GuardBus, isGuardError, waitUntil } from '@guard/core';
import { randomBytes } from 'node:crypto';
import { once } from 'node:events';
import { connect } from 'node:net';
import type { Socket } from 'node:net';
import { Registry } from 'prom-client';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { WebSocket as WebSocketClient } from 'ws';
import type { WebSocket } from 'ws';
import { DetectorChain } from './detector-chain.js';
import { chainFor, fileLine, lineHere, memoryLogger } from './test-support.js';
import { WebSocketTracker } from './websocket-tracker.js';
import type { WebSocketTrackerOptions } from './websocket-tracker.js';
import { wsTestServer } from './ws-test-server.js';

/** A real ws server, a tracker on it in a scan-by-hand chain, and one connected peer that never acks. */
async function trackedPeer(options: WebSocketTrackerOptions, mode: 'dry_run' | 'detect' | 'full' = 'detect') {
  const closing = new CloseStack();
  const fx = closing.use(await wsTestServer());
  const tracker = closing.use(new WebSocketTracker(fx.wss, options));
  const { chain, scheduler } = chainFor(mode);
  closing.use(chain).add(tracker);
  const peer = await fx.connect();
  return { ...peer, fx, tracker, chain, scheduler, [Symbol.asyncDispose]: () => closing.close() };
}

function autoAck(client: WebSocket): string[] {
  const seen: string[] = [];
  client.on('message', (data) => {
    const message = JSON.parse(String(data)) as { id: string };
    seen.push(message.id);
    client.send(JSON.stringify({ type: 'ack', id: message.id }));
  });
  return seen;
}

afterEach(() => {
  vi.useRealTimers();
});

describe('WebSocketTracker (C1) on a real ws server', () => {
  it('on the scan loop, an unacked message is flagged after ackTimeoutMs plus at most one scan interval, not before', async () => {
    await using fx = await wsTestServer();
    const { server } = await fx.connect();
    vi.useFakeTimers({ toFake: ['Date', 'setInterval', 'clearInterval'] });
    await using tracker = new WebSocketTracker(fx.wss, { ackTimeoutMs: 3_000, pingIntervalMs: 0 });
    await using chain = new DetectorChain({ scanIntervalMs: 1_000, bus: new GuardBus(), registry: new Registry() });
    chain.add(tracker);
    tracker.send(server, { type: 'price' });
    await vi.advanceTimersByTimeAsync(2_999);
    expect(chain.active()).toEqual([]);
    await vi.advanceTimersByTimeAsync(1_001);
    expect(chain.active()).toEqual([expect.objectContaining({ pattern: 'no_ack', resourceId: tracker.connectionId(server) })]);
  });

  it('does not flag a client that acks every message', async () => {
    await using t = await trackedPeer({ ackTimeoutMs: 50 });
    const seen = autoAck(t.client);
    const ids = [t.tracker.send(t.server, { type: 'tick', n: 1 }), t.tracker.send(t.server, { type: 'tick', n: 2 })];
    await waitUntil(() => t.tracker.pendingCount(t.tracker.connectionId(t.server)!) === 0);
    expect(seen).toEqual(ids);
    expect(t.chain.scan(Date.now() + 10_000)).toEqual([]);
  });

  it('flags unacked messages within ackTimeoutMs plus one scan, pointing at the sending line', async () => {
    await using t = await trackedPeer({ ackTimeoutMs: 3_000 });
    const received: unknown[] = [];
    t.client.on('message', (data) => received.push(JSON.parse(String(data))));
    const here = lineHere(); t.tracker.send(t.server, { type: 'price', value: 42 });
    await waitUntil(() => received.length === 1);
    expect(received[0]).toMatchObject({ type: 'price', value: 42, id: expect.any(String) });
    const sentAt = Date.now();
    expect(t.chain.scan(sentAt + 1_000)).toEqual([]);
    const [detection] = t.chain.scan(sentAt + 3_100);
    expect(detection).toMatchObject({ component: 'websocket', pattern: 'no_ack', severity: 'critical', resourceId: t.tracker.connectionId(t.server), details: { pending: 1 } });
    expect(fileLine(detection!.source![0])).toBe(here);
  });

  it('dry_run and detect leave the connection alone', async () => {
    for (const mode of ['dry_run', 'detect'] as const) {
      await using t = await trackedPeer({ ackTimeoutMs: 10 }, mode);
      const received: unknown[] = [];
      t.client.on('message', (data) => received.push(String(data)));
      t.tracker.send(t.server, { n: 1 });
      expect(t.chain.scan(Date.now() + 1_000)).toHaveLength(1);
      expect(t.scheduler.scheduled).toEqual([]);
      t.tracker.send(t.server, { n: 2 });
      await waitUntil(() => received.length === 2);
      expect(t.client.readyState).toBe(t.client.OPEN);
      expect(t.tracker.isAlive(t.tracker.connectionId(t.server)!)).toBe(true);
    }
  });

  it('full hands the detection to the scheduler; the target closes, terminates and forgets the socket', async () => {
    await using t = await trackedPeer({ ackTimeoutMs: 10 }, 'full');
    const { tracker, chain, scheduler, server, closed } = t;
    const id = tracker.connectionId(server)!;
    tracker.send(server, { n: 1 });
    tracker.send(server, { n: 2 });
    chain.scan(Date.now() + 1_000);
    expect(scheduler.scheduled).toEqual([expect.objectContaining({ component: 'websocket', pattern: 'no_ack', resourceId: id })]);
    // what the websocket sanitizer does, through the WebSocketTarget contract:
    expect(tracker.disconnect(id, 1008, 'no ack')).toBe(true);
    expect(await closed).toBe(1008);
    expect(tracker.terminate(id)).toBe(true);
    await waitUntil(() => !tracker.isAlive(id));
    expect(tracker.forget(id)).toBe(2);
    expect(tracker.forget(id)).toBe(0);
    expect(tracker.isAlive(id)).toBe(false);
    expect(tracker.disconnect('ws_unknown', 1011, 'x')).toBe(false);
    expect(tracker.terminate('ws_unknown')).toBe(false);
    chain.scan(Date.now() + 1_000);
    expect(chain.active()).toEqual([]);
  });

  it('flags a client that stops answering pings', async () => {
    await using t = await trackedPeer({ pingIntervalMs: 20 });
    const dead = await t.fx.connect({ autoPong: false });
    await waitUntil(() => t.chain.active().some((d) => d.severity === 'critical'), { timeoutMs: 5_000 });
    const flagged = t.chain.active().filter((d) => d.pattern === 'missed_pong');
    expect(flagged.map((d) => d.resourceId)).toEqual([t.tracker.connectionId(dead.server)]);
    expect(flagged[0]!.severity).toBe('critical');
    expect(t.tracker.connectionId(t.server)).toBeDefined();
  });

  it('flags a slow consumer whose bufferedAmount exceeds the cap', async () => {
    await using t = await trackedPeer({ maxBufferedBytes: 256 * 1024, pingIntervalMs: 0 });
    const { tracker, chain, client, server } = t;
    client.pause();
    const payload = 'x'.repeat(256 * 1024);
    for (let i = 0; i < 64 && server.bufferedAmount <= 256 * 1024; i++) {
      tracker.send(server, { payload });
      await new Promise((r) => setImmediate(r));
    }
    expect(server.bufferedAmount).toBeGreaterThan(256 * 1024);
    await waitUntil(() => chain.active().some((d) => d.pattern === 'slow_consumer'));
    expect(chain.active().find((d) => d.pattern === 'slow_consumer')).toMatchObject({ severity: 'critical', resourceId: tracker.connectionId(server) });
  });

  it('finds a slow consumer written to only by ws.send directly (the rotating buffer sweep), and forgets it once drained', async () => {
    await using t = await trackedPeer({ maxBufferedBytes: 256 * 1024, pingIntervalMs: 0 });
    const { tracker, client, server } = t;
    client.pause();
    const payload = 'x'.repeat(256 * 1024);
    for (let i = 0; i < 64 && server.bufferedAmount <= 256 * 1024; i++) {
      server.send(payload);
      await new Promise((r) => setImmediate(r));
    }
    expect(tracker.scan(Date.now()).filter((f) => f.pattern === 'slow_consumer').map((f) => f.resourceId)).toEqual([tracker.connectionId(server)]);
    client.resume();
    await waitUntil(() => server.bufferedAmount === 0);
    expect(tracker.scan(Date.now())).toEqual([]);
  });

  it('reports exactly the connections whose unacked messages are overdue, and none after forget()', async () => {
    await using tracker = new WebSocketTracker(undefined, { pingIntervalMs: 0, ackTimeoutMs: 10, traceSources: false });
    const sockets = Array.from({ length: 3 }, () => ({ readyState: 1, bufferedAmount: 0, on() {}, off() {}, send() {}, ping() {}, close() {}, terminate() {} }) as unknown as WebSocket);
    for (const ws of sockets) tracker.send(ws, { n: 1 });
    const now = Date.now();
    expect(tracker.scan(now + 5)).toEqual([]);
    expect(tracker.scan(now + 50).map((f) => f.resourceId).sort()).toEqual(sockets.map((ws) => tracker.connectionId(ws)).sort());
    tracker.forget(tracker.connectionId(sockets[0]!)!);
    expect(tracker.scan(now + 50)).toHaveLength(2);
    // a send to an overdue connection shows in its finding at the next scan
    tracker.send(sockets[1]!, { n: 2 });
    expect(tracker.scan(now + 60).find((f) => f.resourceId === tracker.connectionId(sockets[1]!))?.details).toMatchObject({ pending: 2 });
  });

  it('tracks connections made before it, validates options and refuses use after close', async () => {
    await using fx = await wsTestServer();
    const { server } = await fx.connect();
    const tracker = new WebSocketTracker(fx.wss, { pingIntervalMs: 0 });
    expect(tracker.size).toBe(1);
    expect(tracker.connections()[0]).toMatchObject({ id: tracker.connectionId(server), pending: 0, open: true });
    expect(() => new WebSocketTracker(undefined, { ackTimeoutMs: 0 })).toThrow(expect.objectContaining({ code: 'INVALID_OPTION' }));
    expect(() => new WebSocketTracker(undefined, { maxBufferedBytes: -1 })).toThrow(/maxBufferedBytes/);
    await tracker.close();
    await tracker.close();
    try {
      tracker.send(server, { n: 1 });
      expect.unreachable();
    } catch (error) {
      expect(isGuardError(error, 'CLOSED')).toBe(true);
    }
  });
});

/** Builds one WebSocket frame by hand, so a test can send what no well-behaved client would. */
function frame(opcode: number, payload: Buffer, options: { masked?: boolean } = {}): Buffer {
  const masked = options.masked ?? true;
  const length = payload.length;
  const header = length < 126 ? Buffer.from([0x80 | opcode, (masked ? 0x80 : 0) | length]) : Buffer.from([0x80 | opcode, (masked ? 0x80 : 0) | 126, length >> 8, length & 0xff]);
  if (!masked) return Buffer.concat([header, payload]);
  const key = randomBytes(4);
  const body = Buffer.from(payload.map((byte, i) => byte ^ key[i % 4]!));
  return Buffer.concat([header, key, body]);
}

/** A raw TCP client that completes the WebSocket handshake, then sends bytes and reads the server's close code. */
async function rawClient(url: string): Promise<{ socket: Socket; closeCode: Promise<number> }> {
  const { hostname, port } = new URL(url);
  const socket = connect(Number(port), hostname);
  await once(socket, 'connect');
  socket.write(
    ['GET / HTTP/1.1', `Host: ${hostname}:${port}`, 'Upgrade: websocket', 'Connection: Upgrade', `Sec-WebSocket-Key: ${randomBytes(16).toString('base64')}`, 'Sec-WebSocket-Version: 13', '', ''].join('\r\n'),
  );
  let received = Buffer.alloc(0);
  let handshaken!: () => void;
  const handshake = new Promise<void>((resolve) => (handshaken = resolve));
  const closeCode = new Promise<number>((resolve, reject) => {
    socket.on('data', (chunk: Buffer) => {
      received = Buffer.concat([received, chunk]);
      const end = received.indexOf('\r\n\r\n');
      if (end >= 0 && received.subarray(0, 12).toString() === 'HTTP/1.1 101') {
        handshaken();
        const frames = received.subarray(end + 4);
        // the server's close frame: 0x88, length, then the 2-byte status code
        if (frames.length >= 4 && frames[0] === 0x88) resolve(frames.readUInt16BE(2));
      }
    });
    socket.on('close', () => reject(new Error('closed without a close frame')));
    socket.on('error', () => {});
  });
  await handshake;
  return { socket, closeCode };
}

describe('WebSocketTracker survives hostile frames (do no harm)', () => {
  const hostile: [name: string, bytes: () => Buffer, code: number, wsCode: string][] = [
    ['a frame over maxPayload', () => frame(0x1, Buffer.alloc(1_025, 0x61)), 1009, 'WS_ERR_UNSUPPORTED_MESSAGE_LENGTH'],
    ['invalid UTF-8 in a text frame', () => frame(0x1, Buffer.from([0x68, 0xff, 0xfe])), 1007, 'WS_ERR_INVALID_UTF8'],
    ['an unmasked client frame', () => frame(0x1, Buffer.from('hi'), { masked: false }), 1002, 'WS_ERR_EXPECTED_MASK'],
    ['an unknown opcode', () => frame(0x3, Buffer.from('hi')), 1002, 'WS_ERR_INVALID_OPCODE'],
    ['close code 999', () => frame(0x8, Buffer.from([0x03, 0xe7])), 1002, 'WS_ERR_INVALID_CLOSE_CODE'],
  ];

  it('closes only the offending socket with the right code; the process and the other sockets stay up', async () => {
    await using fx = await wsTestServer({ maxPayload: 1_024 });
    const logger = memoryLogger();
    const registry = new Registry();
    await using chain = new DetectorChain({ scanIntervalMs: 0, bus: new GuardBus(), registry });
    await using tracker = chain.add(new WebSocketTracker(fx.wss, { pingIntervalMs: 0, logger }));
    const healthy = await fx.connect();
    autoAck(healthy.client);

    for (const [name, bytes, code] of hostile) {
      const { socket, closeCode } = await rawClient(fx.url);
      socket.write(bytes());
      expect({ name, code: await closeCode }).toEqual({ name, code });
      socket.destroy();
    }

    expect(tracker.errors).toBe(hostile.length);
    const lines = logger.lines.filter((l) => l.msg === 'WebSocket error: closing the socket');
    expect(lines.map((l) => l.code)).toEqual(hostile.map(([, , , wsCode]) => wsCode));
    const metrics = await registry.metrics();
    for (const [, , , wsCode] of hostile) expect(metrics).toContain(`parasite_websocket_errors_total{code="${wsCode}"} 1`);
    // the healthy connection never noticed
    expect(healthy.client.readyState).toBe(WebSocketClient.OPEN);
    const id = tracker.send(healthy.server, { type: 'still-here' });
    await waitUntil(() => tracker.pendingCount(tracker.connectionId(healthy.server)!) === 0);
    expect(id).toMatch(/^m\d+$/);
  });

  it('close() detaches the per-socket listeners but keeps the error guard; ids are unique across trackers', async () => {
    await using a = await wsTestServer();
    await using b = await wsTestServer();
    const trackerA = new WebSocketTracker(a.wss, { pingIntervalMs: 0 });
    await using trackerB = new WebSocketTracker(b.wss, { pingIntervalMs: 0 });
    const rawSide = new Promise<WebSocket>((resolve) => a.wss.once('connection', resolve));
    const raw = await rawClient(a.url);
    const onA = await rawSide;
    const { server: onB } = await b.connect();
    const idA = trackerA.connectionId(onA)!;
    const idB = trackerB.connectionId(onB)!;
    expect(idA).not.toBe(idB);
    expect(trackerA.owns(idA) && !trackerA.owns(idB) && trackerB.owns(idB)).toBe(true);
    const counts = () => ['message', 'pong', 'close'].map((event) => onA.listenerCount(event));
    const before = counts();
    await trackerA.close();
    await trackerA.close();
    // one listener less on each event: the tracker's (ws's own server keeps its 'close' listener)
    expect(counts()).toEqual(before.map((n) => n - 1));
    expect(onA.listenerCount('error')).toBe(1);
    expect(trackerA.size).toBe(0);
    // a socket of the closed tracker still fails safely
    raw.socket.write(frame(0x3, Buffer.from('x')));
    expect(await raw.closeCode).toBe(1002);
    raw.socket.destroy();
  });
});
