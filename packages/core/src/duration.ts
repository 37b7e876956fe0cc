import { GuardError } from './guard-error.js';

const UNIT_MS: Readonly<Record<string, number>> = { ms: 1, s: 1_000, sec: 1_000, m: 60_000, min: 60_000, h: 3_600_000, d: 86_400_000 };
const DURATION = /^(\d+(?:\.\d*)?|\.\d+)\s*([a-z]+)?$/i;

/** Options for {@link parseDuration}. */
export interface ParseDurationOptions {
  /** The field (or variable) being parsed, named in the error. Default `'duration'`. */
  readonly field?: string;
}

/**
 * Milliseconds of a duration: `"250ms"`, `"10s"`, `"5m"`, `"1h"`, `"1d"` (also `sec`, `min`; any case; decimals
 * allowed), and a bare number or numeric string is milliseconds. One meaning everywhere. Negative, non-finite or
 * unreadable input throws `GuardError('INVALID_INPUT')` with `details: { field, value }`.
 *
 * @example
 * parseDuration('1.5s'); // 1500
 * parseDuration(250); // 250
 * parseDuration(body.window, { field: 'window' });
 */
export function parseDuration(input: string | number, options: ParseDurationOptions = {}): number {
  const ms = durationMs(input);
  if (ms === undefined) {
    const field = options.field ?? 'duration';
    throw new GuardError('INVALID_INPUT', `${field} must be a duration like 250ms, 10s, 5m, 1h or a number of ms, got ${JSON.stringify(input)}`, {
      details: { field, value: input },
    });
  }
  return ms;
}

/** The ms of `input`, or undefined when it is not a duration. */
function durationMs(input: unknown): number | undefined {
  if (typeof input === 'number') return Number.isFinite(input) && input >= 0 ? input : undefined;
  if (typeof input !== 'string') return undefined;
  const match = DURATION.exec(input.trim());
  if (match === null) return undefined;
  const unit = match[2] === undefined ? 1 : UNIT_MS[match[2].toLowerCase()];
  if (unit === undefined) return undefined;
  const ms = Number(match[1]) * unit;
  return Number.isFinite(ms) ? ms : undefined;
}
