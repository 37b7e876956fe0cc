import { assertNumberOption, BusNotices, envReader, GuardError, sendProblem, silentLogger } from '@guard/core';
import type { Env, GuardBus, HttpHandler, Logger, MetricsOptions, Subscription } from '@guard/core';
import { playbooksGauge } from './metrics.js';
import type { PlaybookTrigger } from './playbook-types.js';
import { createSystemSampler } from './system-sampler.js';
import type { PressureReading, PressureSampler, SystemSamplerOptions } from './system-sampler.js';
import type {} from './declarations.js';

/** The resources the monitor watches. */
export type PressureResource = 'cpu' | 'memory' | 'disk' | 'event_loop';

/**
 * Every watched resource.
 *
 * @example
 * for (const r of PRESSURE_RESOURCES) console.log(r);
 */
export const PRESSURE_RESOURCES: readonly PressureResource[] = ['cpu', 'memory', 'disk', 'event_loop'];

/** An alarm was raised or cleared; also emitted on the `GuardBus` as `resourcePressure`. */
export interface PressureChange {
  readonly resource: PressureResource;
  readonly state: 'alarm' | 'cleared';
  /** Level in percent at the change. */
  readonly percent: number;
  /** @deprecated the same as `percent` (kept for earlier consumers; never log it as a field: pino owns `level`). */
  readonly level: number;
  readonly thresholdPercent: number;
  /** How long the level had held before the change. */
  readonly sustainedMs: number;
  readonly at: number;
}

/** The current level and alarm state of one resource (for dashboards). */
export interface PressureLevel {
  readonly resource: PressureResource;
  readonly percent: number | undefined;
  readonly thresholdPercent: number;
  readonly alarm: boolean;
  /** When the level first reached the threshold in the current streak. */
  readonly overSince?: number;
}

/** Options for {@link ResourcePressureMonitor}. */
export interface ResourcePressureMonitorOptions extends MetricsOptions {
  /** Sample period. Default 1000 (1 Hz). */
  readonly intervalMs?: number;
  /** A level must hold at or over its threshold this long before the alarm. Default 10 000. */
  readonly sustainMs?: number;
  /** A level must hold below `clearPercent` this long before the alarm clears. Default 3000. */
  readonly clearSustainMs?: number;
  /** Alarm thresholds in percent. Defaults: cpu 80, memory 85, disk 90, event_loop 90. */
  readonly thresholds?: Partial<Record<PressureResource, number>>;
  /** Hysteresis: an alarm clears only below this percent. Default 60. */
  readonly clearPercent?: number;
  /**
   * Injected sampler (tests, other sources). Default: {@link createSystemSampler} with `system`: host CPU
   * (cgroup-aware), memory (cgroup limit where present), disk of the working directory, event loop.
   */
  readonly sampler?: PressureSampler;
  /** Options of the default system sampler. */
  readonly system?: SystemSamplerOptions;
  /** Start sampling in the constructor. Default true. */
  readonly autoStart?: boolean;
  /** Playbook engine to trigger with `resource_pressure.<resource>` on each alarm. */
  readonly engine?: PlaybookTrigger;
  readonly bus?: GuardBus;
  readonly logger?: Logger;
  readonly now?: () => number;
}

interface State {
  percent: number | undefined;
  overSince: number | undefined;
  underSince: number | undefined;
  alarm: boolean;
}

const DEFAULT_THRESHOLDS: Record<PressureResource, number> = { cpu: 80, memory: 85, disk: 90, event_loop: 90 };
const READING_KEY: Record<PressureResource, keyof PressureReading> = {
  cpu: 'cpuPercent',
  memory: 'memoryPercent',
  disk: 'diskPercent',
  event_loop: 'eventLoopPercent',
};

/**
 * Samples CPU, memory, disk and the event loop at 1 Hz; raises an alarm only after a level holds at or
 * over its threshold for `sustainMs` (10 s), and clears it with hysteresis once the level stays below
 * `clearPercent` (60 %). `isUnderPressure()` is an O(1) read for load shedding.
 *
 * @example
 * await using pressure = new ResourcePressureMonitor({ engine, system: { diskPaths: ['/var/lib/app'] } });
 * server.on('request', (req, res) => (pressure.isUnderPressure() ? shed(res) : app(req, res)));
 */
export class ResourcePressureMonitor implements AsyncDisposable {
  readonly #intervalMs: number;
  readonly #sustainMs: number;
  readonly #clearSustainMs: number;
  readonly #clearPercent: number;
  readonly #thresholds: Record<PressureResource, number>;
  readonly #sampler: PressureSampler;
  readonly #closeSampler: (() => void) | undefined;
  readonly #states = new Map<PressureResource, State>();
  readonly #notices: BusNotices<'resourcePressure'>;
  readonly #engine: PlaybookTrigger | undefined;
  readonly #logger: Logger;
  readonly #now: () => number;
  readonly #levelGauge;
  readonly #alarmGauge;
  readonly #delayGauge;
  #timer: NodeJS.Timeout | undefined;
  #sampling: Promise<void> | undefined;
  #last: PressureReading | undefined;
  #lastAt: number | undefined;
  #alarms = 0;
  #closed = false;

  constructor(options: ResourcePressureMonitorOptions = {}) {
    this.#intervalMs = options.intervalMs ?? 1_000;
    assertNumberOption('intervalMs', this.#intervalMs, { min: 10 });
    this.#sustainMs = options.sustainMs ?? 10_000;
    assertNumberOption('sustainMs', this.#sustainMs, { min: 0 });
    this.#clearSustainMs = options.clearSustainMs ?? 3_000;
    assertNumberOption('clearSustainMs', this.#clearSustainMs, { min: 0 });
    this.#clearPercent = options.clearPercent ?? 60;
    assertNumberOption('clearPercent', this.#clearPercent, { min: 0, max: 100 });
    this.#thresholds = { ...DEFAULT_THRESHOLDS, ...options.thresholds };
    for (const r of PRESSURE_RESOURCES) {
      assertNumberOption(`thresholds.${r}`, this.#thresholds[r], { min: 0, max: 100 });
      if (this.#thresholds[r] <= this.#clearPercent) {
        throw new GuardError('INVALID_OPTION', `thresholds.${r} (${this.#thresholds[r]}) must be above clearPercent (${this.#clearPercent})`, {
          details: { field: `thresholds.${r}` },
        });
      }
      this.#states.set(r, { percent: undefined, overSince: undefined, underSince: undefined, alarm: false });
    }
    if (options.sampler !== undefined && typeof options.sampler !== 'function') {
      throw new GuardError('INVALID_OPTION', 'sampler must be a function', { details: { field: 'sampler' } });
    }
    if (options.sampler) {
      this.#sampler = options.sampler;
    } else {
      const system = createSystemSampler(options.system);
      this.#sampler = system.sample;
      this.#closeSampler = () => system.close();
    }
    this.#engine = options.engine;
    this.#logger = options.logger ?? silentLogger;
    this.#notices = new BusNotices('resourcePressure', { bus: options.bus, logger: this.#logger, owner: 'ResourcePressureMonitor' });
    this.#now = options.now ?? Date.now;
    this.#levelGauge = playbooksGauge(options, 'pressure_level_ratio', 'Resource level (0-1) at the last sample', ['resource']);
    this.#alarmGauge = playbooksGauge(options, 'pressure_alarm', '1 while a resource pressure alarm is active', ['resource']);
    this.#delayGauge = playbooksGauge(options, 'event_loop_delay_seconds', 'p99 event-loop delay over the last interval', []);
    if (options.autoStart ?? true) this.start();
  }

  /**
   * A monitor configured from the environment (see {@link resourcePressureMonitorOptionsFromEnv}); `overrides`,
   * given in code, win over the environment.
   *
   * @example
   * const pressure = ResourcePressureMonitor.fromEnv(process.env, { engine });
   */
  static fromEnv(env: Env = process.env, overrides: ResourcePressureMonitorOptions = {}): ResourcePressureMonitor {
    return new ResourcePressureMonitor({ ...resourcePressureMonitorOptionsFromEnv(env), ...overrides });
  }

  /** @deprecated use {@link resourcePressureMonitorOptionsFromEnv} (or {@link ResourcePressureMonitor.fromEnv}). */
  static optionsFromEnv(env: Env = process.env): ResourcePressureMonitorOptions {
    return resourcePressureMonitorOptionsFromEnv(env);
  }

  /** Starts the 1 Hz loop (idempotent). */
  start(): void {
    if (this.#closed) throw new GuardError('CLOSED', 'ResourcePressureMonitor is closed');
    if (this.#timer) return;
    this.#timer = setInterval(() => {
      if (!this.#sampling) this.sampleNow().catch((error: unknown) => this.#logger.error({ err: error }, 'pressure sample failed'));
    }, this.#intervalMs);
    this.#timer.unref();
  }

  /** Stops the loop (alarms keep their state). */
  stop(): void {
    if (this.#timer) clearInterval(this.#timer);
    this.#timer = undefined;
  }

  /** Takes one sample now and evaluates it. */
  async sampleNow(): Promise<PressureReading> {
    if (this.#closed) throw new GuardError('CLOSED', 'ResourcePressureMonitor is closed');
    let done!: () => void;
    this.#sampling = new Promise<void>((resolve) => (done = resolve));
    try {
      const reading = await this.#sampler();
      if (!this.#closed) this.evaluate(reading);
      return reading;
    } finally {
      this.#sampling = undefined;
      done();
    }
  }

  /** Evaluates a reading at `now` (what the loop does with each sample; public for injected sources). */
  evaluate(reading: PressureReading, now = this.#now()): void {
    this.#last = reading;
    this.#lastAt = now;
    if (reading.details?.eventLoopDelayMs !== undefined) this.#delayGauge.set(reading.details.eventLoopDelayMs / 1000);
    for (const resource of PRESSURE_RESOURCES) {
      const value = reading[READING_KEY[resource]];
      if (typeof value !== 'number' || Number.isNaN(value)) continue;
      const state = this.#states.get(resource)!;
      const threshold = this.#thresholds[resource];
      state.percent = value;
      this.#levelGauge.set({ resource }, value / 100);
      if (value >= threshold) {
        state.overSince ??= now;
        state.underSince = undefined;
        if (!state.alarm && now - state.overSince >= this.#sustainMs) {
          state.alarm = true;
          this.#change({ resource, state: 'alarm', percent: value, level: value, thresholdPercent: threshold, sustainedMs: now - state.overSince, at: now });
        }
      } else {
        state.overSince = undefined;
        if (state.alarm) {
          if (value < this.#clearPercent) {
            state.underSince ??= now;
            if (now - state.underSince >= this.#clearSustainMs) {
              state.alarm = false;
              const sustainedMs = now - state.underSince;
              state.underSince = undefined;
              this.#change({ resource, state: 'cleared', percent: value, level: value, thresholdPercent: threshold, sustainedMs, at: now });
            }
          } else {
            state.underSince = undefined;
          }
        }
      }
    }
  }

  /** True while any resource is in alarm: shed load. */
  isUnderPressure(): boolean {
    return this.#alarms > 0;
  }

  /** Current level and alarm state of every resource. */
  levels(): PressureLevel[] {
    return PRESSURE_RESOURCES.map((resource) => {
      const s = this.#states.get(resource)!;
      return {
        resource,
        percent: s.percent,
        thresholdPercent: this.#thresholds[resource],
        alarm: s.alarm,
        ...(s.overSince === undefined ? {} : { overSince: s.overSince }),
      };
    });
  }

  /** The last reading and when it was taken. */
  lastReading(): { reading: PressureReading; at: number } | undefined {
    return this.#last && this.#lastAt !== undefined ? { reading: this.#last, at: this.#lastAt } : undefined;
  }

  /** Calls `listener` on every alarm and clear; a listener that throws or rejects is logged and never stops the others. */
  onChange(listener: (change: PressureChange) => unknown): Subscription {
    return this.#notices.on(listener);
  }

  /**
   * A connect-style load-shedding handler: 503 problem+json with `Retry-After` while under pressure,
   * `next()` otherwise.
   *
   * @example
   * const shed = pressure.loadShedding();
   * server.on('request', (req, res) => shed(req, res, () => app(req, res)));
   */
  loadShedding(options: { retryAfterSec?: number } = {}): HttpHandler {
    const retryAfter = String(options.retryAfterSec ?? 5);
    return (_req, res, next) => {
      if (!this.isUnderPressure()) return next?.();
      const resources = this.levels().filter((l) => l.alarm).map((l) => l.resource);
      sendProblem(res, { status: 503, title: 'Service under pressure', detail: `load shedding: ${resources.join(', ')} over threshold`, resources }, { 'retry-after': retryAfter });
    };
  }

  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    this.stop();
    await this.#sampling;
    this.#closeSampler?.();
    this.#notices.removeAllListeners();
  }

  [Symbol.asyncDispose](): Promise<void> {
    return this.close();
  }

  #change(change: PressureChange): void {
    this.#alarms += change.state === 'alarm' ? 1 : -1;
    this.#alarmGauge.set({ resource: change.resource }, change.state === 'alarm' ? 1 : 0);
    // Named fields only: a spread would put `level` over the log level field a pino logger owns.
    this.#logger.warn(
      { resource: change.resource, state: change.state, percent: change.percent, thresholdPercent: change.thresholdPercent, sustainedMs: change.sustainedMs, at: change.at },
      `resource pressure ${change.state}: ${change.resource} at ${change.percent.toFixed(1)} %`,
    );
    this.#notices.emit(change);
    if (change.state === 'alarm' && this.#engine) {
      const levels: Record<string, number | undefined> = {};
      for (const l of this.levels()) levels[l.resource] = l.percent;
      this.#engine
        .trigger(`resource_pressure.${change.resource}`, { ...change, levels }, { reason: `${change.resource}_pressure` })
        .catch((error: unknown) => this.#logger.error({ err: error }, 'pressure playbook trigger failed'));
    }
  }
}

/**
 * Reads `GUARD_PRESSURE_INTERVAL` (1s), `GUARD_PRESSURE_SUSTAIN` (10s), `GUARD_PRESSURE_CLEAR_SUSTAIN` (3s),
 * `GUARD_PRESSURE_THRESHOLDS` (`cpu=80,memory=85,disk=90,event_loop=90,clear=60`), `GUARD_PRESSURE_DISK_PATHS`
 * (comma-separated, default the working directory; `none` turns disk off) and `GUARD_PRESSURE_CPU_SOURCE`
 * (host|process|system|max|demand, default host). A bad value throws `INVALID_ENV` naming the variable.
 *
 * @example
 * new ResourcePressureMonitor({ ...resourcePressureMonitorOptionsFromEnv(process.env), engine });
 */
export function resourcePressureMonitorOptionsFromEnv(env: Env = process.env): ResourcePressureMonitorOptions {
  const r = envReader(env);
  const t = r.thresholds('GUARD_PRESSURE_THRESHOLDS', ['cpu', 'memory', 'disk', 'event_loop', 'clear']);
  for (const [key, value] of Object.entries(t)) {
    if (value < 0 || value > 100) {
      throw new GuardError('INVALID_ENV', `GUARD_PRESSURE_THRESHOLDS: ${key} must be within 0-100`, { details: { variable: 'GUARD_PRESSURE_THRESHOLDS' } });
    }
  }
  const { clear, ...thresholds } = t;
  const paths = r.string('GUARD_PRESSURE_DISK_PATHS');
  return {
    intervalMs: r.durationMs('GUARD_PRESSURE_INTERVAL', 1_000, 'ms', { min: 10 }),
    sustainMs: r.durationMs('GUARD_PRESSURE_SUSTAIN', 10_000, 'ms'),
    clearSustainMs: r.durationMs('GUARD_PRESSURE_CLEAR_SUSTAIN', 3_000, 'ms'),
    thresholds: thresholds as Partial<Record<PressureResource, number>>,
    ...(clear === undefined ? {} : { clearPercent: clear }),
    system: {
      cpuSource: r.oneOf('GUARD_PRESSURE_CPU_SOURCE', ['host', 'process', 'system', 'max', 'demand'] as const, 'host'),
      ...(paths === undefined ? {} : { diskPaths: paths === 'none' ? [] : paths.split(',').map((p) => p.trim()).filter(Boolean) }),
    },
  };
}
