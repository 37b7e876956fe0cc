import type { Detection } from '@guard/core';
import { defineSanitizer } from './sanitizer.js';
import type { Sanitizer } from './sanitizer.js';

/**
 * The handle types a C7 detection names: `details.types` (array or type→count record), else the keys of `details.growth`.
 *
 * @example
 * handleTypesOf({ ...detection, details: { growth: { Timeout: 40 } } }); // ['Timeout']
 */
export function handleTypesOf(detection: Detection): string[] {
  const { types, growth } = detection.details;
  if (Array.isArray(types)) return types.filter((t): t is string => typeof t === 'string');
  if (types && typeof types === 'object') return Object.keys(types);
  if (growth && typeof growth === 'object' && !Array.isArray(growth)) return Object.keys(growth);
  return [];
}

/**
 * C7: handle leaks have no safe automatic fix, so this sanitizer only reports: outcome `skipped`,
 * with the leaking handle types from the detection (e.g. `['Timeout', 'TCPSocketWrap']`).
 *
 * @example
 * const sanitizer = createHandleSanitizer();
 * await sanitizer.sanitize(detection, { signal }); // { outcome: 'skipped', actions: ['report'], details: { types: ['Timeout'] } }
 */
export function createHandleSanitizer(): Sanitizer {
  return defineSanitizer('handles', undefined, (detection) => {
    return {
      outcome: 'skipped',
      actions: ['report'],
      details: { types: handleTypesOf(detection), reason: 'no safe automatic fix for handle leaks' },
    };
  });
}
