import { httpError } from '@guard/core';

/** A lone UTF-16 surrogate: with the `u` flag, a valid pair is one code point and does not match. */
const LONE_SURROGATE = /\p{Cs}/u;

/**
 * Checks that `value` is a string of 1 to `maxLength` UTF-16 units and well-formed Unicode (no lone surrogate,
 * which `encodeURIComponent`, UTF-8 encoders and Postgres all reject). Throws a 400 naming `field` otherwise.
 */
export function wellFormedText(value: unknown, field: string, maxLength: number): string {
  if (typeof value !== 'string' || value.length === 0 || value.length > maxLength) {
    throw httpError(400, 'Invalid field', `${field} must be a string of 1 to ${maxLength} characters`, field);
  }
  if (LONE_SURROGATE.test(value)) throw httpError(400, 'Invalid field', `${field} must be well-formed Unicode (it holds a lone surrogate)`, field);
  return value;
}

/** The first `maxUnits` UTF-16 units of `text`, one fewer when the cut would split a surrogate pair. */
export function truncateText(text: string, maxUnits: number): string {
  if (text.length <= maxUnits) return text;
  const last = text.charCodeAt(maxUnits - 1);
  return text.slice(0, last >= 0xd800 && last <= 0xdbff ? maxUnits - 1 : maxUnits);
}
