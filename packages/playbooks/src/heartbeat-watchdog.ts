import { assertNumberOption, BusNotices, createSubscription, envReader, errorMessage, GuardError, linkSignal, raceAbort, silentLogger } from '@guard/core';
import type { Env, GuardBus, HeartbeatNotice, Logger, MetricsOptions, Subscription } from '@guard/core';
import { playbooksCounter, playbooksGauge, playbooksHistogram } from './metrics.js';
import type {} from './declarations.js';

/**
 * The state of a watched component:
 * - `healthy`: heartbeats arrive in time (unwatched components are healthy unless a restart failed);
 * - `missed`: the deadline passed, a restart is about to start;
 * - `restarting`: the restart hook runs;
 * - `starting`: the hook finished; the component is not healthy until it heartbeats again;
 * - `backoff`: waiting before the next restart (exponential backoff);
 * - `failed`: the last restart hook threw or timed out (the next attempt waits for its backoff);
 * - `crash_loop`: too many restarts in the window; no more restarts until a heartbeat or {@link HeartbeatWatchdog.reset}.
 */
export type ComponentState = 'healthy' | 'missed' | 'restarting' | 'starting' | 'backoff' | 'failed' | 'crash_loop';

/** Bounded restarts (Kubernetes CrashLoopBackOff): exponential backoff and a crash-loop limit. */
export interface RestartPolicy {
  /** Delay before the second consecutive restart; doubles for each further one. The first restart is immediate. Default 1000. */
  readonly backoffBaseMs?: number;
  /** Longest delay between restarts. Default 60 000. */
  readonly backoffMaxMs?: number;
  /** This many restarts within `crashLoopWindowMs` put the component in `crash_loop`. Default 5. */
  readonly crashLoopRestarts?: number;
  /** Default 300 000 (5 min). */
  readonly crashLoopWindowMs?: number;
}

/** How to watch and restart one component. */
export interface WatchedComponentOptions extends RestartPolicy {
  /** A heartbeat must arrive at least this often; omit to register a restartable component that is not watched. */
  readonly deadlineMs?: number;
  /** Restarts the component; may be async. */
  readonly restart: (reason: string, signal: AbortSignal) => void | Promise<void>;
}

/** A point-in-time view of one component (for dashboards and the status API). */
export interface ComponentStatus {
  readonly name: string;
  readonly state: ComponentState;
  readonly watched: boolean;
  readonly deadlineMs?: number;
  readonly lastHeartbeatAt: number;
  /** Restart hooks that finished, since registration. */
  readonly restarts: number;
  readonly failedRestarts: number;
  /** Restarts (finished or failed) within the crash-loop window. */
  readonly restartsInWindow: number;
  /** Consecutive restarts without a heartbeat in between (drives the backoff). */
  readonly consecutiveRestarts: number;
  /** When the next restart is due (state `backoff` or `failed`). */
  readonly nextRestartAt?: number;
  /** When the component entered `crash_loop`. */
  readonly crashLoopSince?: number;
  readonly lastMissedAt?: number;
  /** Time from the missed deadline (or the restart request) to the first heartbeat after the restart. */
  readonly lastRecoveryMs?: number;
  readonly lastError?: string;
}

/**
 * A watchdog notice, also emitted on the `GuardBus` as `heartbeat`. Its shape is core's `HeartbeatNotice`: a contract
 * the immune bridge reads without depending on this package.
 */
export type HeartbeatEvent = HeartbeatNotice;

/** Options for {@link HeartbeatWatchdog}. */
export interface HeartbeatWatchdogOptions extends MetricsOptions, RestartPolicy {
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
  readonly policy: Required<RestartPolicy>;
  state: ComponentState;
  lastHeartbeatAt: number;
  restarts: number;
  failedRestarts: number;
  /** Start times of restarts within the crash-loop window. */
  history: number[];
  consecutive: number;
  /** When the outage that the current restarts answer began (missed deadline or request). */
  outageSince?: number;
  lastMissedAt?: number;
  lastRecoveryMs?: number;
  lastError?: string;
  nextRestartAt?: number;
  crashLoopSince?: number;
  restartStartedAt?: number;
  deadline: NodeJS.Timeout | undefined;
  backoff: NodeJS.Timeout | undefined;
  restarting: Promise<ComponentStatus> | undefined;
}

/** One recovery, for the S01 timeline and the dashboard. */
export interface RecoveryRecord {
  readonly component: string;
  readonly reason: string;
  readonly missedAt: number;
  /** The first heartbeat after the restart (the restart's end for unwatched components). */
  readonly recoveredAt: number;
  readonly recoveryMs: number;
  /** Restarts it took. */
  readonly restarts: number;
}

const DEFAULT_POLICY: Required<RestartPolicy> = { backoffBaseMs: 1_000, backoffMaxMs: 60_000, crashLoopRestarts: 5, crashLoopWindowMs: 300_000 };

function policyOf(options: RestartPolicy, fallback: Required<RestartPolicy>): Required<RestartPolicy> {
  const policy = {
    backoffBaseMs: options.backoffBaseMs ?? fallback.backoffBaseMs,
    backoffMaxMs: options.backoffMaxMs ?? fallback.backoffMaxMs,
    crashLoopRestarts: options.crashLoopRestarts ?? fallback.crashLoopRestarts,
    crashLoopWindowMs: options.crashLoopWindowMs ?? fallback.crashLoopWindowMs,
  };
  assertNumberOption('backoffBaseMs', policy.backoffBaseMs, { min: 0 });
  assertNumberOption('backoffMaxMs', policy.backoffMaxMs, { min: policy.backoffBaseMs });
  assertNumberOption('crashLoopRestarts', policy.crashLoopRestarts, { min: 1, integer: true });
  assertNumberOption('crashLoopWindowMs', policy.crashLoopWindowMs, { min: 1 });
  return policy;
}

/**
 * Components register with a heartbeat deadline and a restart hook. A missed deadline restarts the component
 * with bounded retries, like Kubernetes' CrashLoopBackOff: the first restart is immediate, each further one
 * waits `backoffBaseMs * 2^(n-1)` (capped at `backoffMaxMs`) unless a heartbeat arrives in between, and after
 * `crashLoopRestarts` restarts within `crashLoopWindowMs` the component enters `crash_loop`: restarts stop
 * (event on the bus, error logged, visible in {@link HeartbeatWatchdog.states}) until it heartbeats or an
 * operator calls {@link HeartbeatWatchdog.reset}. A restarted component is `starting`, not `healthy`, until its
 * next heartbeat. Also the component registry behind the `restart_component` action.
 *
 * @example
 * await using watchdog = new HeartbeatWatchdog({ backoffBaseMs: 1_000, crashLoopRestarts: 5 });
 * watchdog.register('ingest', { deadlineMs: 5_000, restart: () => ingest.restart() });
 * setInterval(() => watchdog.heartbeat('ingest'), 1_000);
 */
export class HeartbeatWatchdog implements AsyncDisposable {
  readonly #entries = new Map<string, Entry>();
  readonly #recoveries: RecoveryRecord[] = [];
  readonly #notices: BusNotices<'heartbeat'>;
  readonly #restartTimeoutMs: number;
  readonly #historySize: number;
  readonly #policy: Required<RestartPolicy>;
  readonly #logger: Logger;
  readonly #now: () => number;
  readonly #restartsMetric;
  readonly #recoveryMetric;
  readonly #crashLoopMetric;
  readonly #abort = new AbortController();
  #closed = false;

  constructor(options: HeartbeatWatchdogOptions = {}) {
    this.#restartTimeoutMs = options.restartTimeoutMs ?? 10_000;
    assertNumberOption('restartTimeoutMs', this.#restartTimeoutMs, { min: 1 });
    this.#historySize = options.historySize ?? 100;
    assertNumberOption('historySize', this.#historySize, { min: 1, integer: true });
    this.#policy = policyOf(options, DEFAULT_POLICY);
    this.#logger = options.logger ?? silentLogger;
    this.#notices = new BusNotices('heartbeat', { bus: options.bus, logger: this.#logger, owner: 'HeartbeatWatchdog' });
    this.#now = options.now ?? Date.now;
    this.#restartsMetric = playbooksCounter(options, 'component_restarts_total', 'Component restarts by outcome', ['component', 'outcome']);
    this.#recoveryMetric = playbooksHistogram(options, 'component_recovery_seconds', 'Time from a missed heartbeat to the first heartbeat after the restart', ['component']);
    this.#crashLoopMetric = playbooksGauge(options, 'component_crash_loop', '1 while a component is in crash_loop (restarts stopped)', ['component']);
  }

  /**
   * A watchdog configured from the environment (see {@link heartbeatWatchdogOptionsFromEnv}); `overrides`, given in
   * code, win over the environment.
   *
   * @example
   * const watchdog = HeartbeatWatchdog.fromEnv(process.env, { bus });
   */
  static fromEnv(env: Env = process.env, overrides: HeartbeatWatchdogOptions = {}): HeartbeatWatchdog {
    return new HeartbeatWatchdog({ ...heartbeatWatchdogOptionsFromEnv(env), ...overrides });
  }

  /** @deprecated use {@link heartbeatWatchdogOptionsFromEnv} (or {@link HeartbeatWatchdog.fromEnv}). */
  static optionsFromEnv(env: Env = process.env): Pick<HeartbeatWatchdogOptions, 'restartTimeoutMs' | keyof RestartPolicy> {
    return heartbeatWatchdogOptionsFromEnv(env);
  }

  /** Registers a component; its deadline starts now. Throws `INVALID_INPUT` for a taken name. @returns a function that unregisters it. */
  register(name: string, options: WatchedComponentOptions): Subscription {
    if (this.#closed) throw new GuardError('CLOSED', 'HeartbeatWatchdog is closed');
    if (typeof name !== 'string' || name.length === 0) throw new GuardError('INVALID_OPTION', 'component name must be a non-empty string', { details: { field: 'name' } });
    if (this.#entries.has(name)) throw new GuardError('INVALID_INPUT', `component "${name}" is already registered`, { details: { field: 'name', name } });
    if (typeof options?.restart !== 'function') throw new GuardError('INVALID_OPTION', 'restart must be a function', { details: { field: 'restart' } });
    if (options.deadlineMs !== undefined) assertNumberOption('deadlineMs', options.deadlineMs, { min: 1 });
    const entry: Entry = {
      name,
      options,
      policy: policyOf(options, this.#policy),
      state: 'healthy',
      lastHeartbeatAt: this.#now(),
      restarts: 0,
      failedRestarts: 0,
      history: [],
      consecutive: 0,
      deadline: undefined,
      backoff: undefined,
      restarting: undefined,
    };
    this.#entries.set(name, entry);
    this.#armDeadline(entry);
    return createSubscription(() => {
      if (this.#entries.get(name) !== entry) return;
      this.#clearTimers(entry);
      this.#crashLoopMetric.remove({ component: name });
      this.#entries.delete(name);
    });
  }

  /**
   * Records a heartbeat of `name`: the component is healthy again (a restarted, backing-off or crash-looping
   * component recovers, and its backoff resets). Throws `UNKNOWN_COMPONENT` for unregistered names.
   */
  heartbeat(name: string): void {
    const entry = this.#entries.get(name);
    if (!entry) throw new GuardError('UNKNOWN_COMPONENT', `component "${name}" is not registered`, { details: { component: name } });
    const now = this.#now();
    entry.lastHeartbeatAt = now;
    if (this.#closed) return;
    if (entry.restarting) {
      // Settled when the hook ends: a beat during the restart counts once the restart is over.
      return;
    }
    if (entry.state !== 'healthy') this.#recovered(entry, now);
    this.#armDeadline(entry);
  }

  /**
   * Restarts `name` now (concurrent calls share one restart), whatever its state: an explicit request from an
   * operator or a playbook is not held back by the backoff; it counts towards the crash-loop window.
   * Rejects with the hook's error.
   */
  restart(name: string, reason = 'requested'): Promise<ComponentStatus> {
    if (this.#closed) return Promise.reject(new GuardError('CLOSED', 'HeartbeatWatchdog is closed'));
    const entry = this.#entries.get(name);
    if (!entry) return Promise.reject(new GuardError('UNKNOWN_COMPONENT', `component "${name}" is not registered`, { details: { component: name } }));
    if (entry.backoff) clearTimeout(entry.backoff);
    entry.backoff = undefined;
    return this.#restart(entry, reason, this.#now());
  }

  /**
   * Operator reset: clears the crash loop, the restart history and the backoff, and watches the component
   * afresh (a component that still does not heartbeat is restarted at once after its deadline).
   * Throws `UNKNOWN_COMPONENT` for unregistered names.
   */
  reset(name: string): ComponentStatus {
    const entry = this.#entries.get(name);
    if (!entry) throw new GuardError('UNKNOWN_COMPONENT', `component "${name}" is not registered`, { details: { component: name } });
    const wasCrashLoop = entry.state === 'crash_loop';
    this.#clearTimers(entry);
    entry.history = [];
    entry.consecutive = 0;
    entry.nextRestartAt = undefined;
    entry.crashLoopSince = undefined;
    this.#crashLoopMetric.set({ component: entry.name }, 0);
    if (!entry.restarting) entry.state = entry.options.deadlineMs === undefined ? 'healthy' : 'starting';
    this.#emit({ kind: 'reset', component: entry.name, reason: wasCrashLoop ? 'crash_loop_reset' : 'reset', at: this.#now() });
    this.#logger.info({ component: entry.name, previousState: wasCrashLoop ? 'crash_loop' : 'other' }, 'watchdog reset by operator');
    this.#armDeadline(entry);
    return this.#status(entry);
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

  /** Calls `listener` on every watchdog event (see {@link HeartbeatEvent}); a listener that throws or rejects is logged. */
  onEvent(listener: (event: HeartbeatEvent) => unknown): Subscription {
    return this.#notices.on(listener);
  }

  /** Stops every timer and aborts restarts in flight. */
  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    this.#abort.abort(new GuardError('CLOSED', 'HeartbeatWatchdog is closed'));
    const pending = [...this.#entries.values()].map((e) => e.restarting?.catch(() => undefined));
    for (const e of this.#entries.values()) this.#clearTimers(e);
    await Promise.all(pending);
    this.#notices.removeAllListeners();
  }

  [Symbol.asyncDispose](): Promise<void> {
    return this.close();
  }

  #clearTimers(entry: Entry): void {
    if (entry.deadline) clearTimeout(entry.deadline);
    if (entry.backoff) clearTimeout(entry.backoff);
    entry.deadline = undefined;
    entry.backoff = undefined;
  }

  #armDeadline(entry: Entry): void {
    const deadlineMs = entry.options.deadlineMs;
    if (deadlineMs === undefined || this.#closed || entry.state === 'crash_loop') return;
    if (entry.deadline) {
      entry.deadline.refresh();
      return;
    }
    entry.deadline = setTimeout(() => this.#missed(entry), deadlineMs);
    entry.deadline.unref();
  }

  #missed(entry: Entry): void {
    entry.deadline = undefined;
    if (this.#closed || this.#entries.get(entry.name) !== entry || entry.restarting || entry.backoff) return;
    const now = this.#now();
    const deadlineAt = Math.min(now, Math.max(entry.lastHeartbeatAt, entry.restartStartedAt ?? 0) + (entry.options.deadlineMs ?? 0));
    const first = entry.consecutive === 0;
    if (first) {
      entry.lastMissedAt = deadlineAt;
      entry.outageSince = deadlineAt;
    }
    entry.state = 'missed';
    this.#emit({ kind: 'missed', component: entry.name, reason: 'heartbeat_missed', at: now, attempt: entry.consecutive });
    this.#logger.warn({ component: entry.name, lateMs: now - entry.lastHeartbeatAt, attempt: entry.consecutive }, 'heartbeat missed; restarting component');
    this.#schedule(entry, 'heartbeat_missed');
  }

  /** The next restart of a watched component: now, after its backoff, or never (crash loop). */
  #schedule(entry: Entry, reason: string): void {
    if (this.#closed || this.#entries.get(entry.name) !== entry) return;
    const now = this.#now();
    const { crashLoopRestarts, crashLoopWindowMs, backoffBaseMs, backoffMaxMs } = entry.policy;
    entry.history = entry.history.filter((t) => now - t < crashLoopWindowMs);
    if (entry.history.length >= crashLoopRestarts) {
      this.#crashLoop(entry, now);
      return;
    }
    const delayMs = entry.consecutive === 0 ? 0 : Math.min(backoffMaxMs, backoffBaseMs * 2 ** (entry.consecutive - 1));
    if (delayMs === 0) {
      this.#restart(entry, reason, entry.outageSince ?? now).catch(() => undefined);
      return;
    }
    if (entry.state !== 'failed') entry.state = 'backoff';
    entry.nextRestartAt = now + delayMs;
    this.#emit({ kind: 'backoff', component: entry.name, reason, at: now, delayMs, attempt: entry.consecutive });
    this.#logger.warn({ component: entry.name, delayMs, attempt: entry.consecutive }, 'component restart backing off');
    entry.backoff = setTimeout(() => {
      entry.backoff = undefined;
      entry.nextRestartAt = undefined;
      if (this.#closed || this.#entries.get(entry.name) !== entry) return;
      this.#restart(entry, reason, entry.outageSince ?? this.#now()).catch(() => undefined);
    }, delayMs);
    entry.backoff.unref();
  }

  #crashLoop(entry: Entry, now: number): void {
    this.#clearTimers(entry);
    entry.state = 'crash_loop';
    entry.crashLoopSince = now;
    entry.nextRestartAt = undefined;
    this.#crashLoopMetric.set({ component: entry.name }, 1);
    const restartsInWindow = entry.history.length;
    const windowMs = entry.policy.crashLoopWindowMs;
    this.#emit({ kind: 'crash_loop', component: entry.name, reason: 'too_many_restarts', at: now, restartsInWindow, windowMs, ...(entry.lastError ? { error: entry.lastError } : {}) });
    this.#logger.error(
      { component: entry.name, restartsInWindow, windowMs },
      `component ${entry.name} is in crash_loop: ${restartsInWindow} restarts within ${windowMs} ms; restarts stopped until a heartbeat or a reset`,
    );
  }

  #recovered(entry: Entry, now: number): void {
    const wasCrashLoop = entry.state === 'crash_loop';
    const since = entry.outageSince;
    const restarts = entry.consecutive;
    this.#clearTimers(entry);
    entry.state = 'healthy';
    entry.consecutive = 0;
    entry.nextRestartAt = undefined;
    entry.outageSince = undefined;
    if (wasCrashLoop) {
      entry.history = [];
      entry.crashLoopSince = undefined;
      this.#crashLoopMetric.set({ component: entry.name }, 0);
    }
    if (since === undefined) return;
    const recoveryMs = Math.max(0, now - since);
    entry.lastRecoveryMs = recoveryMs;
    this.#record({ component: entry.name, reason: wasCrashLoop ? 'heartbeat_after_crash_loop' : 'heartbeat_after_restart', missedAt: since, recoveredAt: now, recoveryMs, restarts });
    this.#emit({ kind: 'recovered', component: entry.name, reason: wasCrashLoop ? 'heartbeat_after_crash_loop' : 'heartbeat_after_restart', at: now, recoveryMs, attempt: restarts });
  }

  #record(record: RecoveryRecord): void {
    this.#recoveries.push(record);
    if (this.#recoveries.length > this.#historySize) this.#recoveries.shift();
    this.#recoveryMetric.observe({ component: record.component }, record.recoveryMs / 1000);
  }

  #restart(entry: Entry, reason: string, since: number): Promise<ComponentStatus> {
    if (entry.restarting) return entry.restarting;
    const watched = entry.options.deadlineMs !== undefined;
    const startedAt = this.#now();
    if (entry.state === 'crash_loop') {
      // An explicit restart (operator, playbook) leaves the crash loop; a further miss may enter it again.
      entry.crashLoopSince = undefined;
      this.#crashLoopMetric.set({ component: entry.name }, 0);
    }
    entry.state = 'restarting';
    entry.restartStartedAt = startedAt;
    entry.outageSince ??= since;
    entry.history.push(startedAt);
    entry.consecutive++;
    if (entry.deadline) clearTimeout(entry.deadline);
    entry.deadline = undefined;
    const run = async (): Promise<ComponentStatus> => {
      // Aborted by close() or by the restart timeout, whichever comes first.
      using linked = linkSignal(this.#abort.signal, {
        timeoutMs: this.#restartTimeoutMs,
        timeoutReason: () => new GuardError('TIMEOUT', `restart of "${entry.name}" took longer than ${this.#restartTimeoutMs} ms`),
      });
      let failed = false;
      try {
        await raceAbort(
          Promise.resolve().then(() => entry.options.restart(reason, linked.signal)),
          linked.signal,
        );
        const now = this.#now();
        entry.restarts++;
        entry.lastError = undefined;
        this.#restartsMetric.inc({ component: entry.name, outcome: 'success' });
        this.#emit({ kind: 'restarted', component: entry.name, reason, at: now, recoveryMs: Math.max(0, now - (entry.outageSince ?? since)), attempt: entry.consecutive });
        if (!watched) {
          // Nothing to heartbeat: the hook's end is the recovery.
          entry.state = 'healthy';
          entry.consecutive = 0;
          const recoveryMs = Math.max(0, now - since);
          entry.lastRecoveryMs = recoveryMs;
          entry.outageSince = undefined;
          this.#record({ component: entry.name, reason, missedAt: since, recoveredAt: now, recoveryMs, restarts: 1 });
        } else {
          entry.state = 'starting';
        }
      } catch (error) {
        failed = true;
        entry.state = 'failed';
        entry.failedRestarts++;
        entry.lastError = errorMessage(error);
        this.#restartsMetric.inc({ component: entry.name, outcome: 'failed' });
        this.#emit({ kind: 'restart_failed', component: entry.name, reason, at: this.#now(), error: entry.lastError, attempt: entry.consecutive });
        this.#logger.error({ err: error, component: entry.name, attempt: entry.consecutive }, 'component restart failed');
        throw error;
      } finally {
        entry.restarting = undefined;
        if (this.#entries.get(entry.name) === entry && !this.#closed && watched) this.#afterRestart(entry, reason, failed, startedAt);
      }
      return this.#status(entry);
    };
    entry.restarting = run();
    return entry.restarting;
  }

  #afterRestart(entry: Entry, reason: string, failed: boolean, startedAt: number): void {
    if (!failed && entry.lastHeartbeatAt >= startedAt) {
      // It beat while the hook ran: the new instance is alive.
      this.#recovered(entry, entry.lastHeartbeatAt);
      this.#armDeadline(entry);
      return;
    }
    if (failed) {
      this.#schedule(entry, reason);
      return;
    }
    // Give the restarted component one deadline to heartbeat; a miss restarts it again after its backoff.
    this.#armDeadline(entry);
  }

  #status(e: Entry): ComponentStatus {
    const now = this.#now();
    return {
      name: e.name,
      state: e.state,
      watched: e.options.deadlineMs !== undefined,
      ...(e.options.deadlineMs === undefined ? {} : { deadlineMs: e.options.deadlineMs }),
      lastHeartbeatAt: e.lastHeartbeatAt,
      restarts: e.restarts,
      failedRestarts: e.failedRestarts,
      restartsInWindow: e.history.filter((t) => now - t < e.policy.crashLoopWindowMs).length,
      consecutiveRestarts: e.consecutive,
      ...(e.nextRestartAt === undefined ? {} : { nextRestartAt: e.nextRestartAt }),
      ...(e.crashLoopSince === undefined ? {} : { crashLoopSince: e.crashLoopSince }),
      ...(e.lastMissedAt === undefined ? {} : { lastMissedAt: e.lastMissedAt }),
      ...(e.lastRecoveryMs === undefined ? {} : { lastRecoveryMs: e.lastRecoveryMs }),
      ...(e.lastError === undefined ? {} : { lastError: e.lastError }),
    };
  }

  #emit(event: HeartbeatEvent): void {
    this.#notices.emit(event);
  }
}

/**
 * Reads `GUARD_WATCHDOG_RESTART_TIMEOUT` (10s), `GUARD_WATCHDOG_BACKOFF_BASE` (1s), `GUARD_WATCHDOG_BACKOFF_MAX`
 * (60s), `GUARD_WATCHDOG_CRASH_LOOP_RESTARTS` (5) and `GUARD_WATCHDOG_CRASH_LOOP_WINDOW` (5m). A bad value throws
 * `INVALID_ENV` naming the variable.
 *
 * @example
 * const watchdog = new HeartbeatWatchdog({ ...heartbeatWatchdogOptionsFromEnv(process.env), bus });
 */
export function heartbeatWatchdogOptionsFromEnv(env: Env = process.env): Pick<HeartbeatWatchdogOptions, 'restartTimeoutMs' | keyof RestartPolicy> {
  const r = envReader(env);
  return {
    restartTimeoutMs: r.durationMs('GUARD_WATCHDOG_RESTART_TIMEOUT', 10_000, 'ms', { min: 1 }),
    backoffBaseMs: r.durationMs('GUARD_WATCHDOG_BACKOFF_BASE', DEFAULT_POLICY.backoffBaseMs, 'ms', { min: 0 }),
    backoffMaxMs: r.durationMs('GUARD_WATCHDOG_BACKOFF_MAX', DEFAULT_POLICY.backoffMaxMs, 'ms', { min: 0 }),
    crashLoopRestarts: r.number('GUARD_WATCHDOG_CRASH_LOOP_RESTARTS', DEFAULT_POLICY.crashLoopRestarts, { min: 1, integer: true }),
    crashLoopWindowMs: r.durationMs('GUARD_WATCHDOG_CRASH_LOOP_WINDOW', DEFAULT_POLICY.crashLoopWindowMs, 'ms', { min: 1 }),
  };
}
