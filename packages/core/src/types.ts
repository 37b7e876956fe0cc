/** How strongly a finding matters. */
export type Severity = 'info' | 'warning' | 'critical';

/** Every severity, weakest first. */
export const SEVERITIES: readonly Severity[] = ['info', 'warning', 'critical'];

/**
 * What a guard is allowed to do.
 * `dry_run` and `detect` observe only; `full` also responds early and sanitizes.
 */
export type GuardMode = 'disabled' | 'dry_run' | 'detect' | 'full';

/** Every mode, least active first. */
export const GUARD_MODES: readonly GuardMode[] = ['disabled', 'dry_run', 'detect', 'full'];

/** @returns true when `value` is one of {@link GUARD_MODES}. */
export function isGuardMode(value: unknown): value is GuardMode {
  return typeof value === 'string' && (GUARD_MODES as readonly string[]).includes(value);
}

/** @returns true when `value` is one of {@link SEVERITIES}. */
export function isSeverity(value: unknown): value is Severity {
  return typeof value === 'string' && (SEVERITIES as readonly string[]).includes(value);
}

/** Orders severities: negative when `a` is weaker than `b`. */
export function compareSeverity(a: Severity, b: Severity): number {
  return SEVERITIES.indexOf(a) - SEVERITIES.indexOf(b);
}

/**
 * The seven Parasite Guard components (C1-C7), in order.
 *
 * @example
 * for (const component of COMPONENT_NAMES) chain.setMode('detect', component);
 */
export const COMPONENT_NAMES = ['websocket', 'eventbus', 'db', 'circuit', 'batch', 'context', 'handles'] as const;

/** One of {@link COMPONENT_NAMES}. */
export type BuiltinComponentName = (typeof COMPONENT_NAMES)[number];

/** The Parasite Guard components (C1-C7); other packages may report under their own names. */
export type ComponentName = BuiltinComponentName | (string & {});

/**
 * One finding of a detector: a parasitic pattern on one resource.
 *
 * @example
 * const d: Detection = {
 *   id: 'det_1', component: 'websocket', pattern: 'no_ack', severity: 'critical',
 *   resourceId: 'conn-42', message: '3 messages unacked for 3s', details: { pending: 3 },
 *   detectedAt: Date.now(),
 * };
 */
export interface Detection {
  readonly id: string;
  readonly component: ComponentName;
  readonly pattern: string;
  readonly severity: Severity;
  readonly resourceId: string;
  readonly message: string;
  readonly details: Readonly<Record<string, unknown>>;
  /** Epoch milliseconds. */
  readonly detectedAt: number;
  /** `file:line:column` frames of the code that created the leaked resource, when known. */
  readonly source?: readonly string[];
}

/** How a sanitization ended. */
export type SanitizeOutcome = 'success' | 'partial' | 'failed' | 'skipped' | 'timeout';

/**
 * The result of healing one detection.
 *
 * @example
 * const r: SanitizeResult = {
 *   detectionId: 'det_1', component: 'websocket', resourceId: 'conn-42', outcome: 'success',
 *   actions: ['close(1008)', 'terminate'], details: { droppedMessages: 3 }, startedAt: t0, finishedAt: t1,
 * };
 */
export interface SanitizeResult {
  readonly detectionId: string;
  readonly component: ComponentName;
  readonly resourceId: string;
  readonly outcome: SanitizeOutcome;
  /** Short human-readable steps taken, in order. */
  readonly actions: readonly string[];
  readonly details: Readonly<Record<string, unknown>>;
  readonly startedAt: number;
  readonly finishedAt: number;
  readonly error?: string;
}
