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
  /**
   * True when this sanitizer's target holds `resourceId`. With several sanitizers for one component (two
   * WebSocket servers, two pools), the `DeferredSanitizer` hands each detection to the one that owns its resource;
   * the built-in factories forward their target's `owns` (every `@guard/detectors` tracker has one).
   */
  owns?(resourceId: string): boolean;
}

/**
 * Forwards `target.owns` when the target has one (trackers do; hand-written targets may not).
 *
 * @example
 * return { component: 'db', ...ownership(target), async sanitize(detection, context) { ... } };
 */
export function ownership(target: object): Pick<Sanitizer, 'owns'> {
  const owns = (target as { owns?: unknown }).owns;
  if (typeof owns !== 'function') return {};
  return { owns: (resourceId: string) => (owns as (id: string) => unknown).call(target, resourceId) === true };
}

/**
 * Builds a {@link Sanitizer} of `component` that heals through `target`: it forwards the target's `owns`, refuses an
 * already aborted signal, then runs `heal`. Every built-in sanitizer is one of these.
 *
 * @example
 * return defineSanitizer('context', target, (detection) => ({ outcome: 'success', actions: ['closeOrphans'] }));
 */
export function defineSanitizer(
  component: ComponentName,
  target: object | undefined,
  heal: (detection: Detection, signal: AbortSignal) => SanitizeReport | Promise<SanitizeReport>,
): Sanitizer {
  return {
    component,
    ...(target === undefined ? {} : ownership(target)),
    async sanitize(detection, { signal }) {
      signal.throwIfAborted();
      return heal(detection, signal);
    },
  };
}
