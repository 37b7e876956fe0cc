import { errorMessage, GuardError, isGuardError, isPgUnavailableError } from '@guard/core';
import type {} from './declarations.js';

/**
 * A database failure of the fleet lock or fleet decisions as a `GuardError`: `STORE_UNAVAILABLE` when the database
 * cannot be reached (refused, reset, terminated, timed out; transient), `STORE_ERROR` otherwise, with the driver's
 * error as `cause`. A `GuardError` other than a timeout passes through unchanged.
 *
 * @example
 * throw storeError(error, 'fleet decisions: query failed');
 */
export function storeError(error: unknown, what: string): GuardError {
  if (isGuardError(error) && error.code !== 'TIMEOUT') return error;
  return new GuardError(isPgUnavailableError(error) ? 'STORE_UNAVAILABLE' : 'STORE_ERROR', `${what}: ${errorMessage(error)}`, { cause: error });
}
