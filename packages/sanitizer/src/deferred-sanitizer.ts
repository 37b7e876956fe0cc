import {
  assertNumberOption,
  closeOnce,
  counter,
  errorMessage,
  gauge,
  GuardError,
  histogram,
  isGuardError,
  metricName,
  resolveMetricsPrefix,
  resolveRegistry,
  silentLogger,
  unrefTimeout,
} from '@guard/core';
import type {
  Closeable,
  ComponentName,
  Detection,
  GuardBus,
  Logger,
  MetricsOptions,
  SanitizationScheduler,
  SanitizeOutcome,
  SanitizeResult,
} from '@guard/core';
import { raceAbort } from '@guard/core';
import type { Counter, Gauge, Histogram } from 'prom-client';
import { DEFAULT_DELAYS_MS } from './components.js';
import { deferredSanitizerOptionsFromEnv } from './sanitizer-env.js';
import type { Env } from '@guard/core';
import type { SanitizeReport, Sanitizer } from './sanitizer.js';

const OUTCOMES: readonly SanitizeOutcome[] = ['success', 'partial', 'failed', 'skipped', 'timeout'];

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

interface SanitizerMetrics {
  readonly sanitized: Counter<'component' | 'outcome'>;
  readonly active: Gauge<'component'>;
  readonly duration: Histogram<'component'>;
}

function createMetrics(options: DeferredSanitizerOptions): SanitizerMetrics | undefined {
  if (options.metrics === false) return undefined;
  const registry = resolveRegistry(options.registry);
  const prefix = resolveMetricsPrefix(options, 'parasite');
  return {
    sanitized: counter(registry, {
      name: metricName(prefix, 'sanitized_total'),
      help: 'Sanitizations finished, by component and outcome',
      labelNames: ['component', 'outcome'],
    }),
    active: gauge(registry, {
      name: metricName(prefix, 'active_sanitizations'),
      help: 'Sanitizations running now, by component',
      labelNames: ['component'],
    }),
    duration: histogram(registry, {
      name: metricName(prefix, 'sanitization_duration_seconds'),
      help: 'How long one sanitization took, by component',
      labelNames: ['component'],
      buckets: [0.005, 0.025, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60],
    }),
  };
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
  readonly #sanitizers = new Map<string, Sanitizer[]>();
  readonly #delaysMs = new Map<string, number>();
  readonly #defaultDelayMs: number;
  readonly #concurrency: number;
  readonly #timeoutMs: number;
  readonly #maxQueued: number;
  readonly #disabled: ReadonlySet<string>;
  readonly #bus: GuardBus | undefined;
  readonly #logger: Logger;
  readonly #metrics: SanitizerMetrics | undefined;

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
    if (!options || !Array.isArray(options.sanitizers)) {
      throw new GuardError('INVALID_OPTION', 'sanitizers must be an array of Sanitizer', { details: { field: 'sanitizers' } });
    }
    for (const sanitizer of options.sanitizers) {
      if (!sanitizer || typeof sanitizer.component !== 'string' || typeof sanitizer.sanitize !== 'function') {
        throw new GuardError('INVALID_OPTION', 'every sanitizer needs a component and a sanitize function', {
          details: { field: 'sanitizers' },
        });
      }
      const siblings = this.#sanitizers.get(sanitizer.component) ?? [];
      if (siblings.includes(sanitizer)) {
        throw new GuardError('INVALID_OPTION', `the same sanitizer for component ${sanitizer.component} was given twice`, {
          details: { field: 'sanitizers', component: sanitizer.component },
        });
      }
      siblings.push(sanitizer);
      this.#sanitizers.set(sanitizer.component, siblings);
    }
    for (const [component, siblings] of this.#sanitizers) {
      // Several sanitizers for one component can only be told apart by the resources their targets own.
      if (siblings.length > 1 && siblings.some((s) => typeof s.owns !== 'function')) {
        throw new GuardError(
          'INVALID_OPTION',
          `${siblings.length} sanitizers for component ${component}, but not all of them have owns(resourceId) to route detections by: build them from trackers (createXSanitizer(tracker)) or add owns`,
          { details: { field: 'sanitizers', component } },
        );
      }
    }
    const delays = { ...DEFAULT_DELAYS_MS, ...options.delaysMs } as Record<string, number | undefined>;
    for (const [component, ms] of Object.entries(delays)) {
      if (ms === undefined) continue;
      assertNumberOption(`delaysMs.${component}`, ms, { min: 0 });
      this.#delaysMs.set(component, ms);
    }
    this.#defaultDelayMs = options.defaultDelayMs ?? 1_000;
    assertNumberOption('defaultDelayMs', this.#defaultDelayMs, { min: 0 });
    this.#concurrency = options.concurrency ?? 4;
    assertNumberOption('concurrency', this.#concurrency, { min: 1, integer: true });
    this.#timeoutMs = options.timeoutMs ?? 30_000;
    assertNumberOption('timeoutMs', this.#timeoutMs, { min: 1 });
    this.#maxQueued = options.maxQueued ?? 10_000;
    assertNumberOption('maxQueued', this.#maxQueued, { min: 1, integer: true });
    this.#disabled = new Set(options.disabledComponents ?? []);
    this.#bus = options.bus;
    this.#logger = options.logger ?? silentLogger;
    this.#metrics = createMetrics(options);
  }

  /** The delay (ms) a detection of `component` waits before its sanitizer runs. */
  delayFor(component: ComponentName): number {
    return this.#delaysMs.get(component) ?? this.#defaultDelayMs;
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
    if (!sanitizer || this.#disabled.has(detection.component)) return false;
    const key = keyOf(detection.component, detection.resourceId);
    if (this.#jobs.has(key)) return false;
    if (this.#waiting >= this.#maxQueued) {
      this.#logger.warn({ component: detection.component, maxQueued: this.#maxQueued }, 'Sanitization queue full');
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
    const siblings = this.#sanitizers.get(detection.component);
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
    while (this.#running < this.#concurrency && this.#queueHead < this.#queue.length) {
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
    this.#metrics?.active.inc({ component });
    const startedAt = Date.now();
    const started = performance.now();
    const timer = unrefTimeout(
      () => controller.abort(new GuardError('TIMEOUT', `sanitization exceeded ${this.#timeoutMs} ms`)),
      this.#timeoutMs,
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
      this.#metrics.active.dec({ component });
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

  #checkDrained(): void {
    if (this.#jobs.size > 0 || this.#waiters.size === 0) return;
    for (const waiter of this.#waiters) {
      clearTimeout(waiter.timer);
      waiter.resolve(true);
    }
    this.#waiters.clear();
  }
}
