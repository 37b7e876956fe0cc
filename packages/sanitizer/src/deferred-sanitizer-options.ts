import { assertNumberOption, GuardError } from '@guard/core';
import type { ComponentName, GuardBus, Logger, MetricsOptions } from '@guard/core';
import { DEFAULT_DELAYS_MS } from './components.js';
import type { Sanitizer } from './sanitizer.js';

/**
 * Options for {@link DeferredSanitizer}.
 *
 * @example
 * const options: DeferredSanitizerOptions = { sanitizers: [createHandleSanitizer()], concurrency: 2, timeoutMs: 10_000 };
 */
export interface DeferredSanitizerOptions extends MetricsOptions {
  /**
   * The sanitizers; detections of components with none are not accepted. One component may have several (one
   * per tracker: two WebSocket servers, two pools) when each has `owns` (the built-in factories forward their
   * tracker's): a detection goes to the sanitizer that owns its resource.
   */
  readonly sanitizers: readonly Sanitizer[];
  /** Where each {@link SanitizeResult} is emitted as `sanitization`. */
  readonly bus?: GuardBus;
  /** Delay before a job runs, per component (ms). Defaults: {@link DEFAULT_DELAYS_MS}. */
  readonly delaysMs?: Readonly<Partial<Record<ComponentName, number>>>;
  /** Delay for components with no entry in `delaysMs` or the defaults (ms). Default 1000. */
  readonly defaultDelayMs?: number;
  /** Jobs running at once, over all components. Default 4. */
  readonly concurrency?: number;
  /** Per-job time limit; the sanitizer's signal aborts and the outcome is `timeout`. Default 30000. */
  readonly timeoutMs?: number;
  /** Jobs waiting (delayed or queued) at most; more are refused. Default 10000. */
  readonly maxQueued?: number;
  /** Components whose detections are refused (e.g. from `PARASITE_GUARD_DB_SANITIZATION=false`). */
  readonly disabledComponents?: readonly ComponentName[];
  /** `false` registers no metrics. Default true. `metricsPrefix` defaults to `parasite` (`prefix` is its deprecated name). */
  readonly metrics?: boolean;
  readonly logger?: Logger;
}

/** The options of a {@link DeferredSanitizer} checked and with their defaults: what the queue runs on. */
export interface DeferredSanitizerSettings {
  /** The sanitizers of each component (several only when each has `owns`). */
  readonly sanitizers: ReadonlyMap<string, readonly Sanitizer[]>;
  readonly delaysMs: ReadonlyMap<string, number>;
  readonly defaultDelayMs: number;
  readonly concurrency: number;
  readonly timeoutMs: number;
  readonly maxQueued: number;
  readonly disabled: ReadonlySet<string>;
}

/** Checks `options` (`INVALID_OPTION` naming the field) and fills in the defaults. */
export function deferredSanitizerSettings(options: DeferredSanitizerOptions): DeferredSanitizerSettings {
  if (!options || !Array.isArray(options.sanitizers)) {
    throw new GuardError('INVALID_OPTION', 'sanitizers must be an array of Sanitizer', { details: { field: 'sanitizers' } });
  }
  const sanitizers = sanitizersByComponent(options.sanitizers);
  const delaysMs = new Map<string, number>();
  for (const [component, ms] of Object.entries({ ...DEFAULT_DELAYS_MS, ...options.delaysMs } as Record<string, number | undefined>)) {
    if (ms === undefined) continue;
    assertNumberOption(`delaysMs.${component}`, ms, { min: 0 });
    delaysMs.set(component, ms);
  }
  const settings = {
    sanitizers,
    delaysMs,
    defaultDelayMs: options.defaultDelayMs ?? 1_000,
    concurrency: options.concurrency ?? 4,
    timeoutMs: options.timeoutMs ?? 30_000,
    maxQueued: options.maxQueued ?? 10_000,
    disabled: new Set<string>(options.disabledComponents ?? []),
  };
  assertNumberOption('defaultDelayMs', settings.defaultDelayMs, { min: 0 });
  assertNumberOption('concurrency', settings.concurrency, { min: 1, integer: true });
  assertNumberOption('timeoutMs', settings.timeoutMs, { min: 1 });
  assertNumberOption('maxQueued', settings.maxQueued, { min: 1, integer: true });
  return settings;
}

/** Groups the sanitizers by component; refuses a malformed one, one given twice, and siblings it could not route between. */
function sanitizersByComponent(sanitizers: readonly Sanitizer[]): Map<string, Sanitizer[]> {
  const byComponent = new Map<string, Sanitizer[]>();
  for (const sanitizer of sanitizers) {
    if (!sanitizer || typeof sanitizer.component !== 'string' || typeof sanitizer.sanitize !== 'function') {
      throw new GuardError('INVALID_OPTION', 'every sanitizer needs a component and a sanitize function', {
        details: { field: 'sanitizers' },
      });
    }
    const siblings = byComponent.get(sanitizer.component) ?? [];
    if (siblings.includes(sanitizer)) {
      throw new GuardError('INVALID_OPTION', `the same sanitizer for component ${sanitizer.component} was given twice`, {
        details: { field: 'sanitizers', component: sanitizer.component },
      });
    }
    siblings.push(sanitizer);
    byComponent.set(sanitizer.component, siblings);
  }
  for (const [component, siblings] of byComponent) {
    // Several sanitizers for one component can only be told apart by the resources their targets own.
    if (siblings.length > 1 && siblings.some((s) => typeof s.owns !== 'function')) {
      throw new GuardError(
        'INVALID_OPTION',
        `${siblings.length} sanitizers for component ${component}, but not all of them have owns(resourceId) to route detections by: build them from trackers (createXSanitizer(tracker)) or add owns`,
        { details: { field: 'sanitizers', component } },
      );
    }
  }
  return byComponent;
}
