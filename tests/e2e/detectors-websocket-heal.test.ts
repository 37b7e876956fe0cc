import { connect } from 'node:net';
import { once } from 'node:events';
import { describe, expect, it } from 'vitest';
import { WebSocketTracker } from '../../packages/detectors/src/websocket-tracker.js';
import { wsTestServer } from '../../packages/detectors/src/ws-test-server.js';
import { createWebSocketSanitizer } from '../../packages/sanitizer/src/websocket-sanitizer.js';
import { reportFigure } from './report.js';

// Real time on a real socket: how long the C1 heal takes for a peer that finishes the close handshake, and for a deaf
// peer that only the grace's end (terminate) removes. Figures, not bounds; the assertions are what a user relies on.

const detection = (resourceId: string) => ({
  id: `det_${resourceId}`,
  component: 'websocket',
  pattern: 'no_ack',
  severity: 'critical' as const,
  resourceId,
  message: '',
  details: {},
  detectedAt: Date.now(),
});

describe('C1 heal timing on a real ws server', () => {
  it('a cooperative peer is closed with 1008 well within the grace', async () => {
    await using fx = await wsTestServer();
    await using tracker = new WebSocketTracker(fx.wss, { pingIntervalMs: 0 });
    const peer = await fx.connect();
    tracker.send(peer.server, { type: 'price' });
    const started = performance.now();
    const report = await createWebSocketSanitizer(tracker, { graceMs: 5_000 }).sanitize(detection(tracker.connectionId(peer.server)!), {
      signal: AbortSignal.timeout(10_000),
    });
    reportFigure('detectors C1 heal, cooperative peer', performance.now() - started, 'ms');
    expect(report).toMatchObject({ outcome: 'success', details: { terminated: false, droppedMessages: 1 } });
    expect(await peer.closed).toBe(1008);
  });

  it('a deaf peer (raw TCP that never answers the close frame) is terminated once the grace is over', async () => {
    await using fx = await wsTestServer();
    await using tracker = new WebSocketTracker(fx.wss, { pingIntervalMs: 0 });
    const { hostname, port } = new URL(fx.url);
    const serverSide = new Promise<import('ws').WebSocket>((resolve) => fx.wss.once('connection', resolve));
    const socket = connect(Number(port), hostname);
    await once(socket, 'connect');
    socket.on('error', () => {});
    socket.resume(); // read (and drop) what the server sends, so its FIN is seen
    socket.write(
      ['GET / HTTP/1.1', `Host: ${hostname}:${port}`, 'Upgrade: websocket', 'Connection: Upgrade', 'Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==', 'Sec-WebSocket-Version: 13', '', ''].join('\r\n'),
    );
    const server = await serverSide;
    const ended = once(socket, 'close');
    const graceMs = 300;
    const started = performance.now();
    const report = await createWebSocketSanitizer(tracker, { graceMs }).sanitize(detection(tracker.connectionId(server)!), { signal: AbortSignal.timeout(10_000) });
    const tookMs = performance.now() - started;
    reportFigure('detectors C1 heal, deaf peer (grace 300 ms)', tookMs, 'ms');
    await ended;
    expect(report).toMatchObject({ outcome: 'success', details: { terminated: true } });
    expect(tookMs).toBeGreaterThanOrEqual(graceMs - 50); // the grace was given, not skipped
  });
});
