import { GuardBus, captureSource, createJsonLogger } from '@guard/core';
import type { Detection, Logger, SanitizationScheduler } from '@guard/core';
import { pgTestDatabase } from '@guard/core/testing';
import type { PgTestDatabase } from '@guard/core/testing';
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import { Registry } from 'prom-client';
import { afterAll, beforeAll } from 'vitest';
import { DetectorChain } from './detector-chain.js';

/** `file:line` of the caller (same source line as the call that follows it on that line). */
export function lineHere(): string {
  const frame = captureSource({ skip: lineHere, limit: 1 }).frames()[0] ?? '';
  return frame.replace(/:\d+$/, '');
}

/** `file:line` part of a `file:line:column` frame. */
export function fileLine(frame: string | undefined): string {
  return (frame ?? '').replace(/:\d+$/, '');
}

/** A scheduler that records what it was given. */
export function recordingScheduler(): SanitizationScheduler & { readonly scheduled: Detection[] } {
  const scheduled: Detection[] = [];
  return {
    scheduled,
    schedule(detection) {
      if (scheduled.some((d) => d.resourceId === detection.resourceId && d.component === detection.component)) return false;
      scheduled.push(detection);
      return true;
    },
  };
}

/** A chain scanned by hand (no loop) on a bus and registry of its own, with a recording scheduler. */
export function chainFor(mode: 'dry_run' | 'detect' | 'full' = 'detect'): { chain: DetectorChain; scheduler: ReturnType<typeof recordingScheduler>; registry: Registry } {
  const scheduler = recordingScheduler();
  const registry = new Registry();
  const chain = new DetectorChain({ mode, scanIntervalMs: 0, bus: new GuardBus(), registry, scheduler });
  return { chain, scheduler, registry };
}

/** A JSON logger whose lines are kept. */
export function memoryLogger(): Logger & { readonly lines: Record<string, unknown>[] } {
  const lines: Record<string, unknown>[] = [];
  const logger = createJsonLogger({ level: 'debug', write: (line) => lines.push(JSON.parse(line) as Record<string, unknown>) });
  return Object.assign(logger, { lines });
}

/** Forces a full garbage collection (no --expose-gc flag needed). */
export function forceGc(): void {
  setFlagsFromString('--expose-gc');
  (runInNewContext('gc') as () => void)();
}

/** A kysely schema for tests that name their tables at run time: any table, any columns. */
export type AnyTables = Record<string, Record<string, unknown>>;

/** A unique SQL identifier for this test run. */
export function uniqueName(prefix: string): string {
  return `${prefix}_${process.pid}_${Math.random().toString(36).slice(2, 8)}`;
}

/**
 * A Postgres database of the calling test file's own (`pgTestDatabase`): created before its tests, dropped after them,
 * so files running at once never share tables. Returns its URL (read it inside a test).
 */
export function pgDatabaseForFile(prefix: string): () => string {
  let database: PgTestDatabase | undefined;
  beforeAll(async () => {
    database = await pgTestDatabase(prefix);
  });
  afterAll(() => database?.drop());
  return () => {
    if (database === undefined) throw new Error(`the ${prefix} test database was not created`);
    return database.url;
  };
}
