import { assertNumberOption, GuardError, silentLogger } from '@guard/core';
import type { GuardBus, Logger, MetricsOptions } from '@guard/core';
import type { RestartGate } from './fleet-restart-lease.js';
import { processMemorySampler } from './memory-sampler.js';
import type { CacheProbe, Clock, MemorySampler } from './memory-sampler.js';
import type { MemoryThresholds } from './memory-thresholds.js';

/**
 * Options for {@link MemoryGuardrail}. Units are in the names; defaults follow the WAL-609 guide.
 *
 * @example
 * const options: MemoryGuardrailOptions = { rssThresholdMb: 512, autoRestart: true, restartStateFile: '/var/lib/app/restart.json' };
 */
export interface MemoryGuardrailOptions extends MetricsOptions {
  /** Label on the metrics and in events. Default `'default'`. */
  readonly name?: string;
  /** Hard RSS threshold (critical). Default 700. */
  readonly rssThresholdMb?: number;
  /** Hard threshold of entries per cache probe (critical). Default 2200. */
  readonly cacheEntriesThreshold?: number;
  /** Share of a threshold at which the status becomes warning. Default 0.8. */
  readonly warningRatio?: number;
  /** Time between checks. Default 60 000. */
  readonly checkIntervalMs?: number;
  /** How long snapshots are kept. Default 3 600 000 (one hour). */
  readonly retentionMs?: number;
  /** Number of first checks averaged into the baseline. Default 10. */
  readonly baselineSamples?: number;
  /** Growth acceptance against the baseline for `/self-check/baseline`. Default 50. */
  readonly baselineAcceptanceMb?: number;
  /** Window of the growth regression. Default 600 000 (10 min). */
  readonly leakWindowMs?: number;
  /** Growth at or above which a good fit is a leak. Default 5. */
  readonly leakRateMbPerMin?: number;
  /** Minimum R squared for growth to count as a leak. Default 0.8 (a pure step fits at most ~0.78). */
  readonly minFitR2?: number;
  /** Minimum points in the window before a leak can be flagged. Default 5. */
  readonly minLeakSamples?: number;
  /** A leak predicted to breach the RSS threshold within this time is critical. Default 300 000. */
  readonly predictedBreachMs?: number;
  /**
   * Snapshots taken within this time of the first check are kept in the series but never fitted: a process that has
   * just started grows while it loads and warms up, and that growth must not read as a leak predicted to breach (it
   * restarted replicas that had just been restarted). Hard thresholds apply from the first check. Default 60 000;
   * 0 turns it off.
   */
  readonly startupGraceMs?: number;
  /** Restart the process (graceful SIGTERM) when a restart is advised. Default false. */
  readonly autoRestart?: boolean;
  /** At most one restart per this time, also across process restarts. Default 300 000. */
  readonly restartCooldownMs?: number;
  /** File that remembers the last restart time across restarts. Without it the budget lives in memory only. */
  readonly restartStateFile?: string;
  /**
   * Fleet mode: asked before every restart (after this replica's own cooldown allows one), so at most
   * `maxUnavailable` replicas restart at once (e.g. a `PostgresRestartLease`). A refused restart waits and is tried
   * again at the next check; the wait shows in `/self-check` and the log.
   */
  readonly restartGate?: RestartGate;
  /**
   * RSS at or above `rssThresholdMb` x this ratio restarts even when the fleet gate says wait (the slot is still
   * recorded): that close to the limit the OOM killer would end the process uncontrolled anyway. Manual restarts
   * never wait either. Default 1.2; `Infinity` makes every automatic restart wait for the gate.
   */
  readonly forceRestartRatio?: number;
  /** Deadline for the shutdown hooks. Default 10 000. */
  readonly shutdownTimeoutMs?: number;
  /**
   * After `terminate`, how long the process may stay alive before the restart is declared failed (the process
   * survived it): the guardrail leaves "restart in progress", counts the failure and allows restarts again once the
   * cooldown has passed. Default 60 000.
   */
  readonly restartGraceMs?: number;
  /** Ends the process after the hooks ran. Default: `process.kill(process.pid, 'SIGTERM')`. */
  readonly terminate?: () => void;
  /** Folder for `v8.writeHeapSnapshot` files when a leak is detected. Off without one. */
  readonly heapSnapshotDir?: string;
  /** At most one heap snapshot per this time. Default: `leakWindowMs`. */
  readonly heapSnapshotIntervalMs?: number;
  /** Cache probes by name, e.g. `{ sessions: () => sessions.size }`. More via `addCacheProbe`. */
  readonly cacheProbes?: Readonly<Record<string, CacheProbe>>;
  /** Reads memory. Default `process.memoryUsage()`. */
  readonly sampler?: MemorySampler;
  /** Epoch-ms clock. Default `Date.now`. */
  readonly now?: Clock;
  /** @deprecated Use `now` (the name every Guard package uses); `now` wins when both are given. */
  readonly clock?: Clock;
  /** Receives `memoryAlarm` on every status change, `memoryRestart` and `memoryThresholdsChanged`. */
  readonly bus?: GuardBus;
  readonly logger?: Logger;
  /** Start the check timer (and run the first check) at construction. Default true. */
  readonly autoStart?: boolean;
}

/** The options with defaults applied and every value validated. */
export interface ResolvedGuardrailOptions {
  readonly name: string;
  readonly thresholds: MemoryThresholds;
  readonly checkIntervalMs: number;
  readonly retentionMs: number;
  readonly baselineSamples: number;
  readonly baselineAcceptanceMb: number;
  readonly leakWindowMs: number;
  readonly minFitR2: number;
  readonly minLeakSamples: number;
  readonly predictedBreachMs: number;
  readonly startupGraceMs: number;
  readonly autoRestart: boolean;
  readonly restartCooldownMs: number;
  readonly restartStateFile: string | undefined;
  readonly restartGate: RestartGate | undefined;
  readonly forceRestartRatio: number;
  readonly shutdownTimeoutMs: number;
  readonly restartGraceMs: number;
  readonly terminate: () => void;
  readonly heapSnapshotDir: string | undefined;
  readonly heapSnapshotIntervalMs: number;
  readonly sampler: MemorySampler;
  readonly now: Clock;
  readonly logger: Logger;
}

const MAX_TIMER_MS = 2 ** 31 - 1;

/** Throws `INVALID_OPTION` unless `value` is a non-empty string. */
export function checkName(field: string, value: unknown): string {
  if (typeof value !== 'string' || value.trim() === '') {
    throw new GuardError('INVALID_OPTION', `${field} must be a non-empty string`, { details: { field, value } });
  }
  return value;
}

/** Applies the defaults and validates every option; a bad one throws `INVALID_OPTION` naming the field. */
export function resolveGuardrailOptions(options: MemoryGuardrailOptions): ResolvedGuardrailOptions {
  const num = (field: keyof MemoryGuardrailOptions, fallback: number, bounds: { min?: number; max?: number; integer?: boolean }): number => {
    const value = options[field] ?? fallback;
    assertNumberOption(field, value, bounds);
    return value;
  };
  const name = checkName('name', options.name ?? 'default');
  const rssThresholdMb = num('rssThresholdMb', 700, { min: 1 });
  const cacheEntriesThreshold = num('cacheEntriesThreshold', 2200, { min: 1 });
  const warningRatio = num('warningRatio', 0.8, { min: 0.01, max: 1 });
  const checkIntervalMs = num('checkIntervalMs', 60_000, { min: 1, max: MAX_TIMER_MS });
  const retentionMs = num('retentionMs', 3_600_000, { min: 1 });
  const baselineSamples = num('baselineSamples', 10, { min: 1, integer: true });
  const baselineAcceptanceMb = num('baselineAcceptanceMb', 50, { min: 0 });
  const leakWindowMs = num('leakWindowMs', 600_000, { min: 1 });
  const leakRateMbPerMin = num('leakRateMbPerMin', 5, { min: 0 });
  const minFitR2 = num('minFitR2', 0.8, { min: 0, max: 1 });
  const minLeakSamples = num('minLeakSamples', 5, { min: 2, integer: true });
  const predictedBreachMs = num('predictedBreachMs', 300_000, { min: 0 });
  const restartCooldownMs = num('restartCooldownMs', 300_000, { min: 0 });
  const shutdownTimeoutMs = num('shutdownTimeoutMs', 10_000, { min: 0 });
  const restartGraceMs = num('restartGraceMs', 60_000, { min: 0, max: MAX_TIMER_MS });
  const heapSnapshotIntervalMs = num('heapSnapshotIntervalMs', leakWindowMs, { min: 0 });
  const startupGraceMs = num('startupGraceMs', 60_000, { min: 0 });
  if (leakWindowMs > retentionMs) {
    throw new GuardError('INVALID_OPTION', `leakWindowMs (${leakWindowMs}) must not exceed retentionMs (${retentionMs})`, {
      details: { field: 'leakWindowMs' },
    });
  }
  for (const field of ['sampler', 'now', 'clock', 'terminate'] as const) {
    if (options[field] !== undefined && typeof options[field] !== 'function') {
      throw new GuardError('INVALID_OPTION', `${field} must be a function`, { details: { field } });
    }
  }
  if (options.restartStateFile !== undefined) checkName('restartStateFile', options.restartStateFile);
  if (options.heapSnapshotDir !== undefined) checkName('heapSnapshotDir', options.heapSnapshotDir);
  const gate = options.restartGate;
  if (gate !== undefined && (typeof gate !== 'object' || gate === null || typeof gate.acquire !== 'function')) {
    throw new GuardError('INVALID_OPTION', 'restartGate must implement RestartGate', { details: { field: 'restartGate' } });
  }
  const forceRestartRatio = options.forceRestartRatio ?? 1.2;
  if (forceRestartRatio !== Infinity) assertNumberOption('forceRestartRatio', forceRestartRatio, { min: 1 });
  return {
    name,
    thresholds: { rssThresholdMb, cacheEntriesThreshold, warningRatio, leakRateMbPerMin },
    checkIntervalMs,
    retentionMs,
    baselineSamples,
    baselineAcceptanceMb,
    leakWindowMs,
    minFitR2,
    minLeakSamples,
    predictedBreachMs,
    startupGraceMs,
    autoRestart: options.autoRestart ?? false,
    restartCooldownMs,
    restartStateFile: options.restartStateFile,
    restartGate: gate,
    forceRestartRatio,
    shutdownTimeoutMs,
    restartGraceMs,
    terminate: options.terminate ?? (() => process.kill(process.pid, 'SIGTERM')),
    heapSnapshotDir: options.heapSnapshotDir,
    heapSnapshotIntervalMs,
    sampler: options.sampler ?? processMemorySampler,
    now: options.now ?? options.clock ?? Date.now,
    logger: options.logger ?? silentLogger,
  };
}
