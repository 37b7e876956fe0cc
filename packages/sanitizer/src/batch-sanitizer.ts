import type { BatchTarget } from '@guard/core';
import { raceAbort } from '@guard/core';
import type { Sanitizer } from './sanitizer.js';

/**
 * C5: forces a flush of the batch writer; items that still fail land in its dead-letter store,
 * so `details.flushed + details.deadLettered` accounts for every buffered item (`lost: 0`). Dead-lettered items
 * are kept durably, so the outcome is `success` either way; a flush that throws is `failed`.
 *
 * @example
 * const sanitizer = createBatchSanitizer(batchWriter);
 * await sanitizer.sanitize(detection, { signal });
 * // { outcome: 'success', actions: ['flush'], details: { flushed: 90, deadLettered: 10, lost: 0 } }
 */
export function createBatchSanitizer(target: BatchTarget): Sanitizer {
  return {
    component: 'batch',
    async sanitize(_detection, { signal }) {
      signal.throwIfAborted();
      const { flushed, deadLettered } = await raceAbort(target.flush(), signal);
      return {
        outcome: 'success',
        actions: ['flush'],
        details: { flushed, deadLettered, lost: 0 },
      };
    },
  };
}
