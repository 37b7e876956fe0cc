import { COMPONENT_NAMES } from '@guard/core';
import type { BuiltinComponentName, ComponentName, Logger, Severity } from '@guard/core';
import type { ParasiteMetrics } from './parasite-metrics.js';

/**
 * The seven Parasite Guard components (C1-C7), in order: core's `COMPONENT_NAMES`.
 *
 * @deprecated Use `COMPONENT_NAMES` from `@guard/core`.
 * @example
 * for (const c of PARASITE_COMPONENTS) chain.setMode('detect', c);
 */
export const PARASITE_COMPONENTS = COMPONENT_NAMES;

/**
 * One of the seven components: core's `BuiltinComponentName`.
 *
 * @example
 * const component: ParasiteComponent = 'websocket';
 */
export type ParasiteComponent = BuiltinComponentName;

/**
 * What a detector reports on one scan for one resource. The {@link DetectorChain} turns findings into
 * `Detection`s with a stable id while the condition holds.
 *
 * @example
 * const finding: Finding = {
 *   pattern: 'no_ack', severity: 'critical', resourceId: 'ws_1',
 *   message: '2 messages unacked for 3000 ms', details: { pending: 2 },
 * };
 */
export interface Finding {
  readonly pattern: string;
  readonly severity: Severity;
  readonly resourceId: string;
  readonly message: string;
  readonly details: Readonly<Record<string, unknown>>;
  /** `file:line:column` frames of the code that created the leaked resource. */
  readonly source?: readonly string[];
}

/**
 * What the chain hands a detector when it is added.
 *
 * @example
 * attach(context) { this.#trigger = context.trigger; }
 */
export interface DetectorContext {
  /** Asks the chain to scan this detector soon (coalesced, off the caller's stack): event-driven checks. */
  trigger(): void;
  /** The chain's metrics, when metrics are enabled. */
  readonly metrics: ParasiteMetrics | undefined;
  /** The chain's logger, for a detector given none of its own. */
  readonly logger?: Logger;
}

/**
 * A detector reads one tracker and reports findings. `scan` must be cheap: O(n) with a small constant,
 * never blocking the event loop for long.
 *
 * @example
 * const detector: Detector = {
 *   component: 'handles', pattern: 'handle_leak',
 *   scan: (now) => [],
 * };
 */
export interface Detector {
  readonly component: ComponentName;
  /** The main pattern this detector reports (findings may name a more specific one). */
  readonly pattern: string;
  scan(now: number): readonly Finding[];
  /** Called once when the detector joins a chain. */
  attach?(context: DetectorContext): void;
  close?(): Promise<void>;
}
