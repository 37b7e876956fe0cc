// Test-only (not bundled): `pg` for core's own Postgres tests. Core has no @types/pg (pg is an optional peer), so
// the slice these tests use is typed here.
import { createRequire } from 'node:module';

export interface TestPgResult {
  rows: Record<string, unknown>[];
  rowCount: number | null;
}

export interface TestPgClient {
  connect(): Promise<unknown>;
  query(sql: string, values?: unknown[]): Promise<TestPgResult>;
  end(): Promise<void>;
  on(event: 'error', listener: (error: Error) => void): unknown;
}

export interface TestPgPoolClient {
  query(sql: string, values?: unknown[]): Promise<TestPgResult>;
  release(error?: Error | boolean): void;
  on(event: 'error', listener: (error: Error) => void): unknown;
}

export interface TestPgPool {
  connect(): Promise<TestPgPoolClient>;
  query(sql: string, values?: unknown[]): Promise<TestPgResult>;
  end(): Promise<void>;
  on(event: 'error' | 'connect', listener: (arg: never) => void): unknown;
  removeListener(event: 'error' | 'connect', listener: (arg: never) => void): unknown;
  readonly totalCount: number;
  readonly idleCount: number;
}

export interface TestPg {
  Client: new (config: { connectionString: string }) => TestPgClient;
  Pool: new (config: { connectionString: string; max?: number }) => TestPgPool;
}

/** `pg` when installed (a dev dependency of core), else undefined: the suites that need it skip. */
export function loadPg(): TestPg | undefined {
  try {
    return createRequire(import.meta.url)('pg') as TestPg;
  } catch {
    return undefined;
  }
}
