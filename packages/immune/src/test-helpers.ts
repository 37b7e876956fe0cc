import { resolveRegistry, waitUntil } from '@guard/core';
import type { MetricsOptions } from '@guard/core';
import { pgTestDatabase } from '@guard/core/testing';
import { afterAll } from 'vitest';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';

// The network-cutting proxy lives in core's testing entry (playbooks' fleet tests use it too).
export { serverPort, startTcpProxy, urlThrough } from '@guard/core/testing';
export type { TcpProxy } from '@guard/core/testing';

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
