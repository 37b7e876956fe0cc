import { assertNumberOption, envReader, GuardError, silentLogger } from '@guard/core';
import type { Env, GuardBus, Logger, MetricsOptions, Subscription } from '@guard/core';
import { playbooksCounter, playbooksHistogram } from './metrics.js';
import './declarations.js';

/** The state of a watched component. */
export type ComponentState = 'healthy' | 'missed' | 'restarting' | 'failed';

/** How to watch and restart one component. */
export interface WatchedComponentOptions {
  /** A heartbeat must arrive at least this often; omit to register a restartable component that is not watched. */
  readonly deadlineMs?: number;
  /** Restarts the component; may be async. */
  readonly restart: (reason: string, signal: AbortSignal) => void | Promise<void>;
}

/** A point-in-time view of one component (for dashboards). */
export interface ComponentStatus {
  readonly name: string;
  readonly state: ComponentState;
  readonly watched: boolean;
  readonly deadlineMs?: number;
  readonly lastHeartbeatAt: number;
  readonly restarts: number;
  readonly failedRestarts: number;
  readonly lastMissedAt?: number;
  /** Time from the missed deadline (or the restart request) to the end of the restart. */
  readonly lastRecoveryMs?: number;
  readonly lastError?: string;
}

/** A watchdog notice, also emitted on the `GuardBus` as `heartbeat`. */
export interface HeartbeatEvent {
  readonly kind: 'missed' | 'restarted' | 'restart_failed';
  readonly component: string;
  readonly reason: string;
  readonly at: number;
  readonly recoveryMs?: number;
  readonly error?: string;
}

/** Options for {@link HeartbeatWatchdog}. */
export interface HeartbeatWatchdogOptions extends MetricsOptions {
  /** A restart hook that takes longer fails with `TIMEOUT`. Default 10 000. */
  readonly restartTimeoutMs?: number;
  /** How many recoveries {@link HeartbeatWatchdog.recoveries} keeps. Default 100. */
  readonly historySize?: number;
  readonly bus?: GuardBus;
  readonly logger?: Logger;
  readonly now?: () => number;
}

interface Entry {
  readonly name: string;
  readonly options: WatchedComponentOptions;
  state: ComponentState;
  lastHeartbeatAt: number;
  restarts: number;
  failedRestarts: number;
  lastMissedAt?: number;
  lastRecoveryMs?: number;
  lastError?: string;
  timer: NodeJS.Timeout | undefined;
  restarting: Promise<ComponentStatus> | undefined;
}

/** One recovery, for the S01 timeline and the dashboard. */
export interface RecoveryRecord {
  readonly component: string;
  readonly reason: string;
  readonly missedAt: number;
  readonly recoveredAt: number;
  readonly recoveryMs: number;
}

/**
 * Components register with a heartbeat deadline and a restart hook; a missed deadline restarts the
 * component at once (one timer per component, refreshed on every heartbeat) and records how long the
 * recovery took. Also the component registry behind the `restart_component` action.
 *
 * @example
 * await using watchdog = new HeartbeatWatchdog();
 * watchdog.register('ingest', { deadlineMs: 5_000, restart: () => ingest.restart() });
 * setInterval(() => watchdog.heartbeat('ingest'), 1_000);
 */
export class HeartbeatWatchdog implements AsyncDisposable {
  readonly #entries = new Map<string, Entry>();
  readonly #recoveries: RecoveryRecord[] = [];
  readonly #listeners = new Set<(event: HeartbeatEvent) => void>();
  readonly #restartTimeoutMs: number;
  readonly #historySize: number;
  readonly #bus: GuardBus | undefined;
  readonly #logger: Logger;
  readonly #now: () => number;
  readonly #restartsMetric;
  readonly #recoveryMetric;
  readonly #abort = new AbortController();
  #closed = false;

  constructor(options: HeartbeatWatchdogOptions = {}) {
    this.#restartTimeoutMs = options.restartTimeoutMs ?? 10_000;
    assertNumberOption('restartTimeoutMs', this.#restartTimeoutMs, { min: 1 });
    this.#historySize = options.historySize ?? 100;
    assertNumberOption('historySize', this.#historySize, { min: 1, integer: true });
    this.#bus = options.bus;
    this.#logger = options.logger ?? silentLogger;
    this.#now = options.now ?? Date.now;
    this.#restartsMetric = playbooksCounter(options, 'component_restarts_total', 'Component restarts by outcome', ['component', 'outcome']);
    this.#recoveryMetric = playbooksHistogram(options, 'component_recovery_seconds', 'Time from a missed heartbeat to a restarted component', ['component']);
  }

  /**
   * Reads `GUARD_WATCHDOG_RESTART_TIMEOUT` (duration, default 10s).
   *
   * @example
   * const watchdog = new HeartbeatWatchdog({ ...HeartbeatWatchdog.optionsFromEnv(), bus });
   */
  static optionsFromEnv(env: Env = process.env): Pick<HeartbeatWatchdogOptions, 'restartTimeoutMs'> {
    return { restartTimeoutMs: envReader(env).durationMs('GUARD_WATCHDOG_RESTART_TIMEOUT', 10_000, 'ms', { min: 1 }) };
  }

  /** Registers a component; its deadline starts now. @returns a function that unregisters it. */
  register(name: string, options: WatchedComponentOptions): Subscription {
    if (this.#closed) throw new GuardError('CLOSED', 'HeartbeatWatchdog is closed');
    if (typeof name !== 'string' || name.length === 0) throw new GuardError('INVALID_OPTION', 'component name must be a non-empty string', { details: { field: 'name' } });
    if (this.#entries.has(name)) throw new GuardError('DUPLICATE', `component "${name}" is already registered`, { details: { field: 'name', name } });
    if (typeof options?.restart !== 'function') throw new GuardError('INVALID_OPTION', 'restart must be a function', { details: { field: 'restart' } });
    if (options.deadlineMs !== undefined) assertNumberOption('deadlineMs', options.deadlineMs, { min: 1 });
    const entry: Entry = { name, options, state: 'healthy', lastHeartbeatAt: this.#now(), restarts: 0, failedRestarts: 0, timer: undefined, restarting: undefined };
    this.#entries.set(name, entry);
    this.#arm(entry);
    const off = (() => {
      if (this.#entries.get(name) !== entry) return;
      if (entry.timer) clearTimeout(entry.timer);
      this.#entries.delete(name);
    }) as Subscription;
    off[Symbol.dispose] = off;
    return off;
  }

  /** Records a heartbeat of `name`. Throws `UNKNOWN_COMPONENT` for unregistered names. */
  heartbeat(name: string): void {
    const entry = this.#entries.get(name);
    if (!entry) throw new GuardError('UNKNOWN_COMPONENT', `component "${name}" is not registered`, { details: { component: name } });
    entry.lastHeartbeatAt = this.#now();
    if (entry.state === 'missed' || entry.state === 'failed') {
      if (!entry.restarting) entry.state = 'healthy';
    }
    entry.timer?.refresh();
  }

  /** Restarts `name` now (concurrent calls share one restart). Rejects with the hook's error. */
  restart(name: string, reason = 'requested'): Promise<ComponentStatus> {
    if (this.#closed) return Promise.reject(new GuardError('CLOSED', 'HeartbeatWatchdog is closed'));
    const entry = this.#entries.get(name);
    if (!entry) return Promise.reject(new GuardError('UNKNOWN_COMPONENT', `component "${name}" is not registered`, { details: { component: name } }));
    return this.#restart(entry, reason, this.#now());
  }

  /** Every registered component's state. */
  states(): ComponentStatus[] {
    return [...this.#entries.values()].map((e) => this.#status(e));
  }

  /** One component's state, or undefined. */
  state(name: string): ComponentStatus | undefined {
    const entry = this.#entries.get(name);
    return entry && this.#status(entry);
  }

  /** The most recent recoveries, oldest first. */
  recoveries(): readonly RecoveryRecord[] {
    return [...this.#recoveries];
  }

  /** Calls `listener` on every missed heartbeat and restart outcome. */
  onEvent(listener: (event: HeartbeatEvent) => void): Subscription {
    this.#listeners.add(listener);
    const off = (() => void this.#listeners.delete(listener)) as Subscription;
    off[Symbol.dispose] = off;
    return off;
  }

  /** Stops every timer and aborts restarts in flight. */
  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    this.#abort.abort(new GuardError('CLOSED', 'HeartbeatWatchdog is closed'));
    const pending = [...this.#entries.values()].map((e) => e.restarting?.catch(() => undefined));
    for (const e of this.#entries.values()) if (e.timer) clearTimeout(e.timer);
    await Promise.all(pending);
    this.#listeners.clear();
  }

  [Symbol.asyncDispose](): Promise<void> {
    return this.close();
  }

  #arm(entry: Entry): void {
    const deadlineMs = entry.options.deadlineMs;
    if (deadlineMs === undefined || this.#closed) return;
    if (entry.timer) {
      entry.timer.refresh();
      return;
    }
    entry.timer = setTimeout(() => this.#missed(entry), deadlineMs);
    entry.timer.unref();
  }

  #missed(entry: Entry): void {
    if (this.#closed || this.#entries.get(entry.name) !== entry) return;
    const now = this.#now();
    const deadlineAt = entry.lastHeartbeatAt + (entry.options.deadlineMs ?? 0);
    entry.state = 'missed';
    entry.lastMissedAt = deadlineAt;
    this.#emit({ kind: 'missed', component: entry.name, reason: 'heartbeat_missed', at: now });
    this.#logger.warn({ component: entry.name, lateMs: now - entry.lastHeartbeatAt }, 'heartbeat missed; restarting component');
    this.#restart(entry, 'heartbeat_missed', Math.min(deadlineAt, now)).catch(() => undefined);
  }

  #restart(entry: Entry, reason: string, since: number): Promise<ComponentStatus> {
    if (entry.restarting) return entry.restarting;
    entry.state = 'restarting';
    const run = async (): Promise<ComponentStatus> => {
      const controller = new AbortController();
      const onClose = (): void => controller.abort(this.#abort.signal.reason);
      this.#abort.signal.addEventListener('abort', onClose, { once: true });
      let timer: NodeJS.Timeout | undefined;
      try {
        await Promise.race([
          Promise.resolve().then(() => entry.options.restart(reason, controller.signal)),
          new Promise<never>((_, reject) => {
            timer = setTimeout(() => {
              const error = new GuardError('TIMEOUT', `restart of "${entry.name}" took longer than ${this.#restartTimeoutMs} ms`);
              controller.abort(error);
              reject(error);
            }, this.#restartTimeoutMs);
            controller.signal.addEventListener('abort', () => reject(controller.signal.reason), { once: true });
          }),
        ]);
        const now = this.#now();
        entry.state = 'healthy';
        entry.restarts++;
        entry.lastHeartbeatAt = now;
        entry.lastRecoveryMs = Math.max(0, now - since);
        entry.lastError = undefined;
        this.#recoveries.push({ component: entry.name, reason, missedAt: since, recoveredAt: now, recoveryMs: entry.lastRecoveryMs });
        if (this.#recoveries.length > this.#historySize) this.#recoveries.shift();
        this.#restartsMetric.inc({ component: entry.name, outcome: 'success' });
        this.#recoveryMetric.observe({ component: entry.name }, entry.lastRecoveryMs / 1000);
        this.#emit({ kind: 'restarted', component: entry.name, reason, at: now, recoveryMs: entry.lastRecoveryMs });
        return this.#status(entry);
      } catch (error) {
        entry.state = 'failed';
        entry.failedRestarts++;
        entry.lastError = error instanceof Error ? error.message : String(error);
        this.#restartsMetric.inc({ component: entry.name, outcome: 'failed' });
        this.#emit({ kind: 'restart_failed', component: entry.name, reason, at: this.#now(), error: entry.lastError });
        this.#logger.error({ err: error, component: entry.name }, 'component restart failed');
        throw error;
      } finally {
        if (timer) clearTimeout(timer);
        this.#abort.signal.removeEventListener('abort', onClose);
        entry.restarting = undefined;
        if (this.#entries.get(entry.name) === entry) this.#arm(entry);
      }
    };
    entry.restarting = run();
    return entry.restarting;
  }

  #status(e: Entry): ComponentStatus {
    return {
      name: e.name,
      state: e.state,
      watched: e.options.deadlineMs !== undefined,
      ...(e.options.deadlineMs === undefined ? {} : { deadlineMs: e.options.deadlineMs }),
      lastHeartbeatAt: e.lastHeartbeatAt,
      restarts: e.restarts,
      failedRestarts: e.failedRestarts,
      ...(e.lastMissedAt === undefined ? {} : { lastMissedAt: e.lastMissedAt }),
      ...(e.lastRecoveryMs === undefined ? {} : { lastRecoveryMs: e.lastRecoveryMs }),
      ...(e.lastError === undefined ? {} : { lastError: e.lastError }),
    };
  }

  #emit(event: HeartbeatEvent): void {
    for (const listener of this.#listeners) {
      try {
        listener(event);
      } catch (error) {
        this.#logger.error({ err: error }, 'HeartbeatWatchdog listener threw');
      }
    }
    this.#bus?.emit('heartbeat', event);
  }
}
