import { createServer, connect, type Server, type Socket } from 'node:net';
import type { AddressInfo } from 'node:net';
import { closeOnce } from '@guard/core';

/** What the proxy does to connections: pass them, delay them, refuse them, or reset them. */
export type FaultMode = { kind: 'pass' } | { kind: 'latency'; ms: number } | { kind: 'down' } | { kind: 'reset' };

/** A TCP proxy in front of a downstream service that injects faults on demand (chaos `downstream-outage`). */
export interface FaultProxy extends AsyncDisposable {
  readonly port: number;
  mode: FaultMode;
  close(): Promise<void>;
}

/** Starts a TCP proxy on 127.0.0.1:0 forwarding to `targetPort`. */
export async function startFaultProxy(targetPort: number): Promise<FaultProxy> {
  const sockets = new Set<Socket>();
  const state: { mode: FaultMode } = { mode: { kind: 'pass' } };

  const server: Server = createServer((client) => {
    sockets.add(client);
    client.once('close', () => sockets.delete(client));
    client.on('error', () => {});
    const mode = state.mode;
    if (mode.kind === 'down') return void client.destroy();
    if (mode.kind === 'reset') return void client.resetAndDestroy();
    const forward = () => {
      if (client.destroyed) return;
      const upstream = connect(targetPort, '127.0.0.1');
      sockets.add(upstream);
      upstream.once('close', () => sockets.delete(upstream));
      upstream.on('error', () => client.destroy());
      client.on('error', () => upstream.destroy());
      client.pipe(upstream).pipe(client);
    };
    if (mode.kind === 'latency') setTimeout(forward, mode.ms).unref();
    else forward();
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));

  const close = closeOnce(async () => {
    for (const socket of sockets) socket.destroy();
    await new Promise<void>((resolve) => server.close(() => resolve()));
  });
  return {
    port: (server.address() as AddressInfo).port,
    get mode() {
      return state.mode;
    },
    set mode(mode: FaultMode) {
      state.mode = mode;
    },
    close,
    [Symbol.asyncDispose]: close,
  };
}
