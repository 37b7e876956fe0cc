import { assertNumberOption, closeOnce, errorMessage, GuardError, isGuardError, raceAbort, silentLogger, unrefTimeout } from '@guard/core';
import type { Closeable, ComponentName, Detection, Env, GuardBus, Logger, SanitizationScheduler, SanitizeOutcome, SanitizeResult } from '@guard/core';
import { deferredSanitizerSettings } from './deferred-sanitizer-options.js';
import type { DeferredSanitizerOptions, DeferredSanitizerSettings } from './deferred-sanitizer-options.js';
import { deferredSanitizerOptionsFromEnv } from './sanitizer-env.js';
import { createSanitizerMetrics } from './sanitizer-metrics.js';
import type { SanitizerMetrics } from './sanitizer-metrics.js';
import type { SanitizeReport, Sanitizer } from './sanitizer.js';

const OUTCOMES: readonly SanitizeOutcome[] = ['success', 'partial', 'failed', 'skipped', 'timeout'];

/**
 * A snapshot of the queue.
 *
 * @example
 * const { delayed, queued, running } = sanitizer.stats();
 */
export interface DeferredSanitizerStats {
  /** Waiting for their component's delay. */
  readonly delayed: number;
  /** Delay over, waiting for a free slot. */
  readonly queued: number;
  readonly running: number;
}

type JobState = 'delayed' | 'queued' | 'running';

interface Job {
  readonly key: string;
  readonly detection: Detection;
  readonly sanitizer: Sanitizer;
  state: JobState;
  timer?: NodeJS.Timeout;
  controller?: AbortController;
}

interface Waiter {
  readonly resolve: (drained: boolean) => void;
  readonly timer: NodeJS.Timeout;
}

function keyOf(component: string, resourceId: string): string {
  return `${component}\u0000${resourceId}`;
}

/**
 * The background healing queue of the Parasite Guard. `schedule(detection)` queues the component's sanitizer
 * after a per-component delay; at most `concurrency` jobs run at once, each under a `timeoutMs` AbortSignal;
 * one job per resource at a time. Each result is counted (`parasite_sanitized_total{component,outcome}`),
 * timed and emitted as `sanitization` on the bus. Call `waitForSanitization(ms)` on shutdown, then `close()`.
 *
 * @example
 * await using sanitizer = new DeferredSanitizer({
 *   sanitizers: [createWebSocketSanitizer(wsTracker), createEventBusSanitizer(emitterTracker)],
 *   bus,
 *   delaysMs: { websocket: 5_000 },
 * });
 * sanitizer.schedule(detection); // true; false if this resource is already being healed
 * await sanitizer.waitForSanitization(10_000);
 */
export class DeferredSanitizer implements SanitizationScheduler, Closeable {
  readonly #settings: DeferredSanitizerSettings;
  readonly #bus: GuardBus | undefined;
  readonly #logger: Logger;
  readonly #metrics: SanitizerMetrics | undefined;
  /** Aborted by `close()`: the scrape-time reading of the running jobs stops. */
  readonly #closing = new AbortController();

  readonly #jobs = new Map<string, Job>();
  readonly #queue: Job[] = [];
  #queueHead = 0;
  #waiting = 0;
  #running = 0;
  readonly #settling = new Set<Promise<void>>();
  readonly #waiters = new Set<Waiter>();
  #pumpQueued = false;
  #closed = false;

  /**
   * Builds a sanitizer from `PARASITE_GUARD_*` variables ({@link deferredSanitizerOptionsFromEnv}); options given in
   * code win: `{ ...deferredSanitizerOptionsFromEnv(env), ...overrides }`, per component for `delaysMs`, and
   * `disabledComponents` adds to the ones the environment disables. An option set to `undefined` leaves the env's.
   * The older order `fromEnv(options, env)` still works.
   *
   * @example
   * const sanitizer = DeferredSanitizer.fromEnv(process.env, { sanitizers: [createHandleSanitizer()], bus });
   */
  static fromEnv(env: Env, overrides: DeferredSanitizerOptions): DeferredSanitizer;
  /** @deprecated Use `fromEnv(env, overrides)`. */
  static fromEnv(options: DeferredSanitizerOptions, env?: Env): DeferredSanitizer;
  static fromEnv(first: Env | DeferredSanitizerOptions, second?: Env | DeferredSanitizerOptions): DeferredSanitizer {
    const legacy = Array.isArray((first as DeferredSanitizerOptions).sanitizers);
    const overrides = (legacy ? first : second) as DeferredSanitizerOptions;
    const env = ((legacy ? second : first) ?? process.env) as Env;
    const fromEnv = deferredSanitizerOptionsFromEnv(env);
    const given = Object.fromEntries(Object.entries(overrides).filter(([, value]) => value !== undefined)) as Partial<DeferredSanitizerOptions>;
    return new DeferredSanitizer({
      ...fromEnv,
      ...given,
      sanitizers: overrides.sanitizers,
      // a prefix given in code under its deprecated name still beats the environment's
      metricsPrefix: overrides.metricsPrefix ?? overrides.prefix ?? fromEnv.metricsPrefix,
      delaysMs: { ...fromEnv.delaysMs, ...overrides.delaysMs },
      disabledComponents: [...(fromEnv.disabledComponents ?? []), ...(overrides.disabledComponents ?? [])],
    });
  }

  constructor(options: DeferredSanitizerOptions) {
    this.#settings = deferredSanitizerSettings(options);
    this.#bus = options.bus;
    this.#logger = options.logger ?? silentLogger;
    // through a WeakRef: a sanitizer dropped without close() is not kept alive by the registry
    const self = new WeakRef(this);
    this.#metrics = createSanitizerMetrics(
      options,
      () => {
        const sanitizer = self.deref();
        return sanitizer === undefined ? [] : sanitizer.#runningByComponent();
      },
      this.#closing.signal,
    );
  }

  /** The delay (ms) a detection of `component` waits before its sanitizer runs. */
  delayFor(component: ComponentName): number {
    return this.#settings.delaysMs.get(component) ?? this.#settings.defaultDelayMs;
  }

  /** True while a job for this resource is delayed, queued or running. */
  isScheduled(component: ComponentName, resourceId: string): boolean {
    return this.#jobs.has(keyOf(component, resourceId));
  }

  /** Jobs waiting and running now. */
  stats(): DeferredSanitizerStats {
    return { delayed: this.#waiting - (this.#queue.length - this.#queueHead), queued: this.#queue.length - this.#queueHead, running: this.#running };
  }

  /**
   * Queues healing of `detection` after its component's delay. Never throws into the caller (a detector's scan):
   * @returns false when a job for the same resource is already delayed, queued or running, when no sanitizer
   * handles the component, the component is disabled, the queue is full, or the sanitizer is closed.
   */
  schedule(detection: Detection): boolean {
    if (this.#closed) return false;
    const sanitizer = this.#route(detection);
    if (!sanitizer || this.#settings.disabled.has(detection.component)) return false;
    const key = keyOf(detection.component, detection.resourceId);
    if (this.#jobs.has(key)) return false;
    if (this.#waiting >= this.#settings.maxQueued) {
      this.#logger.warn({ component: detection.component, maxQueued: this.#settings.maxQueued }, 'Sanitization queue full');
      return false;
    }
    const job: Job = { key, detection, sanitizer, state: 'delayed' };
    this.#jobs.set(key, job);
    this.#waiting++;
    const delayMs = this.delayFor(detection.component);
    if (delayMs === 0) this.#enqueue(job);
    else job.timer = unrefTimeout(() => this.#enqueue(job), delayMs);
    return true;
  }

  /**
   * Waits until no job is delayed, queued or running (graceful shutdown). While it waits, it keeps the process
   * alive (at most `timeoutMs`), so delayed jobs still run during a shutdown.
   * @param options.flush run delayed jobs now instead of waiting for their delay.
   * @returns true when drained, false when `timeoutMs` passed first (or `close()` cancelled work).
   */
  waitForSanitization(timeoutMs: number, options: { readonly flush?: boolean } = {}): Promise<boolean> {
    assertNumberOption('timeoutMs', timeoutMs, { min: 0 });
    if (options.flush) {
      for (const job of this.#jobs.values()) {
        if (job.state === 'delayed') {
          clearTimeout(job.timer);
          this.#enqueue(job);
        }
      }
    }
    if (this.#jobs.size === 0) return Promise.resolve(true);
    return new Promise<boolean>((resolve) => {
      const waiter: Waiter = {
        resolve,
        // Not unref'ed on purpose: a process shutting down stays alive until the work drained or the time is up.
        timer: setTimeout(() => {
          this.#waiters.delete(waiter);
          resolve(false);
        }, timeoutMs),
      };
      this.#waiters.add(waiter);
    });
  }

  /** Cancels delayed and queued jobs, aborts running ones (outcome `failed`, error CLOSED) and waits for them. */
  readonly close = closeOnce(async () => {
    this.#closed = true;
    this.#closing.abort();
    let cancelled = 0;
    for (const job of this.#jobs.values()) {
      if (job.state === 'running') {
        job.controller?.abort(new GuardError('CLOSED', 'DeferredSanitizer is closed'));
      } else {
        clearTimeout(job.timer);
        this.#jobs.delete(job.key);
        cancelled++;
      }
    }
    this.#queue.length = 0;
    this.#queueHead = 0;
    this.#waiting = 0;
    if (cancelled > 0) this.#logger.info({ cancelled }, 'Sanitizations cancelled on close');
    // Work was cancelled or aborted, so whoever waits for a drain learns it did not happen.
    const drained = this.#jobs.size === 0 && cancelled === 0;
    for (const waiter of this.#waiters) {
      clearTimeout(waiter.timer);
      waiter.resolve(drained);
    }
    this.#waiters.clear();
    await Promise.all(this.#settling);
  });

  [Symbol.asyncDispose](): Promise<void> {
    return this.close();
  }

  /** The component's only sanitizer, or the one whose target owns the resource; undefined when none does. */
  #route(detection: Detection): Sanitizer | undefined {
    const siblings = this.#settings.sanitizers.get(detection.component);
    if (siblings === undefined) return undefined;
    if (siblings.length === 1) return siblings[0];
    for (const sanitizer of siblings) {
      try {
        if (sanitizer.owns!(detection.resourceId)) return sanitizer;
      } catch (error) {
        this.#logger.warn({ component: detection.component, resourceId: detection.resourceId, err: errorMessage(error) }, 'sanitizer owns() threw');
      }
    }
    return undefined;
  }

  #enqueue(job: Job): void {
    if (this.#closed || job.state !== 'delayed') return;
    job.state = 'queued';
    job.timer = undefined;
    this.#queue.push(job);
    if (!this.#pumpQueued) {
      this.#pumpQueued = true;
      queueMicrotask(() => {
        this.#pumpQueued = false;
        this.#pump();
      });
    }
  }

  #pump(): void {
    while (this.#running < this.#settings.concurrency && this.#queueHead < this.#queue.length) {
      const job = this.#queue[this.#queueHead]!;
      this.#queue[this.#queueHead++] = undefined as never;
      if (this.#queueHead > 1024 && this.#queueHead * 2 > this.#queue.length) {
        this.#queue.splice(0, this.#queueHead);
        this.#queueHead = 0;
      }
      this.#waiting--;
      const settled = this.#run(job);
      this.#settling.add(settled);
      void settled.then(() => this.#settling.delete(settled));
    }
  }

  async #run(job: Job): Promise<void> {
    const { detection, sanitizer } = job;
    const component = detection.component;
    job.state = 'running';
    const controller = new AbortController();
    job.controller = controller;
    this.#running++;
    const startedAt = Date.now();
    const started = performance.now();
    const timer = unrefTimeout(
      () => controller.abort(new GuardError('TIMEOUT', `sanitization exceeded ${this.#settings.timeoutMs} ms`)),
      this.#settings.timeoutMs,
    );
    let report: SanitizeReport;
    try {
      report = await raceAbort(sanitizer.sanitize(detection, { signal: controller.signal }), controller.signal);
      if (!report || !OUTCOMES.includes(report.outcome)) {
        report = { outcome: 'failed', error: `sanitizer returned an invalid outcome: ${String(report?.outcome)}` };
      }
    } catch (error) {
      const reason: unknown = controller.signal.aborted ? controller.signal.reason : error;
      report = { outcome: isGuardError(reason, 'TIMEOUT') ? 'timeout' : 'failed', error: errorMessage(reason) };
    } finally {
      clearTimeout(timer);
    }
    const seconds = (performance.now() - started) / 1_000;
    const result: SanitizeResult = {
      detectionId: detection.id,
      component,
      resourceId: detection.resourceId,
      outcome: report.outcome,
      actions: report.actions ?? [],
      details: report.details ?? {},
      startedAt,
      finishedAt: Date.now(),
      ...(report.error === undefined ? {} : { error: report.error }),
    };
    this.#running--;
    this.#jobs.delete(job.key);
    if (this.#metrics) {
      this.#metrics.sanitized.inc({ component, outcome: result.outcome });
      this.#metrics.duration.observe({ component }, seconds);
    }
    const level = result.outcome === 'failed' || result.outcome === 'timeout' ? 'warn' : 'info';
    this.#logger[level](
      { component, resourceId: result.resourceId, detectionId: result.detectionId, outcome: result.outcome, actions: result.actions, error: result.error },
      'Parasite sanitized',
    );
    this.#bus?.emit('sanitization', result);
    if (!this.#closed) this.#pump();
    this.#checkDrained();
  }

  /** Jobs running now per component, 0 for every component with a sanitizer: `parasite_active_sanitizations`. */
  #runningByComponent(): Map<string, number> {
    const running = new Map<string, number>();
    for (const component of this.#settings.sanitizers.keys()) running.set(component, 0);
    for (const job of this.#jobs.values()) {
      if (job.state === 'running') running.set(job.detection.component, (running.get(job.detection.component) ?? 0) + 1);
    }
    return running;
  }

  #checkDrained(): void {
    if (this.#jobs.size > 0 || this.#waiters.size === 0) return;
    for (const waiter of this.#waiters) {
      clearTimeout(waiter.timer);
      waiter.resolve(true);
    }
    this.#waiters.clear();
  }
}
