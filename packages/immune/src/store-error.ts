import type {} from './errors.js';
import { errorMessage, GuardError, isGuardError, isPgUnavailableError } from '@guard/core';

// better-sqlite3 codes of a database held by another writer: transient, like a lost Postgres connection.
const SQLITE_TRANSIENT = /^SQLITE_(BUSY|LOCKED)/;

/**
 * Wraps a driver failure in a typed store error: `STORE_UNAVAILABLE` when the database is unreachable, cut off or
 * too slow (retry later: HTTP 503), `STORE_ERROR` for anything else (HTTP 500). Guard errors other than a timeout
 * pass through unchanged.
 *
 * @example
 * try { await db.selectFrom('t').execute(); } catch (e) { throw toStoreError(e, 'event store query failed'); }
 */
export function toStoreError(error: unknown, what: string): GuardError {
  if (isGuardError(error) && error.code !== 'TIMEOUT') return error;
  const code = (error as { code?: unknown } | undefined)?.code;
  const unavailable = isPgUnavailableError(error) || (typeof code === 'string' && SQLITE_TRANSIENT.test(code));
  const message = `${what}: ${errorMessage(error)}`;
  return new GuardError(unavailable ? 'STORE_UNAVAILABLE' : 'STORE_ERROR', message, { cause: error });
}

/** Attempts of a statement whose connection died under it (several pooled connections may be cut at once). */
export const LOST_CONNECTION_ATTEMPTS = 3;

const LOST_CODES = new Set(['57P01', '57P02', 'ECONNRESET', 'EPIPE']);
const LOST_MESSAGES = /connection terminated unexpectedly|is not queryable|terminating connection/i;

/**
 * Whether a statement failed because its connection died under it (terminated backend, reset socket): the pool
 * has evicted that connection, so trying again at once on another one is cheap and usually succeeds. Timeouts are
 * not included: a retry would only double the wait.
 *
 * @example
 * if (isLostConnection(error) && attempt < 3) return retry();
 */
export function isLostConnection(error: unknown): boolean {
  let e: unknown = error;
  for (let depth = 0; e !== null && typeof e === 'object' && depth < 8; depth++) {
    if (isGuardError(e, 'TIMEOUT')) return false;
    const code = (e as { code?: unknown }).code;
    if (typeof code === 'string' && LOST_CODES.has(code)) return true;
    const message = (e as { message?: unknown }).message;
    if (typeof message === 'string' && LOST_MESSAGES.test(message)) return true;
    e = (e as { cause?: unknown }).cause;
  }
  return false;
}

/**
 * Runs `fn`, again (up to `attempts` times in all) while it fails with a lost connection: several pooled
 * connections may have been cut at once, and each failed attempt evicts one of them.
 *
 * @example
 * await retryLostConnection(() => db.selectFrom('t').execute(), 3);
 */
export async function retryLostConnection<T>(fn: () => Promise<T>, attempts: number): Promise<T> {
  for (let attempt = 1; ; attempt++) {
    try {
      return await fn();
    } catch (error) {
      if (attempt >= attempts || !isLostConnection(error)) throw error;
    }
  }
}

/**
 * Runs an idempotent read: on Postgres a read whose connection was cut under it is tried again on another one; a
 * failure is wrapped by {@link toStoreError}.
 *
 * @example
 * const rows = await guardedRead(() => db.selectFrom('immune_events').selectAll().execute());
 */
export async function guardedRead<T>(fn: () => Promise<T>): Promise<T> {
  try {
    return await retryLostConnection(fn, LOST_CONNECTION_ATTEMPTS);
  } catch (error) {
    throw toStoreError(error, 'event store query failed');
  }
}
