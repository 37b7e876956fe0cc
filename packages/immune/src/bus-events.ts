import type { ImmuneEvent } from './event.js';

/** What `ImmuneService` announces as `immuneEvent` on its bus: the stored event itself. */
export type ImmuneEventNotice = ImmuneEvent;

// The producing package declares its bus events (CONTRIBUTING.md, "Events on the bus"): importing any module of
// @guard/immune brings `immuneEvent` into `GuardEvents` for TypeScript.
declare module '@guard/core' {
  interface GuardEvents {
    /** An immune event was stored (also when it came from another replica's stream in fleet mode). */
    immuneEvent: [ImmuneEventNotice];
  }
}
