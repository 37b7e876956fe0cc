import { errorMessage, GuardError, parseDuration } from '@guard/core';

// Query parameters of the REST and SSE routes: each bad one is a 400 problem naming its field.

/**
 * A 400 `INVALID_INPUT` naming the query parameter.
 *
 * @example
 * throw badParam('limit', 'limit must be an integer >= 1');
 */
export function badParam(field: string, detail: string): GuardError {
  return new GuardError('INVALID_INPUT', detail, { details: { status: 400, title: 'Invalid query parameter', field } });
}

/**
 * A window query parameter (`900000`, `30s`, `15m`, `1h`, `7d`), at most the service's `maxWindowMs`.
 *
 * @example
 * const windowMs = parseWindow('window', '15m', service.maxWindowMs);
 */
export function parseWindow(field: string, raw: string, maxWindowMs: number): number {
  let ms: number;
  try {
    if (raw.length > 64) throw new Error(`${field} must be a duration like 900000, 30s, 15m, 1h or 7d`);
    ms = parseDuration(raw, { field });
  } catch (error) {
    throw badParam(field, errorMessage(error));
  }
  if (!(ms > 0)) throw badParam(field, `${field} must be greater than 0`);
  if (ms > maxWindowMs) throw badParam(field, `${field} must be at most ${maxWindowMs} ms`);
  return ms;
}

/**
 * `since`: ISO 8601 or epoch milliseconds.
 *
 * @example
 * parseSince('2026-01-01T00:00:00Z');
 */
export function parseSince(raw: string): number {
  const value = raw.trim();
  const ms = /^\d{1,15}$/.test(value) ? Number(value) : /^\d{4}-\d{2}-\d{2}/.test(value) ? Date.parse(value) : NaN;
  if (!Number.isFinite(ms)) throw badParam('since', `since must be an ISO 8601 timestamp or epoch milliseconds, got ${JSON.stringify(value.slice(0, 64))}`);
  return ms;
}

/**
 * An optional parameter that must be one of `allowed`.
 *
 * @example
 * const severity = parseEnum('severity', url.searchParams.get('severity'), IMMUNE_SEVERITIES);
 */
export function parseEnum<T extends string>(field: string, raw: string | null, allowed: readonly T[]): T | undefined {
  if (raw === null) return undefined;
  if (!(allowed as readonly string[]).includes(raw)) throw badParam(field, `${field} must be one of ${allowed.join(', ')}`);
  return raw as T;
}
