import type { DbPoolTarget } from '@guard/core';
import { raceAbort } from '@guard/core';
import { defineSanitizer } from './sanitizer.js';
import type { Sanitizer } from './sanitizer.js';

/**
 * C3: releases (or destroys) the orphaned connection. When the pool still holds more than `maxPoolSize`
 * connections afterwards, escalates: disposes the pool and verifies it drained to 0 (outcome `failed` if not).
 * Outcome `skipped` when the connection was already back and the pool is within its limit.
 *
 * @example
 * const sanitizer = createDbSanitizer(poolTracker);
 * const report = await sanitizer.sanitize(detection, { signal });
 * // { outcome: 'success', actions: ['release'], details: { released: true, active: 3, maxPoolSize: 30, disposed: false } }
 */
export function createDbSanitizer(target: DbPoolTarget): Sanitizer {
  return defineSanitizer('db', target, async (detection, signal) => {
    const actions: string[] = ['release'];
    const released = await raceAbort(target.release(detection.resourceId), signal);
    const maxPoolSize = target.maxPoolSize;
    const activeAfterRelease = target.activeCount();
    if (activeAfterRelease <= maxPoolSize) {
      return {
        outcome: released ? 'success' : 'skipped',
        actions,
        details: { released, active: activeAfterRelease, maxPoolSize, disposed: false },
      };
    }
    actions.push('dispose');
    await raceAbort(target.dispose(), signal);
    const active = target.activeCount();
    const details = { released, activeAfterRelease, active, maxPoolSize, disposed: true };
    if (active !== 0) {
      return { outcome: 'failed', actions, details, error: `pool still holds ${active} connections after dispose` };
    }
    actions.push('verify(0)');
    return { outcome: 'success', actions, details };
  });
}
