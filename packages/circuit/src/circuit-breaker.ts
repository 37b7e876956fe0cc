import { GuardError, assertNumberOption, isGuardError, raceAbort, silentLogger } from '@guard/core';
import type { BreakerStateChange, CircuitState, GuardBus, Logger, Subscription } from '@guard/core';
import { CircuitOpenError } from './errors.js';
import { CALL_DELTAS, STATE_CODE, circuitMetrics } from './metrics.js';
import type { BreakerMetricsSource, CircuitMetrics, CircuitMetricsOptions } from './metrics.js';
import { DeadlineTimers } from './deadline-timers.js';
import type { DeadlineBucket, DeadlineEntry } from './deadline-timers.js';
import { INVOKE, invokeNext } from './policy.js';
import type { ExecuteOptions, Operation, Policy } from './policy.js';

/** How a breaker decides to open. */
export type CircuitBreakerMode = 'consecutive' | 'rate';

/**
 * A breaker's state as plain data: what `toJSON()` returns and `initialState` accepts.
 *
 * @example
 * const snapshot: CircuitBreakerSnapshot = breaker.toJSON();
 */
export interface CircuitBreakerSnapshot {
  readonly name: string;
  readonly mode: CircuitBreakerMode;
  readonly state: CircuitState;
  /** Epoch ms when the breaker last opened; null when it never did or is closed. */
  readonly openedAt: number | null;
  readonly consecutiveFailures: number;
  /** Successful probes since the breaker went half-open. */
  readonly halfOpenSuccesses: number;
  readonly isolated: boolean;
  /** Rate mode only: calls and failures in the rolling window. */
  readonly window?: { readonly calls: number; readonly failures: number };
}

/**
 * Options of {@link CircuitBreaker}.
 *
 * @example
 * const options: CircuitBreakerOptions = { name: 'search', mode: 'rate', failureRateThreshold: 0.5, minimumThroughput: 20 };
 */
export interface CircuitBreakerOptions extends CircuitMetricsOptions {
  /** Names the breaker in events, errors and metric labels (keep the set small and fixed); default `'default'`. */
  readonly name?: string;
  /** `consecutive` (default): open after `failureThreshold` failures in a row. `rate`: open on a failure ratio over a window. */
  readonly mode?: CircuitBreakerMode;
  /** Consecutive mode: failures in a row that open the circuit; default 5. */
  readonly failureThreshold?: number;
  /** Rate mode: failure ratio (0-1] over the window that opens the circuit; default 0.5. */
  readonly failureRateThreshold?: number;
  /** Rate mode: length of the rolling window; default 10 000 ms. */
  readonly windowMs?: number;
  /** Rate mode: buckets the window is split into (memory is O(buckets)); default 10. */
  readonly windowBuckets?: number;
  /** Rate mode: calls the window needs before the ratio may open the circuit; default 10. */
  readonly minimumThroughput?: number;
  /** How long the circuit stays open before it lets probes through; default 60 000 ms. */
  readonly resetTimeoutMs?: number;
  /** Probes allowed at once while half-open; others fail fast; default 1. */
  readonly halfOpenMaxConcurrent?: number;
  /** Successful probes that close the circuit; default 3. */
  readonly halfOpenSuccesses?: number;
  /**
   * How long a half-open probe may run before it counts as orphaned; default 30 000 ms. Sent with every
   * `breakerStateChange` event so the C4 detector (half_open_orphan) can call `reopen()`. The breaker starts no timer for it.
   */
  readonly probeTimeoutMs?: number;
  /** Which errors count as failures; others pass through without touching the state. Default: every error. */
  readonly shouldCount?: (error: unknown) => boolean;
  /** Hydrates the state, e.g. from a saved `toJSON()`. A `half_open` snapshot resumes as open with its reset time elapsed. */
  readonly initialState?: Partial<Omit<CircuitBreakerSnapshot, 'name' | 'mode' | 'window'>>;
  /** Receives `breakerStateChange` events. */
  readonly bus?: GuardBus;
  /** Where errors thrown by state listeners are reported. */
  readonly logger?: Logger;
}

/**
 * A state listener: gets the new state and the full change.
 *
 * @example
 * const log: StateChangeListener = (state, change) => console.log(change.circuit, change.from, '->', state);
 */
export type StateChangeListener = (state: CircuitState, change: BreakerStateChange) => void;

const CLOSED = 0;
const HALF_OPEN = 1;
const OPEN = 2;
const STATE_NAMES: readonly CircuitState[] = ['closed', 'half_open', 'open'];
const STATE_CODES: Readonly<Record<string, number>> = { closed: CLOSED, half_open: HALF_OPEN, open: OPEN };

/**
 * Rolling failure-rate window: counts per time bucket, O(buckets) memory. A success reads no clock: an unref'd
 * timer marks the current bucket stale when it ends, and only then does the next call read `Date.now()` and roll
 * the window (one timer per bucket while calls flow, none while idle). A success that runs before a late timer
 * fires lands in the bucket that just ended, so it may leave the window up to one event-loop turn early.
 * Failures always read the clock, so the ratio that opens the circuit is computed on the current window.
 */
class RateWindow {
  readonly failureRate: number;
  readonly minimumThroughput: number;
  readonly #bucketMs: number;
  readonly #ok: Uint32Array;
  readonly #failed: Uint32Array;
  #head = -1;
  #slot = 0;
  /** True while the head bucket is known to be the current one (its end timer has not fired). */
  #fresh = false;
  #timer: NodeJS.Timeout | undefined;
  readonly #markStale = () => {
    this.#fresh = false;
    this.#timer = undefined;
  };
  calls = 0;
  failures = 0;

  constructor(windowMs: number, buckets: number, failureRate: number, minimumThroughput: number) {
    this.failureRate = failureRate;
    this.minimumThroughput = minimumThroughput;
    this.#bucketMs = windowMs / buckets;
    this.#ok = new Uint32Array(buckets);
    this.#failed = new Uint32Array(buckets);
  }

  recordSuccess(): void {
    if (!this.#fresh) this.#advance(Date.now());
    this.#ok[this.#slot]!++;
    this.calls++;
  }

  recordFailure(now: number): void {
    this.#advance(now);
    this.#failed[this.#slot]!++;
    this.failures++;
    this.calls++;
  }

  /** Drops buckets that fell out of the window and arms the timer that ends the head bucket. */
  #advance(now: number): void {
    const size = this.#ok.length;
    const index = Math.floor(now / this.#bucketMs);
    let moved = !this.#fresh;
    if (index > this.#head) {
      moved = true;
      if (this.#head < 0 || index - this.#head >= size) {
        this.reset();
      } else {
        for (let i = this.#head + 1; i <= index; i++) {
          const slot = i % size;
          this.calls -= this.#ok[slot]! + this.#failed[slot]!;
          this.failures -= this.#failed[slot]!;
          this.#ok[slot] = 0;
          this.#failed[slot] = 0;
        }
      }
      this.#head = index;
      this.#slot = index % size;
    }
    if (moved) {
      if (this.#timer !== undefined) clearTimeout(this.#timer);
      this.#timer = setTimeout(this.#markStale, Math.max(1, (this.#head + 1) * this.#bucketMs - now));
      this.#timer.unref();
      this.#fresh = true;
    }
  }

  /** Stops the bucket timer (the breaker was closed). */
  dispose(): void {
    if (this.#timer !== undefined) clearTimeout(this.#timer);
    this.#timer = undefined;
    this.#fresh = false;
  }

  /** Counts as of `now` (expired buckets dropped). */
  snapshot(now: number): { calls: number; failures: number } {
    this.#advance(now);
    return { calls: this.calls, failures: this.failures };
  }

  reset(): void {
    this.#ok.fill(0);
    this.#failed.fill(0);
    this.calls = 0;
    this.failures = 0;
  }
}

/** A closed-state call with a `timeoutMs`: one small object per call, no timer, no signal of its own. */
class TimedCall<T> implements DeadlineEntry {
  slot = 0;
  bucket: DeadlineBucket | undefined = undefined;
  settled = false;
  resolve!: (value: T) => void;
  reject!: (error: unknown) => void;
  readonly epoch: number;
  readonly #onExpire: (call: TimedCall<T>, reason: unknown) => void;

  constructor(epoch: number, onExpire: (call: TimedCall<T>, reason: unknown) => void) {
    this.epoch = epoch;
    this.#onExpire = onExpire;
  }

  expire(reason: unknown): void {
    this.#onExpire(this, reason);
  }
}

/** The deadline of a call that has its own controller (a caller's signal, or a probe): it aborts that controller. */
class ControllerDeadline implements DeadlineEntry {
  slot = 0;
  bucket: DeadlineBucket | undefined = undefined;
  readonly #controller: AbortController;

  constructor(controller: AbortController) {
    this.#controller = controller;
  }

  expire(reason: unknown): void {
    this.#controller.abort(reason);
  }
}

/** A breaker's deadline buckets and the one callback that expires its timed calls. */
interface Deadlines {
  readonly timers: DeadlineTimers;
  readonly expire: (call: TimedCall<unknown>, reason: unknown) => void;
}

const MAX_TIMEOUT_MS = 2_147_483_647;

/**
 * A circuit breaker: `closed` -> `open` after failures -> `half_open` after `resetTimeoutMs` -> `closed` after
 * `halfOpenSuccesses` good probes (or `open` again on a failed one). No state timers: the move to half-open happens on
 * the first call after the reset time (rate mode arms one unref'd timer per window bucket while calls flow, so a
 * success reads no clock). A call costs a state check and two integer updates; a signal (AbortController)
 * is created only for a caller's `signal` or a half-open probe.
 * Timeouts share one timer and one signal per deadline millisecond (see `DeadlineTimers`) instead of an
 * `AbortController` and a `setTimeout` per call.
 *
 * @example
 * await using breaker = new CircuitBreaker({ name: 'payments', failureThreshold: 5, resetTimeoutMs: 30_000 });
 * const data = await breaker.execute((signal) => fetch(url, { signal }), { timeoutMs: 2_000 });
 * breaker.onStateChange((state) => console.log('payments circuit', state));
 */
export class CircuitBreaker implements Policy, BreakerMetricsSource, AsyncDisposable {
  readonly name: string;
  readonly probeTimeoutMs: number;
  #state = CLOSED;
  #disposed = false;
  /** Bumped on every transition; results of calls started in an older epoch do not move the state. */
  #epoch = 0;
  #openedAt = 0;
  #consecutive = 0;
  #probeSuccesses = 0;
  #probing = 0;
  #isolated = 0;
  #isolation = 0;
  #ok = 0;
  #failed = 0;
  #timedOut = 0;
  #rejected = 0;
  readonly #failureThreshold: number;
  readonly #resetTimeoutMs: number;
  readonly #halfOpenMax: number;
  readonly #halfOpenSuccesses: number;
  readonly #shouldCount: ((error: unknown) => boolean) | undefined;
  readonly #window: RateWindow | undefined;
  readonly #bus: GuardBus | undefined;
  readonly #logger: Logger;
  readonly #metrics: CircuitMetrics | undefined;
  readonly #metricsRef: WeakRef<BreakerMetricsSource> | undefined;
  #reported: number[] | undefined;
  #listeners: StateChangeListener[] | undefined;
  #probes: Set<AbortController> | undefined;
  /** Made on the first call with a `timeoutMs`, so a breaker that never times calls carries none of it. */
  #deadlines: Deadlines | undefined;

  constructor(options: CircuitBreakerOptions = {}) {
    const name = options.name ?? 'default';
    if (typeof name !== 'string' || name === '') {
      throw new GuardError('INVALID_OPTION', 'name must be a non-empty string', { details: { field: 'name' } });
    }
    const mode = options.mode ?? 'consecutive';
    if (mode !== 'consecutive' && mode !== 'rate') {
      throw new GuardError('INVALID_OPTION', `mode must be 'consecutive' or 'rate', got ${String(mode)}`, { details: { field: 'mode' } });
    }
    const {
      failureThreshold = 5,
      failureRateThreshold = 0.5,
      windowMs = 10_000,
      windowBuckets = 10,
      minimumThroughput = 10,
      resetTimeoutMs = 60_000,
      halfOpenMaxConcurrent = 1,
      halfOpenSuccesses = 3,
      probeTimeoutMs = 30_000,
      shouldCount,
    } = options;
    assertNumberOption('failureThreshold', failureThreshold, { min: 1, integer: true });
    assertNumberOption('failureRateThreshold', failureRateThreshold, { min: Number.MIN_VALUE, max: 1 });
    assertNumberOption('windowMs', windowMs, { min: 1, max: Number.MAX_SAFE_INTEGER });
    assertNumberOption('windowBuckets', windowBuckets, { min: 1, max: 10_000, integer: true });
    assertNumberOption('minimumThroughput', minimumThroughput, { min: 1, integer: true });
    assertNumberOption('resetTimeoutMs', resetTimeoutMs, { min: 0, max: Number.MAX_SAFE_INTEGER });
    assertNumberOption('halfOpenMaxConcurrent', halfOpenMaxConcurrent, { min: 1, integer: true });
    assertNumberOption('halfOpenSuccesses', halfOpenSuccesses, { min: 1, integer: true });
    assertNumberOption('probeTimeoutMs', probeTimeoutMs, { min: 1, max: Number.MAX_SAFE_INTEGER });
    if (shouldCount !== undefined && typeof shouldCount !== 'function') {
      throw new GuardError('INVALID_OPTION', 'shouldCount must be a function', { details: { field: 'shouldCount' } });
    }
    this.name = name;
    this.probeTimeoutMs = probeTimeoutMs;
    this.#failureThreshold = failureThreshold;
    this.#resetTimeoutMs = resetTimeoutMs;
    this.#halfOpenMax = halfOpenMaxConcurrent;
    this.#halfOpenSuccesses = halfOpenSuccesses;
    this.#shouldCount = shouldCount;
    this.#window = mode === 'rate' ? new RateWindow(windowMs, windowBuckets, failureRateThreshold, minimumThroughput) : undefined;
    this.#bus = options.bus;
    this.#logger = options.logger ?? silentLogger;
    if (options.initialState !== undefined) this.#hydrate(options.initialState);
    this.#metrics = circuitMetrics(options);
    this.#metricsRef = this.#metrics?.addBreaker(this);
  }

  #hydrate(initial: NonNullable<CircuitBreakerOptions['initialState']>): void {
    const state = initial.state ?? 'closed';
    const code = STATE_CODES[state];
    if (code === undefined) {
      throw new GuardError('INVALID_OPTION', `initialState.state must be closed, open or half_open, got ${String(state)}`, {
        details: { field: 'initialState.state' },
      });
    }
    if (initial.consecutiveFailures !== undefined) {
      assertNumberOption('initialState.consecutiveFailures', initial.consecutiveFailures, { min: 0, integer: true });
      this.#consecutive = initial.consecutiveFailures;
    }
    if (initial.openedAt !== undefined && initial.openedAt !== null) {
      assertNumberOption('initialState.openedAt', initial.openedAt, { min: 0 });
    }
    const now = Date.now();
    if (code === OPEN) this.#openedAt = initial.openedAt ?? now;
    if (code === HALF_OPEN) this.#openedAt = now - this.#resetTimeoutMs;
    this.#state = code === CLOSED ? CLOSED : OPEN;
    if (initial.isolated === true) {
      this.#isolated = 1;
      this.#state = OPEN;
      this.#openedAt ||= now;
    }
  }

  /** The current state. An open breaker whose reset time has passed reports `open` until the next call probes it. */
  get state(): CircuitState {
    return STATE_NAMES[this.#state]!;
  }

  /** `consecutive` or `rate`. */
  get mode(): CircuitBreakerMode {
    return this.#window === undefined ? 'consecutive' : 'rate';
  }

  /** True once `close()` was called. */
  get closed(): boolean {
    return this.#disposed;
  }

  /**
   * Runs `fn` unless the circuit is open. `fn` gets a signal only when one is needed: a `timeoutMs`, a caller's
   * `signal`, or a half-open probe (which `reopen()` may abort); otherwise `undefined`. Under a `timeoutMs` alone, an
   * `fn` that declares no parameter (`fn.length === 0`: also a rest or default-valued one) gets `undefined`, and one
   * that does gets the signal shared by the calls due in the same millisecond: it aborts at the deadline (also after
   * this call settled, while new calls still join its bucket, which is harmless to a callee that removed its
   * listeners, as `fetch` does).
   * Rejects with `CIRCUIT_OPEN` without calling `fn`, `TIMEOUT` after `timeoutMs`, or the caller's abort reason.
   *
   * @example
   * const user = await breaker.execute((signal) => fetchUser(id, { signal }), { timeoutMs: 1_000 });
   */
  execute<T>(fn: Operation<T>, options?: ExecuteOptions): Promise<T> {
    if (this.#state === CLOSED && !this.#disposed) {
      if (options === undefined) return this.#runPlain(fn);
      const timeoutMs = options.timeoutMs;
      if (options.signal === undefined && typeof timeoutMs === 'number' && timeoutMs >= 0 && timeoutMs <= MAX_TIMEOUT_MS) {
        return this.#timed(fn, timeoutMs, undefined, 0);
      }
    }
    return this.#enter(fn, options?.signal, options?.timeoutMs, undefined, 0);
  }

  /** @internal */
  [INVOKE]<T>(fn: Operation<T>, signal: AbortSignal | undefined, chain: readonly Policy[], index: number): Promise<T> {
    if (this.#state === CLOSED && signal === undefined && !this.#disposed) return this.#run(fn, undefined, chain, index);
    return this.#enter(fn, signal, undefined, chain, index);
  }

  /** Every case but the closed fast paths: refusals (no stack captured), probes, caller signals. */
  #enter<T>(
    fn: Operation<T>,
    signal: AbortSignal | undefined,
    timeoutMs: number | undefined,
    chain: readonly Policy[] | undefined,
    index: number,
  ): Promise<T> {
    let probe = false;
    try {
      if (this.#disposed) throw new GuardError('CLOSED', `CircuitBreaker "${this.name}" is closed`, { details: { circuit: this.name } });
      if (timeoutMs !== undefined) assertNumberOption('timeoutMs', timeoutMs, { min: 0, max: MAX_TIMEOUT_MS });
      signal?.throwIfAborted();
    } catch (error) {
      return Promise.reject(error);
    }
    if (this.#state !== CLOSED) {
      if (this.#isolated > 0) return this.#refuse('open', true, 0);
      if (this.#state === OPEN) {
        const waitedMs = Date.now() - this.#openedAt;
        if (waitedMs < this.#resetTimeoutMs) return this.#refuse('open', false, this.#resetTimeoutMs - waitedMs);
        this.#transition(HALF_OPEN);
      }
      if (this.#probing >= this.#halfOpenMax) return this.#refuse('half_open', false, 0);
      probe = true;
    }
    if (!probe && signal === undefined) {
      if (timeoutMs === undefined) return this.#run(fn, undefined, chain, index);
      return this.#timed(fn, timeoutMs, chain, index);
    }
    return this.#guarded(fn, signal, timeoutMs, probe, chain, index);
  }

  #refuse(state: CircuitState, isolated: boolean, retryAfterMs: number): Promise<never> {
    this.#rejected++;
    return Promise.reject(new CircuitOpenError(this.name, state, isolated, retryAfterMs));
  }

  /**
   * Closed with a `timeoutMs` and no caller signal: the call joins the deadline bucket of its millisecond, whose one
   * timer and one signal serve every call due then. The signal is made only when an `fn` declares a parameter (one
   * that takes none cannot read it). At the deadline the signal aborts with `TIMEOUT` and the call rejects with it,
   * whether or not `fn` settles.
   */
  #timed<T>(fn: Operation<T>, timeoutMs: number, chain: readonly Policy[] | undefined, index: number): Promise<T> {
    const deadlines = (this.#deadlines ??= this.#makeDeadlines());
    const call = new TimedCall<T>(this.#epoch, deadlines.expire as (call: TimedCall<T>, reason: unknown) => void);
    const promise = new Promise<T>((resolve, reject) => {
      call.resolve = resolve;
      call.reject = reject;
    });
    const bucket = deadlines.timers.add(call, timeoutMs);
    const signal = chain !== undefined || fn.length > 0 ? bucket.signal : undefined;
    let result: T | PromiseLike<T>;
    try {
      result = chain === undefined ? fn(signal) : invokeNext(fn, signal, chain, index);
    } catch (error) {
      this.#timedSettled(call, error, true);
      return promise;
    }
    Promise.resolve(result).then(
      (value) => this.#timedSettled(call, value, false),
      (error: unknown) => this.#timedSettled(call, error, true),
    );
    return promise;
  }

  #makeDeadlines(): Deadlines {
    const timers = new DeadlineTimers(
      (timeoutMs) =>
        new GuardError('TIMEOUT', `circuit "${this.name}" call timed out after ${timeoutMs} ms`, { details: { circuit: this.name, timeoutMs } }),
    );
    const expire = (call: TimedCall<unknown>, reason: unknown): void => {
      if (call.settled) return;
      call.settled = true;
      this.#timedOut++;
      this.#countFailure(call.epoch, false);
      call.reject(reason);
    };
    return { timers, expire };
  }

  #timedSettled<T>(call: TimedCall<T>, outcome: unknown, failed: boolean): void {
    if (call.settled) return; // the deadline won
    call.settled = true;
    this.#deadlines!.timers.remove(call);
    if (failed) {
      if (this.#shouldCount === undefined || this.#safeShouldCount(outcome)) {
        this.#failed++;
        this.#countFailure(call.epoch, false);
      }
      call.reject(outcome);
    } else {
      this.#onSuccess(call.epoch, false);
      call.resolve(outcome as T);
    }
  }

  /** The hottest path: closed, no options, no chain; the success bookkeeping is inlined. */
  async #runPlain<T>(fn: Operation<T>): Promise<T> {
    const epoch = this.#epoch;
    let value: T;
    try {
      value = await fn(undefined);
    } catch (error) {
      this.#onFailure(error, epoch, false, undefined);
      throw error;
    }
    this.#ok++;
    if (epoch === this.#epoch) {
      if (this.#window === undefined) this.#consecutive = 0;
      else this.#window.recordSuccess();
    }
    return value;
  }

  /** The hot path: closed, no signal. */
  async #run<T>(fn: Operation<T>, signal: undefined, chain: readonly Policy[] | undefined, index: number): Promise<T> {
    const epoch = this.#epoch;
    let value: T;
    try {
      value = await (chain === undefined ? fn(signal) : invokeNext(fn, signal, chain, index));
    } catch (error) {
      this.#onFailure(error, epoch, false, undefined);
      throw error;
    }
    this.#onSuccess(epoch, false);
    return value;
  }

  /** The slow path: a timeout, a caller's signal, or a probe. */
  async #guarded<T>(
    fn: Operation<T>,
    callerSignal: AbortSignal | undefined,
    timeoutMs: number | undefined,
    probe: boolean,
    chain: readonly Policy[] | undefined,
    index: number,
  ): Promise<T> {
    const epoch = this.#epoch;
    let signal = callerSignal;
    let controller: AbortController | undefined;
    let deadline: ControllerDeadline | undefined;
    let onAbort: (() => void) | undefined;
    if (probe || timeoutMs !== undefined) {
      const own = (controller = new AbortController());
      signal = own.signal;
      if (timeoutMs !== undefined) {
        // the deadline joins the shared buckets; only this call's own controller aborts
        deadline = new ControllerDeadline(own);
        (this.#deadlines ??= this.#makeDeadlines()).timers.add(deadline, timeoutMs);
      }
      if (callerSignal !== undefined) {
        onAbort = () => own.abort(callerSignal.reason);
        callerSignal.addEventListener('abort', onAbort, { once: true });
      }
      if (probe) {
        this.#probing++;
        (this.#probes ??= new Set()).add(own);
      }
    }
    try {
      const value = await raceAbort(chain === undefined ? fn(signal) : invokeNext(fn, signal, chain, index), signal!);
      this.#onSuccess(epoch, probe);
      return value;
    } catch (error) {
      this.#onFailure(error, epoch, probe, signal);
      throw error;
    } finally {
      if (deadline !== undefined) this.#deadlines!.timers.remove(deadline);
      if (onAbort !== undefined) callerSignal!.removeEventListener('abort', onAbort);
      if (probe) {
        this.#probing--;
        this.#probes!.delete(controller!);
      }
    }
  }

  #onSuccess(epoch: number, probe: boolean): void {
    this.#ok++;
    if (epoch !== this.#epoch) return;
    if (probe) {
      if (++this.#probeSuccesses >= this.#halfOpenSuccesses) this.#transition(CLOSED);
    } else if (this.#window === undefined) {
      this.#consecutive = 0;
    } else {
      this.#window.recordSuccess();
    }
  }

  #onFailure(error: unknown, epoch: number, probe: boolean, signal: AbortSignal | undefined): void {
    if (signal !== undefined && signal.aborted && error === signal.reason) {
      // Our timeout counts as a failure; a caller's abort or reopen() does not.
      if (!isGuardError(error, 'TIMEOUT')) return;
      this.#timedOut++;
    } else {
      if (this.#shouldCount !== undefined && !this.#safeShouldCount(error)) return;
      this.#failed++;
    }
    this.#countFailure(epoch, probe);
  }

  /** Moves the state for a counted failure (a timeout or an error `shouldCount` accepts). */
  #countFailure(epoch: number, probe: boolean): void {
    if (epoch !== this.#epoch) return;
    if (probe) {
      this.#transition(OPEN);
    } else if (this.#window === undefined) {
      if (++this.#consecutive >= this.#failureThreshold) this.#transition(OPEN);
    } else {
      const window = this.#window;
      window.recordFailure(Date.now());
      if (window.calls >= window.minimumThroughput && window.failures / window.calls >= window.failureRate) this.#transition(OPEN);
    }
  }

  #safeShouldCount(error: unknown): boolean {
    try {
      return this.#shouldCount!(error);
    } catch (predicateError) {
      this.#logger.error({ err: predicateError, circuit: this.name }, 'circuit shouldCount predicate threw; counting the error');
      return true;
    }
  }

  #transition(to: number): void {
    const from = this.#state;
    if (from === to) return;
    const now = Date.now();
    this.#state = to;
    this.#epoch++;
    this.#probeSuccesses = 0;
    this.#consecutive = 0;
    if (to === OPEN) this.#openedAt = now;
    else if (to === CLOSED) this.#window?.reset();
    this.#metrics?.transition(this.name, STATE_NAMES[to]!);
    const change: BreakerStateChange = {
      circuit: this.name,
      from: STATE_NAMES[from]!,
      to: STATE_NAMES[to]!,
      at: now,
      probeTimeoutMs: this.probeTimeoutMs,
    };
    const listeners = this.#listeners;
    if (listeners !== undefined) {
      for (const listener of listeners.slice()) {
        try {
          listener(change.to, change);
        } catch (error) {
          this.#logger.error({ err: error, circuit: this.name }, 'circuit state listener threw');
        }
      }
    }
    this.#bus?.emit('breakerStateChange', change);
  }

  /**
   * Subscribes to state changes; call the returned function (or `using` it) to unsubscribe.
   *
   * @example
   * using sub = breaker.onStateChange((state, change) => log.warn(change, `circuit ${state}`));
   */
  onStateChange(listener: StateChangeListener): Subscription {
    const listeners = (this.#listeners ??= []);
    listeners.push(listener);
    let active = true;
    const off = (() => {
      if (!active) return;
      active = false;
      const list = this.#listeners;
      const at = list?.indexOf(listener) ?? -1;
      if (at >= 0) list!.splice(at, 1);
      if (list?.length === 0) this.#listeners = undefined;
    }) as Subscription;
    off[Symbol.dispose] = off;
    return off;
  }

  /** Number of state listeners (for leak checks). */
  get listenerCount(): number {
    return this.#listeners?.length ?? 0;
  }

  /**
   * Holds the circuit open (every call fails with `CIRCUIT_OPEN`, `isolated: true`) until every returned handle is
   * released; then it closes.
   *
   * @example
   * using hold = breaker.isolate(); // maintenance window
   */
  isolate(): Subscription {
    this.#isolated++;
    const isolation = this.#isolation;
    this.#transition(OPEN);
    let released = false;
    const release = (() => {
      if (released) return;
      released = true;
      if (isolation !== this.#isolation || this.#isolated === 0) return;
      if (--this.#isolated === 0 && !this.#disposed) this.#transition(CLOSED);
    }) as Subscription;
    release[Symbol.dispose] = release;
    return release;
  }

  /**
   * Closes the circuit and clears its counters and isolation; results of calls already running no longer move it.
   *
   * @example
   * breaker.reset();
   */
  reset(): void {
    this.#isolated = 0;
    this.#isolation++;
    this.#consecutive = 0;
    this.#window?.reset();
    if (this.#state === CLOSED) this.#epoch++;
    else this.#transition(CLOSED);
  }

  /**
   * Aborts in-flight half-open probes (their signals abort with an `ABORTED` error carrying `reason`) and opens the
   * circuit again. The C4 detector calls this for a probe that outlived `probeTimeoutMs`.
   *
   * @example
   * breaker.reopen('probe exceeded 30000 ms');
   */
  reopen(reason = 'reopened'): void {
    if (this.#disposed) return;
    this.#transition(OPEN);
    this.#abortProbes(reason);
  }

  #abortProbes(reason: string): void {
    const probes = this.#probes;
    if (probes === undefined || probes.size === 0) return;
    const error = new GuardError('ABORTED', `circuit "${this.name}" probe aborted: ${reason}`, {
      details: { circuit: this.name, reason },
    });
    for (const controller of Array.from(probes)) controller.abort(error);
  }

  /** Probes running now (half-open). */
  get probesInFlight(): number {
    return this.#probing;
  }

  /**
   * The state as plain data, for persistence or dashboards.
   *
   * @example
   * const saved = JSON.stringify(breaker); // later: new CircuitBreaker({ initialState: JSON.parse(saved) })
   */
  toJSON(): CircuitBreakerSnapshot {
    const snapshot: CircuitBreakerSnapshot = {
      name: this.name,
      mode: this.mode,
      state: this.state,
      openedAt: this.#state === CLOSED ? null : this.#openedAt,
      consecutiveFailures: this.#consecutive,
      halfOpenSuccesses: this.#probeSuccesses,
      isolated: this.#isolated > 0,
    };
    return this.#window === undefined ? snapshot : { ...snapshot, window: this.#window.snapshot(Date.now()) };
  }

  /** @internal */
  [STATE_CODE](): number {
    return this.#state;
  }

  /** @internal */
  [CALL_DELTAS](): readonly number[] {
    const counts = [this.#ok, this.#failed, this.#timedOut, this.#rejected];
    const reported = this.#reported ?? [0, 0, 0, 0];
    this.#reported = counts;
    return counts.map((count, i) => count - reported[i]!);
  }

  /**
   * Aborts running probes, reports final metrics and rejects later calls with `CLOSED`. Safe to call twice.
   *
   * @example
   * await breaker.close();
   */
  close(): Promise<void> {
    if (this.#disposed) return Promise.resolve();
    this.#disposed = true;
    this.#abortProbes('breaker closed');
    this.#window?.dispose();
    if (this.#metricsRef !== undefined) this.#metrics!.removeBreaker(this.#metricsRef);
    this.#listeners = undefined;
    return Promise.resolve();
  }

  [Symbol.asyncDispose](): Promise<void> {
    return this.close();
  }
}
