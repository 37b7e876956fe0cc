import { envReader } from '@guard/core';
import type { Env } from '@guard/core';
import type { MemoryGuardrailOptions } from './guardrail-options.js';

/**
 * Environment variables read by {@link memoryOptionsFromEnv} (the WAL-609 seed names, plus three extras), by option.
 *
 * @example
 * console.log(`set ${MEMORY_ENV.rssThresholdMb} to change the RSS threshold`);
 */
export const MEMORY_ENV = {
  rssThresholdMb: 'MEMORY_RSS_THRESHOLD_MB',
  cacheEntriesThreshold: 'CACHE_ENTRIES_THRESHOLD',
  autoRestart: 'AUTO_RESTART_ENABLED',
  checkIntervalMs: 'MEMORY_CHECK_INTERVAL_SEC',
  baselineSamples: 'BASELINE_SAMPLE_COUNT',
  leakWindowMs: 'LEAK_DETECTION_WINDOW_MIN',
  leakRateMbPerMin: 'MEMORY_LEAK_RATE_MB_PER_MIN',
  restartStateFile: 'MEMORY_RESTART_STATE_FILE',
  heapSnapshotDir: 'MEMORY_HEAP_SNAPSHOT_DIR',
} as const;

/**
 * Reads the guardrail's options from the environment: a partial options bag where only variables that are set
 * appear. Code wins, as in every Guard package: spread it first, `{ ...memoryOptionsFromEnv(), ...code }`, or use
 * `MemoryGuardrail.fromEnv(env, overrides)`. A bad value throws `INVALID_ENV` naming the variable.
 * `MEMORY_CHECK_INTERVAL_SEC` takes seconds (or `500ms`, `2min`), `LEAK_DETECTION_WINDOW_MIN` minutes (or `90s`).
 *
 * @example
 * const guardrail = new MemoryGuardrail({ ...memoryOptionsFromEnv(process.env), cacheProbes: { sessions: () => sessions.size } });
 */
export function memoryOptionsFromEnv(env: Env = process.env): Partial<MemoryGuardrailOptions> {
  const read = envReader(env);
  const isSet = (name: string) => read.nameOf(name) !== undefined;
  const options: { -readonly [K in keyof MemoryGuardrailOptions]: MemoryGuardrailOptions[K] } = {};
  if (isSet(MEMORY_ENV.rssThresholdMb)) options.rssThresholdMb = read.number(MEMORY_ENV.rssThresholdMb, 700, { min: 1 });
  if (isSet(MEMORY_ENV.cacheEntriesThreshold)) {
    options.cacheEntriesThreshold = read.number(MEMORY_ENV.cacheEntriesThreshold, 2200, { min: 1, integer: true });
  }
  if (isSet(MEMORY_ENV.autoRestart)) options.autoRestart = read.boolean(MEMORY_ENV.autoRestart, false);
  if (isSet(MEMORY_ENV.checkIntervalMs)) {
    options.checkIntervalMs = read.durationMs(MEMORY_ENV.checkIntervalMs, 60_000, 's', { min: 1, max: 2 ** 31 - 1 });
  }
  if (isSet(MEMORY_ENV.baselineSamples)) options.baselineSamples = read.number(MEMORY_ENV.baselineSamples, 10, { min: 1, integer: true });
  if (isSet(MEMORY_ENV.leakWindowMs)) options.leakWindowMs = read.durationMs(MEMORY_ENV.leakWindowMs, 600_000, 'min', { min: 1 });
  if (isSet(MEMORY_ENV.leakRateMbPerMin)) options.leakRateMbPerMin = read.number(MEMORY_ENV.leakRateMbPerMin, 5, { min: 0 });
  if (isSet(MEMORY_ENV.restartStateFile)) options.restartStateFile = read.string(MEMORY_ENV.restartStateFile);
  if (isSet(MEMORY_ENV.heapSnapshotDir)) options.heapSnapshotDir = read.string(MEMORY_ENV.heapSnapshotDir);
  return options;
}
