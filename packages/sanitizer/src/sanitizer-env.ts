import { envReader } from '@guard/core';
import type { ComponentName, Env } from '@guard/core';
import { COMPONENT_NAMES } from '@guard/core';
import { DEFAULT_DELAYS_MS } from './components.js';
import type { DeferredSanitizerOptions } from './deferred-sanitizer-options.js';

/**
 * The options {@link deferredSanitizerOptionsFromEnv} can read.
 *
 * @example
 * const fromEnv: DeferredSanitizerEnvOptions = deferredSanitizerOptionsFromEnv(process.env);
 */
export type DeferredSanitizerEnvOptions = Pick<
  DeferredSanitizerOptions,
  'delaysMs' | 'defaultDelayMs' | 'concurrency' | 'timeoutMs' | 'maxQueued' | 'disabledComponents' | 'metrics' | 'metricsPrefix'
>;

/**
 * Reads the sanitizer's settings from the environment. Durations take `500ms`, `5s`, `2min` or a bare number of
 * seconds, as in the seed (`PARASITE_GUARD_WEBSOCKET_ASYNC_DELAY=5`). A bad value throws `INVALID_ENV` naming the variable.
 *
 * | variable | option |
 * |---|---|
 * | `PARASITE_GUARD_<COMPONENT>_ASYNC_DELAY` (WEBSOCKET, EVENTBUS, DB, CIRCUIT, BATCH, CONTEXT, HANDLES) | `delaysMs[component]` |
 * | `PARASITE_GUARD_ASYNC_DELAY` | `defaultDelayMs` |
 * | `PARASITE_GUARD_SANITIZATION_CONCURRENCY` | `concurrency` |
 * | `PARASITE_GUARD_SANITIZATION_TIMEOUT` | `timeoutMs` |
 * | `PARASITE_GUARD_SANITIZATION_MAX_QUEUED` | `maxQueued` |
 * | `PARASITE_GUARD_<COMPONENT>_SANITIZATION=false` | `disabledComponents` |
 * | `PARASITE_METRICS`, `PARASITE_METRICS_PREFIX` | `metrics`, `metricsPrefix` |
 *
 * @example
 * const options = deferredSanitizerOptionsFromEnv({ PARASITE_GUARD_WEBSOCKET_ASYNC_DELAY: '2' });
 * options.delaysMs?.websocket; // 2000
 */
export function deferredSanitizerOptionsFromEnv(env: Env = process.env): DeferredSanitizerEnvOptions {
  const read = envReader(env);
  const delaysMs: Partial<Record<ComponentName, number>> = {};
  const disabledComponents: ComponentName[] = [];
  for (const component of COMPONENT_NAMES) {
    const upper = component.toUpperCase();
    delaysMs[component] = read.durationMs(`PARASITE_GUARD_${upper}_ASYNC_DELAY`, DEFAULT_DELAYS_MS[component], 's', { min: 0 });
    if (!read.boolean(`PARASITE_GUARD_${upper}_SANITIZATION`, true)) disabledComponents.push(component);
  }
  const metricsPrefix = read.metricsPrefix('PARASITE_METRICS_PREFIX', 'parasite');
  return {
    delaysMs,
    defaultDelayMs: read.durationMs('PARASITE_GUARD_ASYNC_DELAY', 1_000, 's', { min: 0 }),
    concurrency: read.number('PARASITE_GUARD_SANITIZATION_CONCURRENCY', 4, { min: 1, integer: true }),
    timeoutMs: read.durationMs('PARASITE_GUARD_SANITIZATION_TIMEOUT', 30_000, 's', { min: 1 }),
    maxQueued: read.number('PARASITE_GUARD_SANITIZATION_MAX_QUEUED', 10_000, { min: 1, integer: true }),
    disabledComponents,
    metrics: read.boolean('PARASITE_METRICS', true),
    metricsPrefix,
  };
}
