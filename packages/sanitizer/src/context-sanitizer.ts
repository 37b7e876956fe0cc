import type { ContextTarget } from '@guard/core';
import { defineSanitizer } from './sanitizer.js';
import type { Sanitizer } from './sanitizer.js';

/**
 * The status orphaned contexts are closed with.
 *
 * @example
 * span.status === ORPHAN_CLOSE_STATUS; // 'error' once the context sanitizer closed it
 */
export const ORPHAN_CLOSE_STATUS = 'error';

/**
 * C6: closes the async contexts (spans) that were opened and never closed, with status `error`.
 * Outcome `skipped` when none were left open.
 *
 * @example
 * const sanitizer = createContextSanitizer(contextTracker);
 * await sanitizer.sanitize(detection, { signal }); // { outcome: 'success', actions: ['closeOrphans(error)'], details: { closed: 4 } }
 */
export function createContextSanitizer(target: ContextTarget): Sanitizer {
  return defineSanitizer('context', target, (detection) => {
    const closed = target.closeOrphans(detection.resourceId, ORPHAN_CLOSE_STATUS);
    return {
      outcome: closed > 0 ? 'success' : 'skipped',
      actions: [`closeOrphans(${ORPHAN_CLOSE_STATUS})`],
      details: { closed, status: ORPHAN_CLOSE_STATUS },
    };
  });
}
