import { GuardBus, isGuardError } from '@guard/core';
import { Registry } from 'prom-client';
import { afterEach, describe, expect, it, vi } from 'vitest';
import type { WebSocket } from 'ws';
import { DetectorChain } from './detector-chain.js';
import { fileLine, lineHere, recordingScheduler, until, wsFixture } from './test-support.js';
import { WebSocketTracker } from './websocket-tracker.js';

function chainFor(mode: 'dry_run' | 'detect' | 'full' = 'detect') {
  const scheduler = recordingScheduler();
  const chain = new DetectorChain({ mode, scanIntervalMs: 0, bus: new GuardBus(), registry: new Registry(), scheduler });
  return { chain, scheduler };
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
    await using fx = await wsFixture();
    const { client, server } = await fx.connect();
    client.on('message', () => {}); // reads, never acks
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
    await using fx = await wsFixture();
    await using tracker = new WebSocketTracker(fx.wss, { ackTimeoutMs: 50 });
    const { chain } = chainFor();
    chain.add(tracker);
    const { client, server } = await fx.connect();
    const seen = autoAck(client);
    const ids = [tracker.send(server, { type: 'tick', n: 1 }), tracker.send(server, { type: 'tick', n: 2 })];
    await until(() => tracker.pendingCount(tracker.connectionId(server)!) === 0);
    expect(seen).toEqual(ids);
    expect(chain.scan(Date.now() + 10_000)).toEqual([]);
    await chain.close();
  });

  it('flags unacked messages within ackTimeoutMs plus one scan, pointing at the sending line', async () => {
    await using fx = await wsFixture();
    await using tracker = new WebSocketTracker(fx.wss, { ackTimeoutMs: 3_000 });
    const { chain } = chainFor();
    chain.add(tracker);
    const { client, server } = await fx.connect();
    const received: unknown[] = [];
    client.on('message', (data) => received.push(JSON.parse(String(data))));
    const here = lineHere(); tracker.send(server, { type: 'price', value: 42 });
    await until(() => received.length === 1);
    expect(received[0]).toMatchObject({ type: 'price', value: 42, id: expect.any(String) });
    const sentAt = Date.now();
    expect(chain.scan(sentAt + 1_000)).toEqual([]);
    const [detection] = chain.scan(sentAt + 3_100);
    expect(detection).toMatchObject({ component: 'websocket', pattern: 'no_ack', severity: 'critical', resourceId: tracker.connectionId(server), details: { pending: 1 } });
    expect(fileLine(detection!.source![0])).toBe(here);
    await chain.close();
  });

  it('dry_run and detect leave the connection alone', async () => {
    for (const mode of ['dry_run', 'detect'] as const) {
      await using fx = await wsFixture();
      await using tracker = new WebSocketTracker(fx.wss, { ackTimeoutMs: 10 });
      const { chain, scheduler } = chainFor(mode);
      chain.add(tracker);
      const { client, server } = await fx.connect();
      const received: unknown[] = [];
      client.on('message', (data) => received.push(String(data)));
      tracker.send(server, { n: 1 });
      expect(chain.scan(Date.now() + 1_000)).toHaveLength(1);
      expect(scheduler.scheduled).toEqual([]);
      tracker.send(server, { n: 2 });
      await until(() => received.length === 2);
      expect(client.readyState).toBe(client.OPEN);
      expect(tracker.isAlive(tracker.connectionId(server)!)).toBe(true);
      await chain.close();
    }
  });

  it('full hands the detection to the scheduler; the target closes, terminates and forgets the socket', async () => {
    await using fx = await wsFixture();
    await using tracker = new WebSocketTracker(fx.wss, { ackTimeoutMs: 10 });
    const { chain, scheduler } = chainFor('full');
    chain.add(tracker);
    const { client, server } = await fx.connect();
    const id = tracker.connectionId(server)!;
    tracker.send(server, { n: 1 });
    tracker.send(server, { n: 2 });
    chain.scan(Date.now() + 1_000);
    expect(scheduler.scheduled).toEqual([expect.objectContaining({ component: 'websocket', pattern: 'no_ack', resourceId: id })]);
    // what the websocket sanitizer does, through the WebSocketTarget contract:
    const closed = new Promise<number>((resolve) => client.once('close', (code) => resolve(code)));
    expect(tracker.close(id, 1008, 'no ack')).toBe(true);
    expect(await closed).toBe(1008);
    expect(tracker.terminate(id)).toBe(true);
    await until(() => !tracker.isAlive(id));
    expect(tracker.forget(id)).toBe(2);
    expect(tracker.forget(id)).toBe(0);
    expect(tracker.isAlive(id)).toBe(false);
    expect(tracker.close('ws_unknown', 1011, 'x')).toBe(false);
    expect(tracker.terminate('ws_unknown')).toBe(false);
    chain.scan(Date.now() + 1_000);
    expect(chain.active()).toEqual([]);
    await chain.close();
  });

  it('flags a client that stops answering pings', async () => {
    await using fx = await wsFixture();
    await using tracker = new WebSocketTracker(fx.wss, { pingIntervalMs: 20 });
    const { chain } = chainFor();
    chain.add(tracker);
    const healthy = await fx.connect();
    const dead = await fx.connect({ autoPong: false });
    await until(() => chain.active().some((d) => d.severity === 'critical'), 5_000);
    const flagged = chain.active().filter((d) => d.pattern === 'missed_pong');
    expect(flagged.map((d) => d.resourceId)).toEqual([tracker.connectionId(dead.server)]);
    expect(flagged[0]!.severity).toBe('critical');
    expect(tracker.connectionId(healthy.server)).toBeDefined();
    await chain.close();
  });

  it('flags a slow consumer whose bufferedAmount exceeds the cap', async () => {
    await using fx = await wsFixture();
    await using tracker = new WebSocketTracker(fx.wss, { maxBufferedBytes: 256 * 1024, pingIntervalMs: 0 });
    const { chain } = chainFor();
    chain.add(tracker);
    const { client, server } = await fx.connect();
    client.pause();
    const payload = 'x'.repeat(256 * 1024);
    for (let i = 0; i < 64 && server.bufferedAmount <= 256 * 1024; i++) {
      tracker.send(server, { payload });
      await new Promise((r) => setImmediate(r));
    }
    expect(server.bufferedAmount).toBeGreaterThan(256 * 1024);
    await until(() => chain.active().some((d) => d.pattern === 'slow_consumer'));
    expect(chain.active().find((d) => d.pattern === 'slow_consumer')).toMatchObject({ severity: 'critical', resourceId: tracker.connectionId(server) });
    await chain.close();
  });

  it('tracks connections made before it, validates options and refuses use after close', async () => {
    await using fx = await wsFixture();
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
