import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { writeHeapSnapshot } from 'node:v8';
import { assertNumberOption, assertOpen, GuardError, silentLogger, unrefInterval } from '@guard/core';
import type { Env, GuardBus, Logger, MemoryAlarm, MetricsOptions } from '@guard/core';
import { memoryOptionsFromEnv } from './from-env.js';
import { createMemoryMetrics } from './memory-metrics.js';
import type { GaugeSource, MemoryMetrics } from './memory-metrics.js';
import { processMemorySampler } from './memory-sampler.js';
import type { CacheProbe, Clock, MemorySampler } from './memory-sampler.js';
import { fitFromSums } from './regression.js';
import { RestartBudget } from './restart-budget.js';
import type { RestartGate } from './fleet-restart-lease.js';
import type { RestartReason, RestartRecord } from './restart-budget.js';
import { SnapshotRing } from './snapshot-ring.js';

declare module '@guard/core' {
  interface GuardErrorCodes {
    /** The restart state file could not be written, so the restart was not started. */
    RESTART_STATE_ERROR: true;
    /** The fleet restart lease's database cannot be reached (transient). */
    STORE_UNAVAILABLE: true;
    /** The fleet restart lease's database failed otherwise. */
    STORE_ERROR: true;
    /** `setThresholds` got an unknown field or a value out of range (`details.field` names it). */
    INVALID_THRESHOLD: true;
  }
  interface GuardEvents {
    /** The guardrail started a restart, the restart budget refused one, or the process survived one. */
    memoryRestart: [MemoryRestartNotice];
    /** Thresholds were changed at run time (the audit record: who, what, before and after). */
    memoryThresholdsChanged: [MemoryThresholdsChange];
  }
}

/**
 * Bytes per MB as this package counts them (MiB, 1024 x 1024, like `ps` and most dashboards).
 *
 * @example
 * const rssMb = guardrail.check().snapshot.rssBytes / BYTES_PER_MB;
 */
export const BYTES_PER_MB = 1024 * 1024;

/**
 * The thresholds a running guardrail can change without a restart ({@link MemoryGuardrail.setThresholds}).
 *
 * @example
 * const { rssThresholdMb, cacheEntriesThreshold } = guardrail.thresholds();
 */
export interface MemoryThresholds {
  /** Hard RSS threshold (critical). */
  readonly rssThresholdMb: number;
  /** Hard threshold of entries per cache probe (critical). */
  readonly cacheEntriesThreshold: number;
  /** Share of a threshold at which the status becomes warning (0.01-1). */
  readonly warningRatio: number;
  /** Growth at or above which a good fit is a leak. */
  readonly leakRateMbPerMin: number;
}

/** Payload of the `memoryThresholdsChanged` bus event: the audit record of a run-time threshold change. */
export interface MemoryThresholdsChange {
  readonly name: string;
  readonly previous: MemoryThresholds;
  readonly current: MemoryThresholds;
  /** Fields whose value changed. */
  readonly changed: readonly (keyof MemoryThresholds)[];
  /** Who changed them: `'api'` by default, `'http'` from `POST /self-check/thresholds`, or what the caller passed. */
  readonly source: string;
  /** For `'http'`: the client's address. */
  readonly remoteAddress?: string;
  readonly at: number;
}

/** Options of {@link MemoryGuardrail.setThresholds}. */
export interface SetThresholdsOptions {
  /** Recorded in the audit event and log line. Default `'api'`. */
  readonly source?: string;
  readonly remoteAddress?: string;
}

const THRESHOLD_BOUNDS: Readonly<Record<keyof MemoryThresholds, { min: number; max?: number; integer?: boolean }>> = {
  rssThresholdMb: { min: 1, max: 1_048_576 },
  cacheEntriesThreshold: { min: 1, max: Number.MAX_SAFE_INTEGER },
  warningRatio: { min: 0.01, max: 1 },
  leakRateMbPerMin: { min: 0, max: 1_048_576 },
};

/** The guardrail's overall verdict. */
export type MemoryStatus = MemoryAlarm['status'];

const STATUS_LEVEL: Record<MemoryStatus, number> = { healthy: 0, warning: 1, critical: 2 };

/** One reading kept in the series. */
export interface MemorySnapshot {
  /** Epoch milliseconds. */
  readonly at: number;
  readonly rssBytes: number;
  readonly heapUsedBytes: number;
  readonly heapTotalBytes: number;
  readonly externalBytes: number;
  readonly arrayBuffersBytes: number;
  /** Entries per cache probe; a probe that threw is left out. */
  readonly caches: Readonly<Record<string, number>>;
}

/** The least-squares RSS line over the leak window: `rssMb(t) = interceptMb + slopeMbPerMin * (t - originAt) / 60000`. */
export interface GrowthEstimate {
  readonly slopeMbPerMin: number;
  /** Fitted RSS in MB at `originAt`. */
  readonly interceptMb: number;
  /** Epoch ms of the newest point (x = 0 of the line). */
  readonly originAt: number;
  /** Goodness of fit (R squared, 0-1); a spike or a step fits a line badly. */
  readonly r2: number;
  /** Points in the window. */
  readonly samples: number;
  /** Time between the oldest and the newest point in the window. */
  readonly spanMs: number;
  /** Growth at or over the limit, with a good fit and enough samples. */
  readonly leakDetected: boolean;
}

/** The baseline: mean RSS of the first `baselineSamples` checks. */
export interface MemoryBaseline {
  readonly rssBytes: number;
  readonly heapUsedBytes: number;
  /** Samples averaged so far. */
  readonly samples: number;
  /** True once `baselineSamples` samples were taken. */
  readonly complete: boolean;
  /** Epoch ms of the first sample. */
  readonly startedAt: number;
}

/** One cache probe's verdict. */
export interface CacheStatus {
  readonly name: string;
  readonly entries: number;
  readonly threshold: number;
  readonly status: MemoryStatus;
}

/**
 * The result of one check (or a live assessment).
 *
 * @example
 * const { status, reasons, growth, timeToThresholdMs } = guardrail.check();
 */
export interface MemoryAssessment {
  readonly status: MemoryStatus;
  /** Human-readable reasons for a non-healthy status, most severe first. */
  readonly reasons: readonly string[];
  readonly snapshot: MemorySnapshot;
  readonly growth: GrowthEstimate;
  /** Predicted time until RSS reaches the threshold at the current growth, or null when it is not growing. */
  readonly timeToThresholdMs: number | null;
  readonly caches: readonly CacheStatus[];
  readonly baseline: MemoryBaseline | null;
  /** Set when a restart is advised: hard RSS or cache threshold, or a predicted breach within `predictedBreachMs`. */
  readonly restartReason: Exclude<RestartReason, 'manual'> | null;
}

/**
 * Payload of the `memoryRestart` bus event. `failed`: the process was still alive `restartGraceMs` after `terminate`
 * (a no-op hook, or a SIGTERM handler that does not exit); the restart counts as spent and new ones are allowed
 * again once the budget's cooldown has passed.
 */
export interface MemoryRestartNotice {
  readonly name: string;
  readonly reason: RestartReason;
  readonly outcome: 'started' | 'skipped' | 'failed';
  /** With `skipped`: how long until the restart budget allows one again. With `failed`: the same, from now. */
  readonly retryAfterMs?: number;
  /** With `skipped`: `cooldown` (this replica's budget) or `fleet_budget` (waiting for the fleet's restart gate). */
  readonly skipped?: 'cooldown' | 'fleet_budget';
  /** With `failed`: why (`survived` the terminate, or `terminate_threw`). */
  readonly failure?: 'survived' | 'terminate_threw';
  readonly at: number;
}

/** What {@link MemoryGuardrail.requestRestart} decided. */
export type RestartDecision =
  | { readonly restarted: true; readonly reason: RestartReason; readonly at: number }
  | {
      readonly restarted: false;
      readonly reason: RestartReason;
      /** `fleet_budget`: the fleet's restart gate said wait (other replicas are restarting, or the window is used). */
      readonly skipped: 'cooldown' | 'in_progress' | 'fleet_budget';
      readonly retryAfterMs: number;
      readonly lastRestartAt?: number;
      /** With `fleet_budget`: the replicas restarting now. */
      readonly holders?: readonly string[];
    };

/**
 * A restart that waits for the fleet's restart gate (shown in `/self-check` and the report).
 *
 * @example
 * const waiting = guardrail.report().restart.fleetWait; // { since, reason, blockedBy, retryAfterMs, holders } | null
 */
export interface FleetRestartWait {
  /** Epoch ms of the first refusal of this wait. */
  readonly since: number;
  readonly reason: RestartReason;
  readonly blockedBy: 'max_unavailable' | 'window';
  readonly retryAfterMs: number;
  readonly holders: readonly string[];
}

/** A shutdown hook: close servers, flush buffers. It gets a signal that aborts at the shutdown deadline. */
export type ShutdownHook = (signal: AbortSignal) => void | Promise<void>;

/**
 * Everything a dashboard needs to draw the RSS chart with its regression line and threshold.
 *
 * @example
 * const { series, regression, thresholds } = guardrail.report();
 * const points = series.map((s) => [s.at, s.rssBytes / BYTES_PER_MB]);
 */
export interface MemoryReport {
  readonly name: string;
  readonly status: MemoryStatus;
  /** The last check, or null before the first one. */
  readonly latest: MemoryAssessment | null;
  /** Snapshots kept (at most `retentionMs` old), oldest first. */
  readonly series: readonly MemorySnapshot[];
  /** The regression line of the latest check, with the window it covers. */
  readonly regression: (GrowthEstimate & { readonly windowStartAt: number }) | null;
  readonly thresholds: {
    readonly rssBytes: number;
    readonly rssMb: number;
    readonly warningRatio: number;
    readonly cacheEntries: number;
    readonly leakRateMbPerMin: number;
    readonly minFitR2: number;
    readonly baselineAcceptanceMb: number;
  };
  readonly baseline: MemoryBaseline | null;
  readonly restart: {
    readonly autoRestart: boolean;
    readonly inProgress: boolean;
    readonly last: RestartRecord | null;
    /** The last restart the process survived (still alive `restartGraceMs` after `terminate`), or null. */
    readonly lastFailed: { readonly reason: RestartReason; readonly at: number; readonly failure: 'survived' | 'terminate_threw' } | null;
    /** 0 when a restart is allowed now. */
    readonly retryAfterMs: number;
    /** Set while an advised restart waits for the fleet's restart gate. */
    readonly fleetWait: FleetRestartWait | null;
  };
  readonly lastHeapSnapshot: { readonly path: string; readonly at: number } | null;
  readonly checkIntervalMs: number;
  readonly leakWindowMs: number;
}

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
  readonly clock?: Clock;
  /** Receives `memoryAlarm` on every status change and `memoryRestart`. */
  readonly bus?: GuardBus;
  readonly logger?: Logger;
  /** Start the check timer (and run the first check) at construction. Default true. */
  readonly autoStart?: boolean;
}

const EMPTY_CACHES: Readonly<Record<string, number>> = Object.freeze({});
const MS_PER_MIN = 60_000;

function checkName(field: string, value: unknown): string {
  if (typeof value !== 'string' || value.trim() === '') {
    throw new GuardError('INVALID_OPTION', `${field} must be a non-empty string`, { details: { field, value } });
  }
  return value;
}

const round = (value: number, digits = 2) => Number(value.toFixed(digits));

/**
 * The memory-leak guardrail: samples memory on a timer, keeps an hour of snapshots, fits a least-squares line
 * over the leak window to measure the growth rate (MB/min) with its goodness of fit, predicts the time to the RSS
 * threshold, and maps it all to `healthy | warning | critical` with reasons. Optionally restarts the process
 * gracefully (at most once per cooldown, remembered across restarts) and writes heap snapshots on a leak.
 *
 * @example
 * await using guardrail = new MemoryGuardrail({
 *   rssThresholdMb: 700,
 *   cacheProbes: { sessions: () => sessions.size },
 *   bus,
 * });
 * guardrail.report(); // series, regression line, thresholds, status
 */
export class MemoryGuardrail implements AsyncDisposable {
  readonly name: string;
  #rssThresholdMb: number;
  #cacheThreshold: number;
  #warningRatio: number;
  readonly #checkIntervalMs: number;
  readonly #retentionMs: number;
  readonly #baselineSamples: number;
  readonly #baselineAcceptanceMb: number;
  readonly #leakWindowMs: number;
  #leakRate: number;
  readonly #minFitR2: number;
  readonly #minLeakSamples: number;
  readonly #predictedBreachMs: number;
  readonly #autoRestart: boolean;
  readonly #shutdownTimeoutMs: number;
  readonly #restartGraceMs: number;
  readonly #terminate: () => void;
  readonly #heapSnapshotDir: string | undefined;
  readonly #heapSnapshotIntervalMs: number;
  readonly #sampler: MemorySampler;
  readonly #clock: Clock;
  readonly #bus: GuardBus | undefined;
  readonly #logger: Logger;
  readonly #metrics: MemoryMetrics;
  readonly #budget: RestartBudget;
  readonly #gate: RestartGate | undefined;
  readonly #forceRestartRatio: number;
  #fleetWait: FleetRestartWait | null = null;
  readonly #ring: SnapshotRing<MemorySnapshot>;
  readonly #probes = new Map<string, CacheProbe>();
  readonly #hooks = new Set<ShutdownHook>();
  #baselineSum = { rss: 0, heapUsed: 0, count: 0, startedAt: 0 };
  #latest: MemoryAssessment | null = null;
  #status: MemoryStatus = 'healthy';
  #timer: NodeJS.Timeout | undefined;
  #restarting: Promise<void> | undefined;
  /** Set from the synchronous start of `requestRestart` until the restart ends or fails; blocks a second one. */
  #restartInProgress = false;
  #graceTimer: NodeJS.Timeout | undefined;
  #lastFailedRestart: MemoryReport['restart']['lastFailed'] = null;
  #lastHeapSnapshot: { path: string; at: number } | null = null;
  #closed = false;
  #closing: Promise<void> | undefined;
  #detachMetrics: () => void = () => {};
  /**
   * Running least-squares sums over the newest `count` stored points (the leak window), relative to (`base` ms, `y0` MB),
   * so a check costs O(1) amortized instead of a scan of the window. Rebuilt from the ring every `capacity` stores
   * (which bounds rounding drift) and when the clock moves backwards (which restarts the window).
   */
  readonly #win = { base: 0, y0: 0, count: 0, sx: 0, sy: 0, sxx: 0, sxy: 0, syy: 0, lastAt: -Infinity, stores: 0 };
  #cacheLabels = new Set<string>();

  constructor(options: MemoryGuardrailOptions = {}) {
    this.name = checkName('name', options.name ?? 'default');
    const num = (field: keyof MemoryGuardrailOptions, fallback: number, bounds: { min?: number; max?: number; integer?: boolean }) => {
      const value = options[field] ?? fallback;
      assertNumberOption(field, value, bounds);
      return value;
    };
    this.#rssThresholdMb = num('rssThresholdMb', 700, { min: 1 });
    this.#cacheThreshold = num('cacheEntriesThreshold', 2200, { min: 1 });
    this.#warningRatio = num('warningRatio', 0.8, { min: 0.01, max: 1 });
    this.#checkIntervalMs = num('checkIntervalMs', 60_000, { min: 1, max: 2 ** 31 - 1 });
    this.#retentionMs = num('retentionMs', 3_600_000, { min: 1 });
    this.#baselineSamples = num('baselineSamples', 10, { min: 1, integer: true });
    this.#baselineAcceptanceMb = num('baselineAcceptanceMb', 50, { min: 0 });
    this.#leakWindowMs = num('leakWindowMs', 600_000, { min: 1 });
    this.#leakRate = num('leakRateMbPerMin', 5, { min: 0 });
    this.#minFitR2 = num('minFitR2', 0.8, { min: 0, max: 1 });
    this.#minLeakSamples = num('minLeakSamples', 5, { min: 2, integer: true });
    this.#predictedBreachMs = num('predictedBreachMs', 300_000, { min: 0 });
    const restartCooldownMs = num('restartCooldownMs', 300_000, { min: 0 });
    this.#shutdownTimeoutMs = num('shutdownTimeoutMs', 10_000, { min: 0 });
    this.#restartGraceMs = num('restartGraceMs', 60_000, { min: 0, max: 2 ** 31 - 1 });
    this.#heapSnapshotIntervalMs = num('heapSnapshotIntervalMs', this.#leakWindowMs, { min: 0 });
    if (this.#leakWindowMs > this.#retentionMs) {
      throw new GuardError('INVALID_OPTION', `leakWindowMs (${this.#leakWindowMs}) must not exceed retentionMs (${this.#retentionMs})`, {
        details: { field: 'leakWindowMs' },
      });
    }
    for (const field of ['sampler', 'clock', 'terminate'] as const) {
      if (options[field] !== undefined && typeof options[field] !== 'function') {
        throw new GuardError('INVALID_OPTION', `${field} must be a function`, { details: { field } });
      }
    }
    if (options.restartStateFile !== undefined) checkName('restartStateFile', options.restartStateFile);
    if (options.heapSnapshotDir !== undefined) checkName('heapSnapshotDir', options.heapSnapshotDir);
    this.#autoRestart = options.autoRestart ?? false;
    this.#terminate = options.terminate ?? (() => process.kill(process.pid, 'SIGTERM'));
    this.#heapSnapshotDir = options.heapSnapshotDir;
    this.#sampler = options.sampler ?? processMemorySampler;
    this.#clock = options.clock ?? Date.now;
    this.#bus = options.bus;
    this.#logger = options.logger ?? silentLogger;
    this.#budget = new RestartBudget({ file: options.restartStateFile, cooldownMs: restartCooldownMs, logger: this.#logger });
    if (options.restartGate !== undefined && (typeof options.restartGate !== 'object' || typeof options.restartGate.acquire !== 'function')) {
      throw new GuardError('INVALID_OPTION', 'restartGate must implement RestartGate', { details: { field: 'restartGate' } });
    }
    this.#gate = options.restartGate;
    this.#forceRestartRatio = options.forceRestartRatio ?? 1.2;
    if (this.#forceRestartRatio !== Infinity) assertNumberOption('forceRestartRatio', this.#forceRestartRatio, { min: 1 });
    const capacity = Math.min(100_000, Math.max(2, Math.ceil(this.#retentionMs / this.#checkIntervalMs) + 1));
    this.#ring = new SnapshotRing(capacity);
    for (const [name, probe] of Object.entries(options.cacheProbes ?? {})) this.addCacheProbe(name, probe);
    this.#metrics = createMemoryMetrics(options);
    this.#detachMetrics = this.#metrics.attach(this.name, this.#gaugeSource);
    if (options.autoStart ?? true) this.start();
  }

  /**
   * Creates a guardrail from the environment (see `memoryOptionsFromEnv`); variables that are set override `defaults`.
   *
   * @example
   * await using guardrail = MemoryGuardrail.fromEnv(process.env, { bus, logger });
   */
  static fromEnv(env: Env = process.env, defaults: MemoryGuardrailOptions = {}): MemoryGuardrail {
    return new MemoryGuardrail({ ...defaults, ...memoryOptionsFromEnv(env) });
  }

  /** The thresholds in force (they can change at run time through {@link MemoryGuardrail.setThresholds}). */
  thresholds(): MemoryThresholds {
    return {
      rssThresholdMb: this.#rssThresholdMb,
      cacheEntriesThreshold: this.#cacheThreshold,
      warningRatio: this.#warningRatio,
      leakRateMbPerMin: this.#leakRate,
    };
  }

  /**
   * Changes thresholds of the running guardrail, without a restart. Every field is validated before any is applied
   * (all or nothing); an unknown field or a value out of range throws `INVALID_THRESHOLD` naming the field. `assess()`
   * (so `/self-check`) uses the new values at once, the timer's next check acts on them (alarms, auto-restart).
   * A change is audited: a `memoryThresholdsChanged` event on the bus and a `warn` log line
   * `memory guardrail thresholds changed` with the previous and current values and the source.
   *
   * @returns the thresholds now in force.
   * @example
   * guardrail.setThresholds({ rssThresholdMb: 900, cacheEntriesThreshold: 5_000 }, { source: 'ops-console' });
   */
  setThresholds(changes: Partial<MemoryThresholds>, options: SetThresholdsOptions = {}): MemoryThresholds {
    assertOpen(this.#closed, 'MemoryGuardrail');
    const invalid = (field: string, value: unknown, message: string) =>
      new GuardError('INVALID_THRESHOLD', message, { details: { field, value, status: 400, title: 'Invalid threshold' } });
    if (typeof changes !== 'object' || changes === null || Array.isArray(changes)) {
      throw invalid('thresholds', changes, 'thresholds must be an object such as {"rssThresholdMb": 900}');
    }
    const fields = Object.keys(changes);
    if (fields.length === 0) throw invalid('thresholds', changes, `name at least one of ${Object.keys(THRESHOLD_BOUNDS).join(', ')}`);
    for (const field of fields) {
      const bounds = THRESHOLD_BOUNDS[field as keyof MemoryThresholds];
      const value: unknown = (changes as Record<string, unknown>)[field];
      if (bounds === undefined || !Object.hasOwn(THRESHOLD_BOUNDS, field)) {
        throw invalid(field, value, `${field} is not a threshold; use ${Object.keys(THRESHOLD_BOUNDS).join(', ')}`);
      }
      const { min, max = Infinity, integer = false } = bounds;
      if (typeof value !== 'number' || !Number.isFinite(value) || value < min || value > max || (integer && !Number.isInteger(value))) {
        throw invalid(field, value, `${field} must be a finite number >= ${min}${max < Infinity ? ` and <= ${max}` : ''}, got ${JSON.stringify(value)}`);
      }
    }
    const previous = this.thresholds();
    const next = { ...previous, ...changes };
    this.#rssThresholdMb = next.rssThresholdMb;
    this.#cacheThreshold = next.cacheEntriesThreshold;
    this.#warningRatio = next.warningRatio;
    this.#leakRate = next.leakRateMbPerMin;
    const current = this.thresholds();
    const changed = (Object.keys(current) as (keyof MemoryThresholds)[]).filter((field) => current[field] !== previous[field]);
    const source = options.source ?? 'api';
    const at = this.#clock();
    const audit: MemoryThresholdsChange = {
      name: this.name,
      previous,
      current,
      changed,
      source,
      ...(options.remoteAddress === undefined ? {} : { remoteAddress: options.remoteAddress }),
      at,
    };
    this.#logger.warn({ guardrail: this.name, previous, current, changed, source, remoteAddress: options.remoteAddress }, 'memory guardrail thresholds changed');
    this.#bus?.emit('memoryThresholdsChanged', audit);
    return current;
  }

  /** The status of the last check (`healthy` before the first one). */
  get status(): MemoryStatus {
    return this.#status;
  }

  /** Starts the check timer (unref'ed) and runs a first check. Idempotent. */
  start(): void {
    assertOpen(this.#closed, 'MemoryGuardrail');
    if (this.#timer) return;
    this.#timer = unrefInterval(() => this.#tick(), this.#checkIntervalMs);
    this.#tick();
  }

  /**
   * Adds a cache probe (entries are checked against `cacheEntriesThreshold`).
   *
   * @returns a function that removes the probe.
   * @example
   * const remove = guardrail.addCacheProbe('sessions', () => sessions.size);
   */
  addCacheProbe(name: string, probe: CacheProbe): () => void {
    assertOpen(this.#closed, 'MemoryGuardrail');
    checkName('cache probe name', name);
    if (typeof probe !== 'function') throw new GuardError('INVALID_OPTION', `cache probe ${name} must be a function`, { details: { field: 'cacheProbes' } });
    if (this.#probes.has(name)) throw new GuardError('INVALID_OPTION', `cache probe ${name} already exists`, { details: { field: 'cacheProbes', name } });
    this.#probes.set(name, probe);
    return () => {
      if (this.#probes.get(name) !== probe) return;
      this.#probes.delete(name);
      this.#cacheLabels.delete(name);
      this.#metrics.gauges.cacheEntries.remove({ name: this.name, cache: name });
    };
  }

  /**
   * Registers a hook that runs before a restart (with a deadline of `shutdownTimeoutMs`).
   *
   * @returns a function that removes the hook.
   * @example
   * guardrail.onShutdown(() => new Promise((resolve) => server.close(() => resolve())));
   */
  onShutdown(hook: ShutdownHook): () => void {
    assertOpen(this.#closed, 'MemoryGuardrail');
    this.#hooks.add(hook);
    return () => {
      this.#hooks.delete(hook);
    };
  }

  /**
   * Takes a snapshot, stores it, and evaluates the series: updates metrics, emits `memoryAlarm` when the status
   * changes, writes a heap snapshot on a leak (when configured) and starts an auto-restart when advised (when enabled).
   *
   * @example
   * const { status, reasons, growth } = guardrail.check();
   */
  check(): MemoryAssessment {
    assertOpen(this.#closed, 'MemoryGuardrail');
    const snapshot = this.#snapshot();
    this.#store(snapshot);
    if (this.#baselineSum.count < this.#baselineSamples) {
      if (this.#baselineSum.count === 0) this.#baselineSum.startedAt = snapshot.at;
      this.#baselineSum.rss += snapshot.rssBytes;
      this.#baselineSum.heapUsed += snapshot.heapUsedBytes;
      this.#baselineSum.count++;
    }
    const assessment = this.#evaluate(snapshot, false);
    this.#latest = assessment;
    this.#publish(assessment);
    if (assessment.growth.leakDetected) this.#maybeHeapSnapshot(snapshot.at);
    if (this.#autoRestart && assessment.restartReason !== null && !this.#restartInProgress) {
      this.requestRestart(assessment.restartReason).catch((error: unknown) => {
        this.#logger.error({ err: error, guardrail: this.name }, 'memory guardrail auto-restart failed');
      });
    }
    return assessment;
  }

  /**
   * Evaluates a fresh sample against the stored series without storing it or acting on it
   * (no metrics, events or restarts). `/self-check` uses this.
   *
   * @example
   * if (guardrail.assess().status === 'critical') shedLoad();
   */
  assess(): MemoryAssessment {
    assertOpen(this.#closed, 'MemoryGuardrail');
    return this.#evaluate(this.#snapshot(), true);
  }

  /** The last check's result, or null before the first check. */
  latest(): MemoryAssessment | null {
    return this.#latest;
  }

  /** The baseline so far, or null before the first check. */
  baseline(): MemoryBaseline | null {
    const { rss, heapUsed, count, startedAt } = this.#baselineSum;
    if (count === 0) return null;
    return { rssBytes: rss / count, heapUsedBytes: heapUsed / count, samples: count, complete: count >= this.#baselineSamples, startedAt };
  }

  /** Stored snapshots not older than `retentionMs`, oldest first. */
  snapshots(): MemorySnapshot[] {
    return this.#ring.since(this.#clock() - this.#retentionMs);
  }

  /**
   * Everything a dashboard needs: the series, the regression line of the latest check, thresholds, baseline, restart state.
   *
   * @example
   * const { series, regression, thresholds } = guardrail.report();
   * // line: rssMb(t) = regression.interceptMb + regression.slopeMbPerMin * (t - regression.originAt) / 60000
   */
  report(): MemoryReport {
    const latest = this.#latest;
    const allowance = this.#budget.check(this.#clock());
    return {
      name: this.name,
      status: this.#status,
      latest,
      series: this.snapshots(),
      regression: latest ? { ...latest.growth, windowStartAt: latest.growth.originAt - latest.growth.spanMs } : null,
      thresholds: {
        rssBytes: this.#rssThresholdMb * BYTES_PER_MB,
        rssMb: this.#rssThresholdMb,
        warningRatio: this.#warningRatio,
        cacheEntries: this.#cacheThreshold,
        leakRateMbPerMin: this.#leakRate,
        minFitR2: this.#minFitR2,
        baselineAcceptanceMb: this.#baselineAcceptanceMb,
      },
      baseline: this.baseline(),
      restart: {
        autoRestart: this.#autoRestart,
        inProgress: this.#restartInProgress,
        last: allowance.last ?? null,
        lastFailed: this.#lastFailedRestart,
        retryAfterMs: allowance.retryAfterMs,
        fleetWait: this.#fleetWait,
      },
      lastHeapSnapshot: this.#lastHeapSnapshot,
      checkIntervalMs: this.#checkIntervalMs,
      leakWindowMs: this.#leakWindowMs,
    };
  }

  /**
   * Restarts the process gracefully unless the restart budget refuses (one per `restartCooldownMs`, persisted):
   * records the restart time, then (on the next turn of the event loop) runs the shutdown hooks with a deadline,
   * logs the final state and calls `terminate` (SIGTERM to itself by default) so the supervisor starts it again.
   * Resolves with the decision as soon as it is made. Works whether or not `autoRestart` is on.
   *
   * @example
   * const decision = await guardrail.requestRestart('manual');
   * if (!decision.restarted) console.log('retry in', decision.retryAfterMs, 'ms');
   */
  async requestRestart(reason: RestartReason, options: { signal?: AbortSignal } = {}): Promise<RestartDecision> {
    options.signal?.throwIfAborted();
    assertOpen(this.#closed, 'MemoryGuardrail');
    const now = this.#clock();
    if (this.#restartInProgress) return { restarted: false, reason, skipped: 'in_progress', retryAfterMs: 0 };
    this.#restartInProgress = true;
    let lease: string | undefined;
    // The fleet is asked only when this replica's own cooldown would allow the restart (the claim below decides).
    if (this.#gate && this.#budget.check(now).allowed) {
      const waited = await this.#askFleet(reason, now);
      if (!waited.granted) {
        this.#restartInProgress = false;
        return waited.decision;
      }
      lease = waited.leaseId;
    }
    let claim;
    try {
      claim = await this.#budget.claim(now, reason);
    } catch (error) {
      this.#restartInProgress = false;
      this.#releaseLease(lease);
      throw new GuardError('RESTART_STATE_ERROR', `cannot persist the restart time, restart not started: ${(error as Error).message}`, {
        cause: error,
      });
    }
    if (!claim.allowed) {
      this.#restartInProgress = false;
      this.#releaseLease(lease);
      this.#metrics.restartsSkipped.inc({ name: this.name });
      this.#logger.warn(
        { guardrail: this.name, reason, retryAfterMs: claim.retryAfterMs, lastRestartAt: claim.last?.lastRestartAt },
        'memory guardrail restart skipped: restart budget used',
      );
      this.#bus?.emit('memoryRestart', { name: this.name, reason, outcome: 'skipped', skipped: 'cooldown', retryAfterMs: claim.retryAfterMs, at: now });
      return {
        restarted: false,
        reason,
        skipped: 'cooldown',
        retryAfterMs: claim.retryAfterMs,
        ...(claim.last ? { lastRestartAt: claim.last.lastRestartAt } : {}),
      };
    }
    if (this.#closed) {
      // Closed while the budget was being claimed: the restart was recorded but is not started.
      this.#restartInProgress = false;
      assertOpen(this.#closed, 'MemoryGuardrail');
    }
    this.#metrics.restarts.inc({ name: this.name, reason });
    this.#bus?.emit('memoryRestart', { name: this.name, reason, outcome: 'started', at: now });
    const trigger = this.#latest;
    this.#restarting = new Promise<void>((resolve) => setImmediate(resolve))
      .then(() => this.#shutdown(reason, trigger))
      .catch((error: unknown) => {
        this.#logger.error({ err: error, guardrail: this.name }, 'memory guardrail restart failed');
      });
    return { restarted: true, reason, at: now };
  }

  /** Asks the fleet's restart gate; a refusal becomes a `fleet_budget` skip, logged and shown in the report. */
  async #askFleet(reason: RestartReason, now: number): Promise<{ granted: true; leaseId: string | undefined } | { granted: false; decision: RestartDecision }> {
    const rss = this.#latest?.snapshot.rssBytes ?? 0;
    const force = reason === 'manual' || rss >= this.#rssThresholdMb * BYTES_PER_MB * this.#forceRestartRatio;
    let answer;
    try {
      answer = await this.#gate!.acquire({ reason, force });
    } catch (error) {
      // A gate that fails is not a reason to keep a leaking process: fall back to this replica's own budget.
      this.#logger.warn({ err: error, guardrail: this.name, reason }, 'fleet restart gate failed; restarting on this replica\'s own budget');
      answer = { granted: true as const, degraded: true };
    }
    if (answer.granted) {
      if (this.#fleetWait) this.#logger.info({ guardrail: this.name, reason, waitedMs: now - this.#fleetWait.since }, 'fleet restart gate granted the restart');
      this.#fleetWait = null;
      if (answer.forced) this.#logger.warn({ guardrail: this.name, reason, rssBytes: rss }, 'restarting over the fleet restart budget (manual, or RSS past the hard margin)');
      return { granted: true, leaseId: answer.leaseId };
    }
    const starts = this.#fleetWait === null;
    this.#fleetWait = { since: this.#fleetWait?.since ?? now, reason, blockedBy: answer.blockedBy, retryAfterMs: answer.retryAfterMs, holders: answer.holders };
    this.#metrics.restartsSkipped.inc({ name: this.name });
    // Said once per wait (the log and the immune log), not at every check while it lasts; /self-check shows it throughout.
    if (starts) {
      this.#logger.warn(
        { guardrail: this.name, reason, blockedBy: answer.blockedBy, retryAfterMs: answer.retryAfterMs, holders: answer.holders },
        'memory guardrail restart waits: the fleet restart budget is in use',
      );
      this.#bus?.emit('memoryRestart', { name: this.name, reason, outcome: 'skipped', skipped: 'fleet_budget', retryAfterMs: answer.retryAfterMs, at: now });
    }
    return { granted: false, decision: { restarted: false, reason, skipped: 'fleet_budget', retryAfterMs: answer.retryAfterMs, holders: answer.holders } };
  }

  #releaseLease(leaseId: string | undefined): void {
    if (leaseId === undefined || !this.#gate) return;
    this.#gate.release(leaseId).catch((error: unknown) => this.#logger.warn({ err: error, guardrail: this.name }, 'releasing the fleet restart slot failed; it frees itself at its deadline'));
  }

  /** Stops the timer; waits for a restart in progress. Idempotent; later calls reject with `CLOSED`. */
  close(): Promise<void> {
    this.#closing ??= (async () => {
      this.#closed = true;
      if (this.#timer) clearInterval(this.#timer);
      this.#timer = undefined;
      if (this.#graceTimer) clearTimeout(this.#graceTimer);
      this.#graceTimer = undefined;
      this.#detachMetrics();
      for (const cache of this.#cacheLabels) this.#metrics.gauges.cacheEntries.remove({ name: this.name, cache });
      await this.#restarting;
    })();
    return this.#closing;
  }

  [Symbol.asyncDispose](): Promise<void> {
    return this.close();
  }

  #tick(): void {
    try {
      this.check();
    } catch (error) {
      this.#logger.error({ err: error, guardrail: this.name }, 'memory check failed');
    }
  }

  #snapshot(): MemorySnapshot {
    const usage = this.#sampler();
    let caches = EMPTY_CACHES;
    if (this.#probes.size > 0) {
      const entries: Record<string, number> = {};
      for (const [name, probe] of this.#probes) {
        try {
          const value = probe();
          if (typeof value === 'number' && Number.isFinite(value)) entries[name] = value;
          else this.#logger.warn({ cache: name, value }, 'cache probe returned a non-number');
        } catch (error) {
          this.#logger.warn({ err: error, cache: name }, 'cache probe threw');
        }
      }
      caches = entries;
    }
    return {
      at: this.#clock(),
      rssBytes: usage.rss,
      heapUsedBytes: usage.heapUsed,
      heapTotalBytes: usage.heapTotal,
      externalBytes: usage.external,
      arrayBuffersBytes: usage.arrayBuffers,
      caches,
    };
  }

  #accumulate(at: number, yMb: number, sign: 1 | -1): void {
    const w = this.#win;
    const x = (at - w.base) / MS_PER_MIN;
    const y = yMb - w.y0;
    w.sx += sign * x;
    w.sy += sign * y;
    w.sxx += sign * x * x;
    w.sxy += sign * x * y;
    w.syy += sign * y * y;
  }

  /** Stores a snapshot and moves the window's running sums along. */
  #store(snapshot: MemorySnapshot): void {
    const ring = this.#ring;
    const w = this.#win;
    const yMb = snapshot.rssBytes / BYTES_PER_MB;
    const rebuild = w.count === 0 || snapshot.at < w.lastAt || w.stores >= ring.capacity;
    if (!rebuild && ring.size === ring.capacity && w.count === ring.capacity) {
      // The slot about to be overwritten is still in the window: take it out first.
      const oldest = ring.indexBack(ring.capacity - 1);
      this.#accumulate(ring.ats[oldest]!, ring.values[oldest]!, -1);
      w.count--;
    }
    ring.push(snapshot, yMb);
    w.lastAt = snapshot.at;
    if (rebuild) {
      this.#rebuildWindow(snapshot.at);
      return;
    }
    this.#accumulate(snapshot.at, yMb, 1);
    w.count++;
    w.stores++;
    const minAt = snapshot.at - this.#leakWindowMs;
    while (w.count > 1) {
      const oldest = ring.indexBack(w.count - 1);
      if (ring.ats[oldest]! >= minAt) break;
      this.#accumulate(ring.ats[oldest]!, ring.values[oldest]!, -1);
      w.count--;
    }
  }

  #rebuildWindow(origin: number): void {
    const ring = this.#ring;
    const w = this.#win;
    w.base = origin;
    w.y0 = ring.values[ring.newestIndex]!;
    w.sx = w.sy = w.sxx = w.sxy = w.syy = 0;
    w.count = 0;
    w.stores = 0;
    const minAt = origin - this.#leakWindowMs;
    for (let back = 0; back < ring.size; back++) {
      const index = ring.indexBack(back);
      const at = ring.ats[index]!;
      if (at < minAt || at > origin) break;
      this.#accumulate(at, ring.values[index]!, 1);
      w.count++;
    }
  }

  #growth(snapshot: MemorySnapshot, live: boolean): GrowthEstimate {
    const origin = snapshot.at;
    const currentMb = snapshot.rssBytes / BYTES_PER_MB;
    const ring = this.#ring;
    let fit;
    let oldest: number;
    if (!live) {
      // check(): the running sums already cover the window ending at this snapshot.
      const w = this.#win;
      fit = fitFromSums(w.count, w.sx, w.sy, w.sxx, w.sxy, w.syy, 0, w.y0);
      oldest = w.count > 0 ? ring.ats[ring.indexBack(w.count - 1)]! : origin;
      if (fit.n >= 2) fit = { ...fit, intercept: fit.intercept + (fit.slope * (origin - w.base)) / MS_PER_MIN };
    } else {
      // assess(): a scan of the window ending at the live sample, which is the point (0, 0).
      const minAt = origin - this.#leakWindowMs;
      let n = 1;
      let sx = 0;
      let sy = 0;
      let sxx = 0;
      let sxy = 0;
      let syy = 0;
      oldest = origin;
      for (let back = 0; back < ring.size; back++) {
        const index = ring.indexBack(back);
        const at = ring.ats[index]!;
        if (at < minAt || at > origin) break;
        const x = (at - origin) / MS_PER_MIN;
        const y = ring.values[index]! - currentMb;
        sx += x;
        sy += y;
        sxx += x * x;
        sxy += x * y;
        syy += y * y;
        oldest = at;
        n++;
      }
      fit = fitFromSums(n, sx, sy, sxx, sxy, syy, 0, currentMb);
    }
    const leakDetected =
      fit.n >= this.#minLeakSamples && fit.slope >= this.#leakRate * (1 - 1e-9) && fit.slope > 0 && fit.r2 >= this.#minFitR2;
    return {
      slopeMbPerMin: fit.slope,
      interceptMb: fit.n >= 2 ? fit.intercept : currentMb,
      originAt: origin,
      r2: fit.r2,
      samples: fit.n,
      spanMs: origin - oldest,
      leakDetected,
    };
  }

  #evaluate(snapshot: MemorySnapshot, live: boolean): MemoryAssessment {
    const growth = this.#growth(snapshot, live);
    const rssMb = snapshot.rssBytes / BYTES_PER_MB;
    const found: { level: number; text: string }[] = [];
    let level = 0;
    let restartReason: MemoryAssessment['restartReason'] = null;
    const raise = (to: number, text: string) => {
      if (to > level) level = to;
      found.push({ level: to, text });
    };

    if (rssMb >= this.#rssThresholdMb) {
      raise(2, `rss ${round(rssMb, 1)} MB is at or above the ${this.#rssThresholdMb} MB threshold`);
      restartReason = 'rss_threshold';
    } else if (rssMb >= this.#rssThresholdMb * this.#warningRatio) {
      raise(1, `rss ${round(rssMb, 1)} MB is above ${round(this.#warningRatio * 100, 0)}% of the ${this.#rssThresholdMb} MB threshold`);
    }

    const caches: CacheStatus[] = [];
    for (const name in snapshot.caches) {
      const entries = snapshot.caches[name]!;
      let status: MemoryStatus = 'healthy';
      if (entries >= this.#cacheThreshold) {
        status = 'critical';
        raise(2, `cache ${name} holds ${entries} entries, at or above the ${this.#cacheThreshold} threshold`);
        restartReason ??= 'cache_threshold';
      } else if (entries >= this.#cacheThreshold * this.#warningRatio) {
        status = 'warning';
        raise(1, `cache ${name} holds ${entries} entries, above ${round(this.#warningRatio * 100, 0)}% of the ${this.#cacheThreshold} threshold`);
      }
      caches.push({ name, entries, threshold: this.#cacheThreshold, status });
    }

    let timeToThresholdMs: number | null = null;
    if (growth.samples >= this.#minLeakSamples && growth.slopeMbPerMin > 0) {
      timeToThresholdMs = Math.max(0, ((this.#rssThresholdMb - rssMb) / growth.slopeMbPerMin) * MS_PER_MIN);
    }
    if (growth.leakDetected) {
      const leak = `rss growing ${round(growth.slopeMbPerMin)} MB/min (R² ${round(growth.r2)} over ${growth.samples} samples), at or above the ${this.#leakRate} MB/min leak limit`;
      if (timeToThresholdMs !== null && timeToThresholdMs <= this.#predictedBreachMs && rssMb < this.#rssThresholdMb) {
        raise(2, `${leak}; predicted to reach ${this.#rssThresholdMb} MB in ${Math.round(timeToThresholdMs / 1000)} s`);
        restartReason ??= 'predicted_breach';
      } else {
        raise(1, leak);
      }
    }

    const status: MemoryStatus = level === 2 ? 'critical' : level === 1 ? 'warning' : 'healthy';
    if (found.length > 1) found.sort((a, b) => b.level - a.level);
    const reasons = found.map((reason) => reason.text);
    return { status, reasons, snapshot, growth, timeToThresholdMs, caches, baseline: this.baseline(), restartReason };
  }

  /** Fills the gauges from the last check when the registry is scraped. */
  readonly #gaugeSource: GaugeSource = (metric, key) => {
    const a = this.#latest;
    if (a === null) return;
    const label = { name: this.name };
    const { snapshot, growth } = a;
    switch (key) {
      case 'rssBytes':
        return metric.set(label, snapshot.rssBytes);
      case 'heapUsedBytes':
        return metric.set(label, snapshot.heapUsedBytes);
      case 'heapTotalBytes':
        return metric.set(label, snapshot.heapTotalBytes);
      case 'externalBytes':
        return metric.set(label, snapshot.externalBytes);
      case 'arrayBuffersBytes':
        return metric.set(label, snapshot.arrayBuffersBytes);
      case 'baselineRssBytes':
        if (a.baseline) metric.set(label, a.baseline.rssBytes);
        return;
      case 'growthRate':
        return metric.set(label, (growth.slopeMbPerMin * BYTES_PER_MB) / 60);
      case 'growthFit':
        return metric.set(label, growth.r2);
      case 'leakDetected':
        return metric.set(label, growth.leakDetected ? 1 : 0);
      case 'status':
        return metric.set(label, STATUS_LEVEL[a.status]);
      case 'timeToThreshold':
        return metric.set(label, a.timeToThresholdMs === null ? Infinity : a.timeToThresholdMs / 1000);
      case 'cacheEntries':
        for (const cache of a.caches) {
          this.#cacheLabels.add(cache.name);
          metric.set({ name: this.name, cache: cache.name }, cache.entries);
        }
        return;
    }
  };

  #publish(assessment: MemoryAssessment): void {
    const { snapshot, growth } = assessment;
    const previous = this.#status;
    if (assessment.status === previous) return;
    this.#status = assessment.status;
    const log = { guardrail: this.name, from: previous, to: assessment.status, reasons: assessment.reasons, rssBytes: snapshot.rssBytes };
    if (assessment.status === 'critical') this.#logger.error(log, 'memory guardrail critical');
    else if (assessment.status === 'warning') this.#logger.warn(log, 'memory guardrail warning');
    else this.#logger.info(log, 'memory guardrail healthy again');
    this.#bus?.emit('memoryAlarm', {
      status: assessment.status,
      reasons: assessment.reasons,
      rssBytes: snapshot.rssBytes,
      growthMbPerMin: growth.slopeMbPerMin,
      at: snapshot.at,
    });
  }

  #maybeHeapSnapshot(now: number): void {
    const dir = this.#heapSnapshotDir;
    if (dir === undefined) return;
    if (this.#lastHeapSnapshot !== null && now - this.#lastHeapSnapshot.at < this.#heapSnapshotIntervalMs) return;
    try {
      mkdirSync(dir, { recursive: true });
      const path = writeHeapSnapshot(join(dir, `heap-${process.pid}-${now}.heapsnapshot`));
      this.#lastHeapSnapshot = { path, at: now };
      this.#metrics.heapSnapshots.inc({ name: this.name });
      this.#logger.warn({ guardrail: this.name, path }, 'memory leak detected: heap snapshot written');
    } catch (error) {
      // Remember the attempt so a failing disk is not retried on every check.
      this.#lastHeapSnapshot = { path: '', at: now };
      this.#logger.error({ err: error, guardrail: this.name, dir }, 'heap snapshot failed');
    }
  }

  async #shutdown(reason: RestartReason, trigger: MemoryAssessment | null): Promise<void> {
    const deadline = AbortSignal.timeout(this.#shutdownTimeoutMs);
    const hooks = [...this.#hooks].map((hook) => Promise.resolve().then(() => hook(deadline)));
    let onAbort: (() => void) | undefined;
    const timedOut = new Promise<'timeout'>((resolve) => {
      onAbort = () => resolve('timeout');
      if (deadline.aborted) onAbort();
      else deadline.addEventListener('abort', onAbort, { once: true });
    });
    try {
      const outcome = await Promise.race([Promise.allSettled(hooks), timedOut]);
      if (outcome === 'timeout') this.#logger.warn({ guardrail: this.name, timeoutMs: this.#shutdownTimeoutMs }, 'shutdown hooks timed out');
      else {
        for (const result of outcome) {
          if (result.status === 'rejected') this.#logger.error({ err: result.reason, guardrail: this.name }, 'shutdown hook failed');
        }
      }
    } finally {
      if (onAbort) deadline.removeEventListener('abort', onAbort);
    }
    const latest = this.#latest;
    const finalState = {
      guardrail: this.name,
      reason,
      // The check that led to the restart; the fields after it are the latest check, as the process exits.
      trigger: trigger ? { status: trigger.status, reasons: trigger.reasons, rssBytes: trigger.snapshot.rssBytes, at: trigger.snapshot.at } : null,
      status: this.#status,
      reasons: latest?.reasons ?? [],
      rssBytes: latest?.snapshot.rssBytes,
      heapUsedBytes: latest?.snapshot.heapUsedBytes,
      growthMbPerMin: latest ? round(latest.growth.slopeMbPerMin, 3) : undefined,
      baselineRssBytes: this.baseline()?.rssBytes,
      caches: latest?.snapshot.caches,
      pid: process.pid,
    };
    (this.#logger.fatal ?? this.#logger.error)(finalState, 'memory guardrail restarting the process');
    try {
      this.#terminate();
    } catch (error) {
      this.#logger.error({ err: error, guardrail: this.name }, 'terminate failed');
      this.#restartFailed(reason, 'terminate_threw');
      return;
    }
    if (this.#closed) return;
    // A supervised process is gone long before this fires (the timer is unref'ed, so it never keeps one alive).
    this.#graceTimer = setTimeout(() => {
      this.#graceTimer = undefined;
      this.#restartFailed(reason, 'survived');
    }, this.#restartGraceMs);
    this.#graceTimer.unref();
  }

  /** The restart did not end the process: leave "in progress" so later restarts are possible; the budget stays spent. */
  #restartFailed(reason: RestartReason, failure: 'survived' | 'terminate_threw'): void {
    const at = this.#clock();
    this.#restartInProgress = false;
    this.#lastFailedRestart = { reason, at, failure };
    this.#metrics.restartsFailed.inc({ name: this.name, reason });
    const retryAfterMs = this.#budget.check(at).retryAfterMs;
    this.#logger.error(
      { guardrail: this.name, reason, failure, graceMs: this.#restartGraceMs, retryAfterMs, pid: process.pid },
      failure === 'survived'
        ? 'memory guardrail restart failed: the process survived it (a shutdown hook or SIGTERM handler did not exit)'
        : 'memory guardrail restart failed: terminate threw',
    );
    this.#bus?.emit('memoryRestart', { name: this.name, reason, outcome: 'failed', failure, retryAfterMs, at });
  }
}
