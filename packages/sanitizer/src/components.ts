/**
 * The Parasite Guard components C1-C7, in order.
 *
 * @example
 * for (const component of SANITIZER_COMPONENTS) console.log(component, sanitizer.delayFor(component));
 */
export const SANITIZER_COMPONENTS = ['websocket', 'eventbus', 'db', 'circuit', 'batch', 'context', 'handles'] as const;

/**
 * Default delay before a scheduled sanitization runs, per component. The seed fixes websocket at 5 s
 * (`PARASITE_GUARD_WEBSOCKET_ASYNC_DELAY`); the others are this package's choice: give a holder a moment to
 * clean up on its own where that is plausible (db, batch, eventbus, context), act at once where waiting only
 * hurts (a stuck breaker) or where nothing is changed (handles).
 *
 * @example
 * DEFAULT_DELAYS_MS.websocket; // 5000
 */
export const DEFAULT_DELAYS_MS: Readonly<Record<(typeof SANITIZER_COMPONENTS)[number], number>> = {
  websocket: 5_000,
  eventbus: 1_000,
  db: 2_000,
  circuit: 0,
  batch: 1_000,
  context: 1_000,
  handles: 0,
};
