import { createServer, type RequestListener, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { Registry } from 'prom-client';
import { silentLogger, waitUntil } from '@guard/core';
import { pgTestServerUrl } from '@guard/core/testing';
import type { GuardOptions } from '../src/index.js';

/** The Postgres of the tests (trust auth): `GUARD_TEST_PG_URL`, else the local test database. */
export const PG_URL = pgTestServerUrl();

/** Options of a test guard: no process env, no log lines, a registry of its own, an in-memory immune log; `extra` wins. */
export const testGuardOptions = (extra: GuardOptions = {}): GuardOptions => ({ env: {}, logger: silentLogger, registry: new Registry(), immune: { store: 'memory' }, ...extra });

/** A real HTTP server on 127.0.0.1, port 0. */
export async function listen(handler: RequestListener): Promise<{ server: Server; base: string } & AsyncDisposable> {
  const server = createServer(handler);
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  return {
    server,
    base,
    [Symbol.asyncDispose]: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}

/** A kysely schema with no typed tables: the tests query with `sql` and `selectNoFrom`. */
export type NoTables = Record<string, never>;

/** Resolves once `predicate` holds (core `waitUntil` with the tests' patience); rejects with `TIMEOUT` naming `what`. */
export function until(predicate: () => boolean | Promise<boolean>, what: string, timeoutMs = 15_000, intervalMs = 25): Promise<void> {
  return waitUntil(predicate, { what, timeoutMs, intervalMs });
}
