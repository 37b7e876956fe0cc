import type { EventBusTarget } from '@guard/core';
import { defineSanitizer } from './sanitizer.js';
import type { Sanitizer } from './sanitizer.js';

/**
 * C2: removes the stale listeners behind a detection (collected owners, or the leaking call site) and reports
 * how many were removed and the new total. Outcome `skipped` when nothing was left to remove.
 *
 * @example
 * const sanitizer = createEventBusSanitizer(emitterTracker);
 * const report = await sanitizer.sanitize(detection, { signal });
 * // { outcome: 'success', actions: ['removeStale'], details: { removed: 1200, listeners: 14 } }
 */
export function createEventBusSanitizer(target: EventBusTarget): Sanitizer {
  return defineSanitizer('eventbus', target, (detection) => {
    const before = target.listenerCount();
    const removed = target.removeStale(detection.resourceId);
    const listeners = target.listenerCount();
    return {
      outcome: removed > 0 ? 'success' : 'skipped',
      actions: ['removeStale'],
      details: { removed, listenersBefore: before, listeners },
    };
  });
}
