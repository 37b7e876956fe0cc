import { isPgUnavailableError } from '@guard/core';

/**
 * True when `error` says the database is unreachable, restarting, overloaded or too slow (answer 503 + Retry-After and
 * let the caller retry), as opposed to a bug (500): Postgres connection loss and timeouts (core's
 * `isPgUnavailableError`, which walks the `cause` chain) and a busy SQLite file.
 */
export function isDatabaseUnavailable(error: unknown): boolean {
  if (isPgUnavailableError(error)) return true;
  const { code, message } = (error ?? {}) as { code?: unknown; message?: unknown };
  return code === 'SQLITE_BUSY' || code === 'SQLITE_LOCKED' || (typeof message === 'string' && message.includes('database is locked'));
}
