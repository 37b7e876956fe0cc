// Shared setup of this package's tests (not part of the build: tsup bundles only index.ts).
import { once } from 'node:events';
import { createServer } from 'node:net';
import type { AddressInfo } from 'node:net';
import { resolveRegistry } from '@guard/core';
import { vi } from 'vitest';
import { WebSocketServer } from 'ws';
import type { WebSocket } from 'ws';
import { ConnectionPool } from './connection-pool.js';
import type { ConnectionPoolOptions } from './connection-pool.js';
import type { Registry } from './metrics.js';
import type { Policy } from './policy.js';

export const ok = (): Promise<string> => Promise.resolve('ok');
export const boom = (): Promise<never> => Promise.reject(new Error('boom'));

/** A fresh prom-client registry (made through core's copy of prom-client). */
export const newRegistry = (): Registry => new (resolveRegistry().constructor as new () => Registry)();

/** Runs `times` calls that fail with `boom` through `policy`; throws if one does not fail that way. */
export async function failTimes(policy: Pick<Policy, 'execute'>, times: number): Promise<void> {
  for (let i = 0; i < times; i++) {
    const outcome = await policy.execute(boom).then(
      () => undefined,
      (error: unknown) => error,
    );
    if (!(outcome instanceof Error && outcome.message === 'boom')) throw new Error(`expected the call to fail with boom, got ${String(outcome)}`);
  }
}

/** A promise with its resolve and reject. */
export function deferred<T = void>(): { promise: Promise<T>; resolve: (value: T) => void; reject: (error: unknown) => void } {
  let resolve!: (value: T) => void;
  let reject!: (error: unknown) => void;
  const promise = new Promise<T>((res, rej) => {
    resolve = res;
    reject = rej;
  });
  return { promise, resolve, reject };
}

/** Resources a test made; `afterEach(closeTestResources)` closes them, newest first. */
const cleanups: Array<() => Promise<void>> = [];

/** Closes `resource` after the test. @returns it */
export function closeAfterTest<T>(resource: T, close: (resource: T) => Promise<void>): T {
  cleanups.push(() => close(resource));
  return resource;
}

export async function closeTestResources(): Promise<void> {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
}

/** A pool with metrics off, closed after the test. */
export function testPool(options: ConnectionPoolOptions = {}): ConnectionPool {
  return closeAfterTest(new ConnectionPool({ metrics: false, ...options }), (pool) => pool.close());
}

/** A real `ws` server on 127.0.0.1:0, closed after the test; counts the connections it saw (total, open, peak). */
export async function wsTestServer(onConnection: (ws: WebSocket) => void = () => {}): Promise<{
  url: string;
  wss: WebSocketServer;
  counts: { total: number; open: number; peak: number };
}> {
  const wss = new WebSocketServer({ host: '127.0.0.1', port: 0 });
  await once(wss, 'listening');
  const counts = { total: 0, open: 0, peak: 0 };
  wss.on('connection', (ws) => {
    counts.total++;
    counts.peak = Math.max(counts.peak, ++counts.open);
    ws.on('close', () => counts.open--);
    ws.on('error', () => {});
    onConnection(ws);
  });
  closeAfterTest(wss, closeWsServer);
  return { url: `ws://127.0.0.1:${(wss.address() as AddressInfo).port}`, wss, counts };
}

export function closeWsServer(wss: WebSocketServer): Promise<void> {
  for (const ws of wss.clients) ws.terminate();
  return new Promise((resolve) => wss.close(() => resolve()));
}

/** A ws:// URL of a loopback port nothing listens on (connects fail with ECONNREFUSED). */
export async function refusedUrl(): Promise<string> {
  const probe = createServer();
  await new Promise<void>((resolve) => probe.listen(0, '127.0.0.1', resolve));
  const port = (probe.address() as AddressInfo).port;
  await new Promise<void>((resolve) => probe.close(() => resolve()));
  return `ws://127.0.0.1:${port}`;
}

/**
 * Under fake timers: runs, through `policy`, a call that never settles and ignores its signal, with `timeoutMs: 20`,
 * advances the clock to the deadline, and returns how it ended and the signal the call got.
 */
export async function timedOutCall(policy: Pick<Policy, 'execute'>): Promise<{ error: unknown; signal: AbortSignal | undefined }> {
  let signal: AbortSignal | undefined;
  const pending = policy
    .execute((given) => {
      signal = given;
      return new Promise<never>(() => {});
    }, { timeoutMs: 20 })
    .catch((error: unknown) => error);
  await vi.advanceTimersByTimeAsync(20);
  return { error: await pending, signal };
}
