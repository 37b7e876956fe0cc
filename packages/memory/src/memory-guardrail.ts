import { assertOpen, closeOnce, createSubscription, Emitter, GuardError, unrefInterval } from '@guard/core';
import type { Env, GuardBus, MemoryAlarm, Subscription } from '@guard/core';
import { memoryOptionsFromEnv } from './from-env.js';
import { GrowthWindow } from './growth-window.js';
import type { LeakCriteria } from './growth-window.js';
import { checkName, resolveGuardrailOptions } from './guardrail-options.js';
import type { MemoryGuardrailOptions, ResolvedGuardrailOptions } from './guardrail-options.js';
import { HeapSnapshotWriter } from './heap-snapshot.js';
import { assessMemory } from './memory-assessment.js';
import type { AssessmentPolicy, MemoryAssessment, MemoryStatus } from './memory-assessment.js';
import { BaselineAverage } from './memory-baseline.js';
import type { MemoryBaseline } from './memory-baseline.js';
import type { MemoryGuardrailEvents } from './memory-events.js';
import { createMemoryMetrics } from './memory-metrics.js';
import type { MemoryMetrics } from './memory-metrics.js';
import type { MemoryReport } from './memory-report.js';
import type { CacheProbe } from './memory-sampler.js';
import { BYTES_PER_MB, takeSnapshot } from './memory-snapshot.js';
import type { MemorySnapshot } from './memory-snapshot.js';
import { applyThresholdChanges, changedThresholds } from './memory-thresholds.js';
import type { MemoryThresholds, MemoryThresholdsChange, SetThresholdsOptions } from './memory-thresholds.js';
import { RestartBudget } from './restart-budget.js';
import type { RestartReason } from './restart-budget.js';
import { RestartController } from './restart-controller.js';
import type { MemoryRestartNotice, RestartDecision, ShutdownHook } from './restart-controller.js';

/**
 * The memory-leak guardrail: samples memory on a timer, keeps an hour of snapshots, fits a least-squares line
 * over the leak window to measure the growth rate (MB/min) with its goodness of fit, predicts the time to the RSS
 * threshold, and maps it all to `healthy | warning | critical` with reasons. Optionally restarts the process
 * gracefully (at most once per cooldown, remembered across restarts) and writes heap snapshots on a leak.
 *
 * This class wires the parts together; each part lives in the file named for it: `growth-window.ts` (the series and
 * the regression), `memory-assessment.ts` (the status policy), `restart-controller.ts` (restarts), `heap-snapshot.ts`,
 * `memory-metrics.ts` and `guardrail-options.ts`.
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
  readonly #o: ResolvedGuardrailOptions;
  #thresholds: MemoryThresholds;
  #policy: AssessmentPolicy & LeakCriteria;
  readonly #window: GrowthWindow;
  readonly #baseline: BaselineAverage;
  readonly #heapSnapshots: HeapSnapshotWriter;
  readonly #restarts: RestartController;
  readonly #metrics: MemoryMetrics;
  readonly #events: Emitter<MemoryGuardrailEvents>;
  readonly #bus: GuardBus | undefined;
  readonly #probes = new Map<string, CacheProbe>();
  #latest: MemoryAssessment | null = null;
  #status: MemoryStatus = 'healthy';
  #timer: NodeJS.Timeout | undefined;
  #closed = false;

  constructor(options: MemoryGuardrailOptions = {}) {
    const o = resolveGuardrailOptions(options);
    this.#o = o;
    this.name = o.name;
    this.#thresholds = o.thresholds;
    this.#policy = this.#policyFor(o.thresholds);
    this.#bus = options.bus;
    const logger = o.logger;
    this.#events = new Emitter<MemoryGuardrailEvents>({
      onError: (error, event) => logger.error({ err: error, guardrail: o.name, event }, 'memory guardrail listener failed'),
    });
    const capacity = Math.min(100_000, Math.max(2, Math.ceil(o.retentionMs / o.checkIntervalMs) + 1));
    this.#window = new GrowthWindow({ capacity, windowMs: o.leakWindowMs, startupGraceMs: o.startupGraceMs });
    this.#baseline = new BaselineAverage(o.baselineSamples);
    this.#metrics = createMemoryMetrics(options, o.name, () => this.#latest);
    this.#heapSnapshots = new HeapSnapshotWriter({
      dir: o.heapSnapshotDir,
      intervalMs: o.heapSnapshotIntervalMs,
      guardrail: o.name,
      logger,
      onWritten: () => this.#metrics.heapSnapshots.inc({ name: o.name }),
    });
    this.#restarts = new RestartController({
      name: o.name,
      budget: new RestartBudget({ file: o.restartStateFile, cooldownMs: o.restartCooldownMs, logger }),
      gate: o.restartGate,
      forceAtBytes: () => this.#thresholds.rssThresholdMb * BYTES_PER_MB * o.forceRestartRatio,
      shutdownTimeoutMs: o.shutdownTimeoutMs,
      restartGraceMs: o.restartGraceMs,
      terminate: o.terminate,
      now: o.now,
      logger,
      counters: this.#metrics,
      notify: (notice) => {
        this.#events.emit('restart', notice);
        this.#bus?.emit('memoryRestart', notice);
      },
      latest: () => this.#latest,
      finalState: () => this.#finalState(),
    });
    for (const [name, probe] of Object.entries(options.cacheProbes ?? {})) this.addCacheProbe(name, probe);
    if (options.autoStart ?? true) this.start();
  }

  /**
   * Creates a guardrail from the environment (see `memoryOptionsFromEnv`) and `overrides`; **code wins**: an option
   * given in `overrides` is used even when its variable is set.
   *
   * @example
   * await using guardrail = MemoryGuardrail.fromEnv(process.env, { bus, logger });
   */
  static fromEnv(env: Env = process.env, overrides: MemoryGuardrailOptions = {}): MemoryGuardrail {
    return new MemoryGuardrail({ ...memoryOptionsFromEnv(env), ...overrides });
  }

  /** The thresholds in force (they can change at run time through {@link MemoryGuardrail.setThresholds}). */
  thresholds(): MemoryThresholds {
    return { ...this.#thresholds };
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
    const previous = this.thresholds();
    this.#thresholds = applyThresholdChanges(previous, changes);
    this.#policy = this.#policyFor(this.#thresholds);
    const current = this.thresholds();
    const changed = changedThresholds(previous, current);
    const source = options.source ?? 'api';
    const { remoteAddress } = options;
    this.#o.logger.warn({ guardrail: this.name, previous, current, changed, source, remoteAddress }, 'memory guardrail thresholds changed');
    const audit: MemoryThresholdsChange = {
      name: this.name,
      previous,
      current,
      changed,
      source,
      ...(remoteAddress === undefined ? {} : { remoteAddress }),
      at: this.#o.now(),
    };
    this.#events.emit('thresholdsChange', audit);
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
    this.#timer = unrefInterval(() => this.#tick(), this.#o.checkIntervalMs);
    this.#tick();
  }

  /**
   * Adds a cache probe (entries are checked against `cacheEntriesThreshold`).
   *
   * @returns a subscription that removes the probe.
   * @example
   * const remove = guardrail.addCacheProbe('sessions', () => sessions.size);
   */
  addCacheProbe(name: string, probe: CacheProbe): Subscription {
    assertOpen(this.#closed, 'MemoryGuardrail');
    checkName('cache probe name', name);
    if (typeof probe !== 'function') throw new GuardError('INVALID_OPTION', `cache probe ${name} must be a function`, { details: { field: 'cacheProbes' } });
    if (this.#probes.has(name)) throw new GuardError('INVALID_OPTION', `cache probe ${name} already exists`, { details: { field: 'cacheProbes', name } });
    this.#probes.set(name, probe);
    return createSubscription(() => {
      if (this.#probes.get(name) !== probe) return;
      this.#probes.delete(name);
      this.#metrics.forgetCache(name);
    });
  }

  /**
   * Registers a hook that runs before a restart (with a deadline of `shutdownTimeoutMs`).
   *
   * @returns a subscription that removes the hook.
   * @example
   * guardrail.onShutdown(() => new Promise((resolve) => server.close(() => resolve())));
   */
  onShutdown(hook: ShutdownHook): Subscription {
    assertOpen(this.#closed, 'MemoryGuardrail');
    return this.#restarts.onShutdown(hook);
  }

  /**
   * Calls `listener` on every status change (the `memoryAlarm` payload).
   *
   * @example
   * using _ = guardrail.onAlarm((alarm) => console.log('memory', alarm.status, alarm.reasons));
   */
  onAlarm(listener: (alarm: MemoryAlarm) => void): Subscription {
    return this.#events.on('alarm', listener);
  }

  /**
   * Calls `listener` when a restart starts, is skipped or fails (the `memoryRestart` payload).
   *
   * @example
   * guardrail.onRestart((notice) => console.log('restart', notice.outcome, notice.reason));
   */
  onRestart(listener: (notice: MemoryRestartNotice) => void): Subscription {
    return this.#events.on('restart', listener);
  }

  /**
   * Calls `listener` when thresholds change at run time (the `memoryThresholdsChanged` payload).
   *
   * @example
   * guardrail.onThresholdsChange((change) => audit.record(change));
   */
  onThresholdsChange(listener: (change: MemoryThresholdsChange) => void): Subscription {
    return this.#events.on('thresholdsChange', listener);
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
    this.#window.store(snapshot);
    this.#baseline.add(snapshot);
    const policy = this.#policy;
    const assessment = assessMemory(snapshot, this.#window.estimateStored(policy), policy, this.baseline());
    this.#latest = assessment;
    this.#publish(assessment);
    if (assessment.growth.leakDetected) this.#heapSnapshots.maybeWrite(snapshot.at);
    if (this.#o.autoRestart && assessment.restartReason !== null && !this.#restarts.inProgress) {
      this.requestRestart(assessment.restartReason).catch((error: unknown) => {
        this.#o.logger.error({ err: error, guardrail: this.name }, 'memory guardrail auto-restart failed');
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
    const snapshot = this.#snapshot();
    const policy = this.#policy;
    return assessMemory(snapshot, this.#window.estimateLive(snapshot, policy), policy, this.baseline());
  }

  /** The last check's result, or null before the first check. */
  latest(): MemoryAssessment | null {
    return this.#latest;
  }

  /** The baseline so far, or null before the first check. */
  baseline(): MemoryBaseline | null {
    return this.#baseline.current();
  }

  /** Stored snapshots not older than `retentionMs`, oldest first. */
  snapshots(): MemorySnapshot[] {
    return this.#window.since(this.#o.now() - this.#o.retentionMs);
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
    const t = this.#thresholds;
    return {
      name: this.name,
      status: this.#status,
      latest,
      series: this.snapshots(),
      regression: latest ? { ...latest.growth, windowStartAt: latest.growth.originAt - latest.growth.spanMs } : null,
      thresholds: {
        rssBytes: t.rssThresholdMb * BYTES_PER_MB,
        rssMb: t.rssThresholdMb,
        warningRatio: t.warningRatio,
        cacheEntries: t.cacheEntriesThreshold,
        leakRateMbPerMin: t.leakRateMbPerMin,
        minFitR2: this.#o.minFitR2,
        baselineAcceptanceMb: this.#o.baselineAcceptanceMb,
      },
      baseline: this.baseline(),
      restart: { autoRestart: this.#o.autoRestart, ...this.#restarts.state(this.#o.now()) },
      lastHeapSnapshot: this.#heapSnapshots.last,
      checkIntervalMs: this.#o.checkIntervalMs,
      leakWindowMs: this.#o.leakWindowMs,
      startupGraceEndsAt: this.#window.fitFrom ?? null,
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
    return this.#restarts.request(reason);
  }

  /** Stops the timer; waits for a restart in progress. Idempotent; later calls reject with `CLOSED`. */
  close(): Promise<void> {
    this.#closed = true;
    return this.#close();
  }

  readonly #close = closeOnce(async () => {
    if (this.#timer) clearInterval(this.#timer);
    this.#timer = undefined;
    this.#metrics.close();
    this.#events.removeAllListeners();
    await this.#restarts.close();
  });

  [Symbol.asyncDispose](): Promise<void> {
    return this.close();
  }

  /** The policy a check reads, rebuilt only when thresholds change (a check allocates nothing for it). */
  #policyFor(thresholds: MemoryThresholds): AssessmentPolicy & LeakCriteria {
    const { minLeakSamples, predictedBreachMs, minFitR2 } = this.#o;
    const { rssThresholdMb, cacheEntriesThreshold, warningRatio, leakRateMbPerMin } = thresholds;
    return { rssThresholdMb, cacheEntriesThreshold, warningRatio, leakRateMbPerMin, minLeakSamples, predictedBreachMs, minFitR2 };
  }

  #tick(): void {
    try {
      this.check();
    } catch (error) {
      this.#o.logger.error({ err: error, guardrail: this.name }, 'memory check failed');
    }
  }

  #snapshot(): MemorySnapshot {
    return takeSnapshot(this.#o.now(), this.#o.sampler, this.#probes, this.#o.logger);
  }

  /** Logs and emits `memoryAlarm` when the status changed. */
  #publish(assessment: MemoryAssessment): void {
    const { snapshot, growth } = assessment;
    const previous = this.#status;
    if (assessment.status === previous) return;
    this.#status = assessment.status;
    const logger = this.#o.logger;
    const line = { guardrail: this.name, from: previous, to: assessment.status, reasons: assessment.reasons, rssBytes: snapshot.rssBytes };
    if (assessment.status === 'critical') logger.error(line, 'memory guardrail critical');
    else if (assessment.status === 'warning') logger.warn(line, 'memory guardrail warning');
    else logger.info(line, 'memory guardrail healthy again');
    const alarm: MemoryAlarm = { status: assessment.status, reasons: assessment.reasons, rssBytes: snapshot.rssBytes, growthMbPerMin: growth.slopeMbPerMin, at: snapshot.at };
    this.#events.emit('alarm', alarm);
    this.#bus?.emit('memoryAlarm', alarm);
  }

  /** The latest check, as logged when the process is restarted. */
  #finalState(): Record<string, unknown> {
    const latest = this.#latest;
    return {
      status: this.#status,
      reasons: latest?.reasons ?? [],
      rssBytes: latest?.snapshot.rssBytes,
      heapUsedBytes: latest?.snapshot.heapUsedBytes,
      growthMbPerMin: latest ? Number(latest.growth.slopeMbPerMin.toFixed(3)) : undefined,
      baselineRssBytes: this.baseline()?.rssBytes,
      caches: latest?.snapshot.caches,
    };
  }
}
