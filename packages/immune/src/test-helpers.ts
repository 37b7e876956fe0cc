import { resolveRegistry, waitUntil } from '@guard/core';
import type { MetricsOptions } from '@guard/core';
import { pgTestDatabase } from '@guard/core/testing';
import { afterAll } from 'vitest';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import { once } from 'node:events';
import { connect, createServer as createNetServer } from 'node:net';
import type { AddressInfo, Socket } from 'node:net';

/** A temp directory removed by `cleanup()`. */
export function tempDir(): { dir: string; cleanup(): void } {
  const dir = mkdtempSync(join(tmpdir(), 'guard-immune-'));
  return { dir, cleanup: () => rmSync(dir, { recursive: true, force: true }) };
}

/** A table name unique to this process and call (Postgres and SQLite identifiers). */
export function uniqueTable(label = 't'): string {
  return `immune_${label}_${process.pid}_${randomBytes(4).toString('hex')}`;
}

/**
 * A Postgres database of this test file's own (core's `pgTestDatabase`: the local server, or `GUARD_TEST_PG_URL`),
 * dropped after the file's tests, so no file cleans up tables and none sees another's. Call it at the top level.
 */
export async function filePgDatabase(prefix: string): Promise<string> {
  const database = await pgTestDatabase(prefix);
  // Registered first, so it runs after the file's other afterAll hooks (vitest runs them as a stack).
  afterAll(() => database.drop());
  return database.url;
}

/** `url` with its host and port replaced: the same database reached through a proxy on loopback `port`. */
export function urlThrough(url: string, port: number): string {
  const through = new URL(url);
  through.hostname = '127.0.0.1';
  through.port = String(port);
  return through.toString();
}

/** The loopback port of the server behind `url` (for a {@link TcpProxy} in front of it). */
export function serverPort(url: string): number {
  return Number(new URL(url).port || 5432);
}

/** Waits until `read()` returns (or resolves to) a value, polling with core's `waitUntil`, and resolves with it. */
export async function eventually<T>(read: () => T | undefined | Promise<T | undefined>, what: string, timeoutMs = 10_000): Promise<T> {
  let value: T | undefined;
  await waitUntil(async () => (value = await read()) !== undefined, { timeoutMs, intervalMs: 5, what });
  return value!;
}

/** A private prom-client registry (prom-client is core's dependency, so build one from the global's class). */
export function freshRegistry(): NonNullable<MetricsOptions['registry']> {
  const global = resolveRegistry();
  return new (global.constructor as new () => typeof global)();
}

/**
 * A loopback TCP proxy in front of a server, to cut the network under a client: `reset()` kills every connection
 * with a TCP RST; `partition()` stops forwarding (both directions are paused, new connections are held, so the
 * peers see silence, as behind a dropped link) until `heal()`.
 */
export interface TcpProxy extends AsyncDisposable {
  readonly port: number;
  /** Connections currently open through the proxy. */
  readonly connections: number;
  reset(): void;
  partition(): void;
  heal(): void;
  close(): Promise<void>;
}

/** Starts a {@link TcpProxy} on 127.0.0.1 (port 0) forwarding to `targetHost:targetPort`. */
export async function startTcpProxy(targetPort: number, targetHost = '127.0.0.1'): Promise<TcpProxy> {
  const pairs = new Set<{ client: Socket; upstream: Socket | undefined; start(): void }>();
  let partitioned = false;
  const server = createNetServer((client) => {
    client.on('error', () => {});
    const pair = {
      client,
      upstream: undefined as Socket | undefined,
      start() {
        if (pair.upstream || client.destroyed) return;
        const upstream = connect(targetPort, targetHost);
        pair.upstream = upstream;
        upstream.on('error', () => client.destroy());
        client.on('error', () => upstream.destroy());
        client.pipe(upstream);
        upstream.pipe(client);
        client.on('close', () => {
          upstream.destroy();
          pairs.delete(pair);
        });
        upstream.on('close', () => client.destroy());
      },
    };
    pairs.add(pair);
    client.on('close', () => pairs.delete(pair));
    if (partitioned) client.pause();
    else pair.start();
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const port = (server.address() as AddressInfo).port;
  const proxy: TcpProxy = {
    port,
    get connections() {
      return pairs.size;
    },
    reset() {
      for (const pair of [...pairs]) {
        pair.client.resetAndDestroy();
        pair.upstream?.resetAndDestroy();
      }
      pairs.clear();
    },
    partition() {
      partitioned = true;
      for (const { client, upstream } of pairs) {
        client.pause();
        upstream?.pause();
      }
    },
    heal() {
      partitioned = false;
      for (const pair of [...pairs]) {
        if (!pair.upstream) pair.start();
        else {
          pair.client.resume();
          pair.upstream.resume();
        }
      }
    },
    async close() {
      proxy.reset();
      server.close();
      await once(server, 'close');
    },
    [Symbol.asyncDispose]: () => proxy.close(),
  };
  return proxy;
}
