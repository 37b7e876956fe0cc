import { GuardError } from '@guard/core';
import type { ComponentName, GuardMode, Logger } from '@guard/core';
import type { ComponentConfig } from '@guard/detectors';
import type { TrackerSet } from './trackers.js';

/** Components healed without a tracker of their own: the circuit's sanitizer works on the breaker registry. */
const HEALABLE_WITHOUT_TRACKER: readonly ComponentName[] = ['circuit'];

/**
 * Which components full mode can heal. Full mode answers 503 on a component's routes while it is healed, so a
 * component with nothing to heal it must not run in full mode: it would turn a detection into an outage.
 *
 * @example
 * const heal = healability(trackers, sanitizer !== undefined);
 * heal.components().filter((c) => !heal.healable(c));
 */
export interface Healability {
  /** Every component the guard watches: those with a tracker, and `circuit`. */
  components(): ComponentName[];
  /** True when the guard has a sanitizer for `component`. */
  healable(component: ComponentName): boolean;
}

/** The {@link Healability} of a guard's trackers; `hasSanitizer` false (the guard was given `sanitizer: false`) heals nothing. */
export function healability(trackers: TrackerSet, hasSanitizer: boolean): Healability {
  return {
    components: () => [...new Set<ComponentName>([...trackers.components(), ...HEALABLE_WITHOUT_TRACKER])],
    healable: (component) => hasSanitizer && (component === 'circuit' || trackers.sanitizers.has(component)),
  };
}

/** The mode a component runs in (the chain's own rule, applied before the chain exists). */
function effectiveMode(global: GuardMode, config: ComponentConfig | undefined): GuardMode {
  if (global === 'disabled') return 'disabled';
  const mode = config?.mode ?? global;
  return mode === 'full' && config?.sanitization === false ? 'detect' : mode;
}

/**
 * Refuses to start a guard whose configuration runs a component in full mode with nothing to heal it.
 *
 * @throws GuardError `SANITIZER_MISSING` naming the components.
 */
export function assertFullModeHealable(mode: GuardMode, configs: Readonly<Record<string, ComponentConfig>>, heal: Healability): void {
  const unhealable = heal.components().filter((c) => effectiveMode(mode, configs[c]) === 'full' && !heal.healable(c));
  if (unhealable.length === 0) return;
  throw new GuardError(
    'SANITIZER_MISSING',
    `full mode for ${unhealable.join(', ')} needs a sanitizer (the guard was given sanitizer: false): full mode would answer 503 while nothing heals. Use detect mode or enable the sanitizer.`,
    { details: { components: unhealable } },
  );
}

/**
 * The mode to run when the fleet asks for `wanted`: full mode asked of a replica that cannot heal every component
 * runs as detect here (with a warning), so one replica's configuration cannot make another answer 503 for nothing.
 */
export function healableMode(wanted: GuardMode, heal: Healability, logger: Logger): GuardMode {
  const unhealable = wanted === 'full' ? heal.components().filter((c) => !heal.healable(c)) : [];
  if (unhealable.length === 0) return wanted;
  logger.warn({ components: unhealable }, 'fleet: full mode asked, but nothing heals these components here; running detect');
  return 'detect';
}
