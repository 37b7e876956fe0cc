import type { BatchTarget } from '@guard/core';
import { raceAbort } from '@guard/core';
import { defineSanitizer } from './sanitizer.js';
import type { SanitizeReport, Sanitizer } from './sanitizer.js';

/** What a flush may report beyond the `BatchTarget` contract (`@guard/detectors`' `BatchWriter` reports both). */
interface FlushAccounting {
  /** Items the flush took and neither wrote, dead-lettered nor put back. */
  readonly lost?: unknown;
  /** Items still buffered when the flush ended. */
  readonly remaining?: unknown;
}

function count(value: unknown): number | undefined {
  return typeof value === 'number' && Number.isInteger(value) && value >= 0 ? value : undefined;
}

/**
 * C5: forces a flush of the batch writer; items that still fail land in its dead-letter store. `details.lost` is
 * what the target counted (items taken from the buffer and neither written, dead-lettered nor put back), never
 * assumed: a target that does not count it gets no `lost` field. Outcome `success` when the buffer was drained
 * (dead-lettered items are kept durably), `partial` when items are still buffered (a sink that timed out ends
 * a flush early), `failed` when the target reports lost items; a flush that throws is `failed` too.
 * The wait is bounded by the scheduler's signal, and a `BatchWriter`'s own `writeTimeoutMs` bounds the flush.
 *
 * @example
 * const sanitizer = createBatchSanitizer(batchWriter);
 * await sanitizer.sanitize(detection, { signal });
 * // { outcome: 'success', actions: ['flush'], details: { flushed: 90, deadLettered: 10, lost: 0, remaining: 0 } }
 */
export function createBatchSanitizer(target: BatchTarget): Sanitizer {
  return defineSanitizer('batch', target, async (_detection, signal) => {
    const result = await raceAbort(target.flush(), signal);
    const { flushed, deadLettered } = result;
    const lost = count((result as FlushAccounting).lost);
    const remaining = count((result as FlushAccounting).remaining);
    const report: SanitizeReport = {
      outcome: lost !== undefined && lost > 0 ? 'failed' : remaining !== undefined && remaining > 0 ? 'partial' : 'success',
      actions: ['flush'],
      details: { flushed, deadLettered, ...(lost === undefined ? {} : { lost }), ...(remaining === undefined ? {} : { remaining }) },
    };
    return lost !== undefined && lost > 0 ? { ...report, error: `${lost} item(s) lost by the flush` } : report;
  });
}
