import type { ComponentName } from '@guard/core';
import type { Sanitizer } from '@guard/sanitizer';
import type { TrackerPair } from './trackers.js';

/**
 * One sanitizer per component for the scheduler, each routing a detection to the sanitizer of the tracker
 * instance that owns its resource: an app with two WebSocket servers or two pools heals both.
 *
 * @example
 * new DeferredSanitizer({ sanitizers: routeSanitizers(trackers.pairs) });
 */
export function routeSanitizers(pairs: readonly TrackerPair[]): Sanitizer[] {
  const byComponent = new Map<ComponentName, TrackerPair[]>();
  for (const pair of pairs) {
    const list = byComponent.get(pair.sanitizer.component) ?? [];
    list.push(pair);
    byComponent.set(pair.sanitizer.component, list);
  }
  return [...byComponent].map(([component, list]) => {
    if (list.length === 1) return list[0]!.sanitizer;
    return {
      component,
      async sanitize(detection, context) {
        const owner = list.find((pair) => pair.owns(detection.resourceId));
        if (!owner) return { outcome: 'skipped', actions: ['route'], details: { reason: 'no tracker owns this resource any more', resourceId: detection.resourceId } };
        return owner.sanitizer.sanitize(detection, context);
      },
    } satisfies Sanitizer;
  });
}
