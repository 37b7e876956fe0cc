import { resolveRegistry } from '@guard/core';
import type { MetricsOptions } from '@guard/core';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';

/** A temp directory removed by `cleanup()`. */
export function tempDir(): { dir: string; cleanup(): void } {
  const dir = mkdtempSync(join(tmpdir(), 'guard-immune-'));
  return { dir, cleanup: () => rmSync(dir, { recursive: true, force: true }) };
}

/** A table name unique to this process and call (Postgres and SQLite identifiers). */
export function uniqueTable(label = 't'): string {
  return `immune_${label}_${process.pid}_${randomBytes(4).toString('hex')}`;
}

/** The local Postgres URL for fleet tests. */
export function pgUrl(): string {
  const url = process.env.GUARD_TEST_PG_URL;
  if (!url) throw new Error('GUARD_TEST_PG_URL must be set (postgres://postgres@127.0.0.1:5432/test locally)');
  return url;
}

/** A private prom-client registry (prom-client is core's dependency, so build one from the global's class). */
export function freshRegistry(): NonNullable<MetricsOptions['registry']> {
  const global = resolveRegistry();
  return new (global.constructor as new () => typeof global)();
}
