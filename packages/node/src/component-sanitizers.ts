import type { ComponentName } from '@guard/core';
import type { Sanitizer } from '@guard/sanitizer';

/**
 * One sanitizer per component for the `DeferredSanitizer`, whose members can grow after it was built
 * (`guard.track()` adds trackers later, the scheduler takes its sanitizers once). A detection goes to the
 * member whose own `owns(resourceId)` claims it (the tracker's), or to the only member.
 *
 * @example
 * const websocket = new ComponentSanitizers('websocket');
 * websocket.add(createWebSocketSanitizer(tracker));
 * new DeferredSanitizer({ sanitizers: [websocket] });
 */
export class ComponentSanitizers implements Sanitizer {
  readonly component: ComponentName;
  readonly #members: Sanitizer[] = [];

  constructor(component: ComponentName) {
    this.component = component;
  }

  add(sanitizer: Sanitizer): () => void {
    this.#members.push(sanitizer);
    return () => {
      const index = this.#members.indexOf(sanitizer);
      if (index >= 0) this.#members.splice(index, 1);
    };
  }

  get size(): number {
    return this.#members.length;
  }

  owns(resourceId: string): boolean {
    return this.#owner(resourceId) !== undefined;
  }

  async sanitize(...[detection, context]: Parameters<Sanitizer['sanitize']>): ReturnType<Sanitizer['sanitize']> {
    const owner = this.#owner(detection.resourceId);
    if (!owner) return { outcome: 'skipped', actions: ['route'], details: { reason: 'no tracker owns this resource', resourceId: detection.resourceId } };
    return owner.sanitize(detection, context);
  }

  #owner(resourceId: string): Sanitizer | undefined {
    if (this.#members.length === 1) return this.#members[0];
    return this.#members.find((m) => m.owns?.(resourceId) === true);
  }
}
