import { isGuardError } from '@guard/core';

/** The downstream answered with an HTTP error status. */
export class DownstreamStatusError extends Error {
  readonly status: number;

  constructor(status: number) {
    super(`downstream answered ${status}`);
    this.name = 'DownstreamStatusError';
    this.status = status;
  }
}

/**
 * True when an error is the caller's fault (bad input that reached the call, or a 4xx from the downstream about
 * that input): such errors must not count against the downstream's breaker, or a few bad requests open it for all.
 */
export function isCallerFault(error: unknown): boolean {
  if (isGuardError(error, 'INVALID_INPUT')) return true;
  if (error instanceof URIError) return true;
  return error instanceof DownstreamStatusError && error.status >= 400 && error.status < 500 && error.status !== 408 && error.status !== 429;
}
