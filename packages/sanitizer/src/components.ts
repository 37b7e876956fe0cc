import { COMPONENT_NAMES } from '@guard/core';
import type { BuiltinComponentName } from '@guard/core';

/**
 * The Parasite Guard components C1-C7, in order: core's `COMPONENT_NAMES`.
 *
 * @deprecated Use `COMPONENT_NAMES` from `@guard/core`.
 * @example
 * for (const component of SANITIZER_COMPONENTS) console.log(component, sanitizer.delayFor(component));
 */
export const SANITIZER_COMPONENTS = COMPONENT_NAMES;

/**
 * Default delay before a scheduled sanitization runs, per component. The seed fixes websocket at 5 s
 * (`PARASITE_GUARD_WEBSOCKET_ASYNC_DELAY`); the others are this package's choice: give a holder a moment to
 * clean up on its own where that is plausible (db, batch, eventbus, context), act at once where waiting only
 * hurts (a stuck breaker) or where nothing is changed (handles).
 *
 * @example
 * DEFAULT_DELAYS_MS.websocket; // 5000
 */
export const DEFAULT_DELAYS_MS: Readonly<Record<BuiltinComponentName, number>> = {
  websocket: 5_000,
  eventbus: 1_000,
  db: 2_000,
  circuit: 0,
  batch: 1_000,
  context: 1_000,
  handles: 0,
};
