import type { CircuitTarget } from '@guard/core';
import { defineSanitizer } from './sanitizer.js';
import type { Sanitizer } from './sanitizer.js';

/**
 * C4: aborts the orphaned half-open probes of the breaker named by the detection's `resourceId`
 * and opens it again. Outcome `skipped` when the breaker is unknown.
 *
 * @example
 * const sanitizer = createCircuitSanitizer(breakerRegistry);
 * await sanitizer.sanitize(detection, { signal }); // { outcome: 'success', actions: ['reopen'], details: { circuit: 'payments' } }
 */
export function createCircuitSanitizer(target: CircuitTarget): Sanitizer {
  return defineSanitizer('circuit', undefined, (detection) => {
    const circuit = detection.resourceId;
    const reopened = target.reopen(circuit, `half-open probe orphaned (${detection.id})`);
    return { outcome: reopened ? 'success' : 'skipped', actions: ['reopen'], details: { circuit, reopened } };
  });
}
