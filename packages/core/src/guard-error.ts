/**
 * The stable error codes. Packages add theirs by declaration merging, so the union stays closed per install:
 *
 * @example
 * declare module '@guard/core' {
 *   interface GuardErrorCodes { CIRCUIT_OPEN: true }
 * }
 */
export interface GuardErrorCodes {
  /** The object was closed; no new work is accepted. */
  CLOSED: true;
  /** An option passed in code is invalid. */
  INVALID_OPTION: true;
  /** An environment variable holds a bad value. */
  INVALID_ENV: true;
  /** Input from outside (HTTP body, YAML, API argument) is invalid. */
  INVALID_INPUT: true;
  /** The operation was aborted by the caller's signal. */
  ABORTED: true;
  /** The operation ran out of time. */
  TIMEOUT: true;
}

/** A stable string code of a {@link GuardError}. */
export type GuardErrorCode = keyof GuardErrorCodes;

const BRAND = Symbol.for('@guard/core.GuardError');

/** Options for {@link GuardError}. */
export interface GuardErrorOptions {
  readonly cause?: unknown;
  /** Extra machine-readable context, e.g. `{ field: 'severity' }`. */
  readonly details?: Readonly<Record<string, unknown>>;
}

/**
 * The one error class of Guard: every error carries a stable `code` and keeps its `cause`.
 *
 * @example
 * throw new GuardError('INVALID_OPTION', 'failureThreshold must be a positive integer', { details: { field: 'failureThreshold' } });
 */
export class GuardError extends Error {
  readonly code: GuardErrorCode;
  readonly details: Readonly<Record<string, unknown>>;
  readonly [BRAND] = true;

  constructor(code: GuardErrorCode, message: string, options: GuardErrorOptions = {}) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.name = 'GuardError';
    this.code = code;
    this.details = options.details ?? {};
  }

  toJSON(): Record<string, unknown> {
    return { name: this.name, code: this.code, message: this.message, details: this.details };
  }
}

/**
 * Checks for a Guard error (across duplicate package copies), optionally of one code.
 *
 * @example
 * if (isGuardError(err, 'CIRCUIT_OPEN')) return fallback();
 */
export function isGuardError<C extends GuardErrorCode>(error: unknown, code?: C): error is GuardError & { code: C } {
  if (typeof error !== 'object' || error === null || (error as Record<symbol, unknown>)[BRAND] !== true) return false;
  return code === undefined || (error as GuardError).code === code;
}

/**
 * Throws `INVALID_OPTION` unless `value` is a finite number within the bounds.
 *
 * @example
 * assertNumberOption('failureThreshold', options.failureThreshold, { min: 1, integer: true });
 */
export function assertNumberOption(
  name: string,
  value: unknown,
  bounds: { min?: number; max?: number; integer?: boolean } = {},
): asserts value is number {
  const { min = -Infinity, max = Infinity, integer = false } = bounds;
  if (typeof value !== 'number' || Number.isNaN(value) || value < min || value > max || (integer && !Number.isInteger(value))) {
    const range = `${integer ? 'an integer' : 'a number'}${min > -Infinity ? ` >= ${min}` : ''}${max < Infinity ? ` <= ${max}` : ''}`;
    throw new GuardError('INVALID_OPTION', `${name} must be ${range}, got ${String(value)}`, { details: { field: name, value } });
  }
}
