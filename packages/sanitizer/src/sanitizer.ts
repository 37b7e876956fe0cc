import type { ComponentName, Detection, SanitizeResult } from '@guard/core';

/**
 * What a {@link Sanitizer} gets besides the detection.
 *
 * @example
 * await sanitizer.sanitize(detection, { signal: AbortSignal.timeout(5_000) });
 */
export interface SanitizeContext {
  /** Aborted when the job runs out of time or the scheduler closes; pass it to every await that takes one. */
  readonly signal: AbortSignal;
}

/**
 * The part of a {@link SanitizeResult} a sanitizer fills in; the scheduler adds ids and timestamps.
 *
 * @example
 * const report: SanitizeReport = { outcome: 'success', actions: ['removeStale'], details: { removed: 12 } };
 */
export type SanitizeReport = Pick<SanitizeResult, 'outcome'> & Partial<Pick<SanitizeResult, 'actions' | 'details' | 'error'>>;

/**
 * Heals one kind of detection (one component) through a target interface from `@guard/core`.
 * A sanitizer resolves with a report; throwing counts as outcome `failed`.
 *
 * @example
 * const noop: Sanitizer = {
 *   component: 'handles',
 *   async sanitize(detection, { signal }) {
 *     signal.throwIfAborted();
 *     return { outcome: 'skipped', actions: ['report'], details: { resourceId: detection.resourceId } };
 *   },
 * };
 */
export interface Sanitizer {
  /** The component whose detections this sanitizer heals, e.g. `websocket`. */
  readonly component: ComponentName;
  sanitize(detection: Detection, context: SanitizeContext): Promise<SanitizeReport>;
}
