import { Emitter, GuardError, assertNumberOption, isGuardError, linkSignal, raceAbort, silentLogger } from '@guard/core';
import type { BreakerStateChange, CircuitState, Env, GuardBus, LinkedSignal, Logger, Subscription } from '@guard/core';
import type { CircuitBreakerMode } from './breaker.js';
import type { CircuitBreakerSnapshot } from './breaker-snapshot.js';
import { hydratedState } from './breaker-snapshot.js';
import { breakerSettings } from './circuit-breaker-options.js';
import type { CircuitBreakerOptions } from './circuit-breaker-options.js';
import type { ConsecutiveBreaker } from './consecutive-breaker.js';
import { CircuitOpenError } from './errors.js';
import { circuitBreakerOptionsFromEnv } from './from-env.js';
import { CALL_DELTAS, STATE_CODE, circuitMetrics } from './metrics.js';
import type { BreakerMetricsSource, CircuitMetrics } from './metrics.js';
import { DeadlineTimers, MAX_TIMER_MS } from './deadline-timers.js';
import { INVOKE, invokeNext } from './policy.js';
import type { ExecuteOptions, Operation, Policy } from './policy.js';
import type { RateBreaker } from './rate-breaker.js';
import { ControllerDeadline, TimedCall } from './timed-call.js';

export type { CircuitBreakerMode } from './breaker.js';
export type { CircuitBreakerSnapshot } from './breaker-snapshot.js';
export type { CircuitBreakerOptions } from './circuit-breaker-options.js';

/**
 * A state listener: gets the new state and the full change.
 *
 * @example
 * const log: StateChangeListener = (state, change) => console.log(change.circuit, change.from, '->', state);
 */
export type StateChangeListener = (state: CircuitState, change: BreakerStateChange) => void;

/** The events of a breaker (`onStateChange`). */
interface BreakerEvents {
  stateChange: [state: CircuitState, change: BreakerStateChange];
}

const CLOSED = 0;
const HALF_OPEN = 1;
const OPEN = 2;
const STATE_NAMES: readonly CircuitState[] = ['closed', 'half_open', 'open'];

/** A breaker's deadline buckets and the one callback that expires its timed calls. */
interface Deadlines {
  readonly timers: DeadlineTimers;
  readonly expire: (call: TimedCall<unknown>, reason: unknown) => void;
}

/**
 * A circuit breaker: `closed` -> `open` after failures -> `half_open` after `resetTimeoutMs` -> `closed` after
 * `halfOpenSuccesses` good probes (or `open` again on a failed one, or on one that outlives `probeTimeoutMs`). When it
 * opens is the strategy's call: a {@link ConsecutiveBreaker} or a {@link RateBreaker}, chosen by `mode`. No state
 * timers: the move to half-open happens on the first call after the reset time (rate mode arms one unref'd timer per
 * window bucket while calls flow, so a success reads no clock). A call costs a state check and two integer updates; a
 * signal (AbortController) is created only for a caller's `signal` or a half-open probe.
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
  #probeSuccesses = 0;
  #probing = 0;
  #isolated = 0;
  #isolation = 0;
  #ok = 0;
  #failed = 0;
  #timedOut = 0;
  #rejected = 0;
  readonly #resetTimeoutMs: number;
  readonly #halfOpenMax: number;
  readonly #halfOpenSuccesses: number;
  readonly #shouldCount: ((error: unknown) => boolean) | undefined;
  /** Decides when a closed circuit opens; its counts are the persisted part of the state. */
  readonly #breaker: ConsecutiveBreaker | RateBreaker;
  readonly #bus: GuardBus | undefined;
  readonly #logger: Logger;
  readonly #metrics: CircuitMetrics | undefined;
  readonly #metricsRef: WeakRef<BreakerMetricsSource> | undefined;
  #reported: number[] | undefined;
  /** Made on the first `onStateChange`, so a breaker nobody listens to carries none of it. */
  #events: Emitter<BreakerEvents> | undefined;
  #probes: Set<LinkedSignal> | undefined;
  /** Made on the first call with a `timeoutMs`, so a breaker that never times calls carries none of it. */
  #deadlines: Deadlines | undefined;

  /**
   * A breaker configured from the environment ({@link circuitBreakerOptionsFromEnv}); `overrides` win over it.
   *
   * @example
   * const breaker = CircuitBreaker.fromEnv(process.env, { name: 'payments' });
   */
  static fromEnv(env: Env = process.env, overrides: CircuitBreakerOptions = {}): CircuitBreaker {
    return new CircuitBreaker({ ...circuitBreakerOptionsFromEnv(env), ...overrides });
  }

  constructor(options: CircuitBreakerOptions = {}) {
    const settings = breakerSettings(options);
    this.name = settings.name;
    this.probeTimeoutMs = settings.probeTimeoutMs;
    this.#resetTimeoutMs = settings.resetTimeoutMs;
    this.#halfOpenMax = settings.halfOpenMaxConcurrent;
    this.#halfOpenSuccesses = settings.halfOpenSuccesses;
    this.#shouldCount = settings.shouldCount;
    this.#breaker = settings.createBreaker();
    this.#bus = options.bus;
    this.#logger = options.logger ?? silentLogger;
    if (options.initialState !== undefined) this.#hydrate(options.initialState);
    this.#metrics = circuitMetrics(options);
    this.#metricsRef = this.#metrics?.addBreaker(this);
  }

  #hydrate(initial: NonNullable<CircuitBreakerOptions['initialState']>): void {
    const start = hydratedState(initial, this.#resetTimeoutMs, Date.now());
    const breaker = this.#breaker;
    if (breaker.mode === 'consecutive') {
      if (initial.consecutiveFailures !== undefined) breaker.state = initial.consecutiveFailures;
    } else if (initial.window !== undefined) {
      breaker.state = initial.window;
    }
    this.#state = start.state === 'closed' ? CLOSED : OPEN;
    this.#openedAt = start.openedAt;
    if (start.isolated) this.#isolated = 1;
  }

  /** The current state. An open breaker whose reset time has passed reports `open` until the next call probes it. */
  get state(): CircuitState {
    return STATE_NAMES[this.#state]!;
  }

  /** `consecutive` or `rate`. */
  get mode(): CircuitBreakerMode {
    return this.#breaker.mode;
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
      if (options.signal === undefined && typeof timeoutMs === 'number' && timeoutMs >= 0 && timeoutMs <= MAX_TIMER_MS) {
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
      if (timeoutMs !== undefined) assertNumberOption('timeoutMs', timeoutMs, { min: 0, max: MAX_TIMER_MS });
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
    if (epoch === this.#epoch) this.#breaker.success();
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
    let linked: LinkedSignal | undefined;
    let deadline: ControllerDeadline | undefined;
    if (probe || timeoutMs !== undefined) {
      // a probe that never settles must not hold the circuit half-open: at probeTimeoutMs it fails (TIMEOUT) and reopens it
      linked = linkSignal(callerSignal, probe ? { timeoutMs: this.probeTimeoutMs, timeoutReason: () => this.#probeTimedOut() } : undefined);
      signal = linked.signal;
      if (timeoutMs !== undefined) {
        // the deadline joins the shared buckets; only this call's own signal aborts
        deadline = new ControllerDeadline(linked);
        (this.#deadlines ??= this.#makeDeadlines()).timers.add(deadline, timeoutMs);
      }
      if (probe) {
        this.#probing++;
        (this.#probes ??= new Set()).add(linked);
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
      linked?.dispose();
      if (probe) {
        this.#probing--;
        this.#probes!.delete(linked!);
      }
    }
  }

  #probeTimedOut(): GuardError {
    return new GuardError('TIMEOUT', `circuit "${this.name}" half-open probe did not settle within ${this.probeTimeoutMs} ms`, {
      details: { circuit: this.name, probeTimeoutMs: this.probeTimeoutMs },
    });
  }

  #onSuccess(epoch: number, probe: boolean): void {
    this.#ok++;
    if (epoch !== this.#epoch) return;
    if (probe) {
      if (++this.#probeSuccesses >= this.#halfOpenSuccesses) this.#transition(CLOSED);
    } else {
      this.#breaker.success();
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
    } else if (this.#breaker.failure()) {
      this.#transition(OPEN);
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
    if (to === OPEN) this.#openedAt = now;
    // a consecutive count starts again on every transition; a rate window is kept while open, for toJSON()
    if (to === CLOSED || this.#breaker.mode === 'consecutive') this.#breaker.reset();
    this.#metrics?.transition(this.name, STATE_NAMES[to]!);
    const change: BreakerStateChange = {
      circuit: this.name,
      from: STATE_NAMES[from]!,
      to: STATE_NAMES[to]!,
      at: now,
      probeTimeoutMs: this.probeTimeoutMs,
    };
    this.#events?.emit('stateChange', change.to, change);
    this.#bus?.emit('breakerStateChange', change);
  }

  /**
   * Subscribes to state changes; call the returned function (or `using` it) to unsubscribe.
   *
   * @example
   * using sub = breaker.onStateChange((state, change) => log.warn(change, `circuit ${state}`));
   */
  onStateChange(listener: StateChangeListener): Subscription {
    const events = (this.#events ??= new Emitter<BreakerEvents>({
      onError: (error) => this.#logger.error({ err: error, circuit: this.name }, 'circuit state listener threw'),
    }));
    return events.on('stateChange', listener);
  }

  /** Number of state listeners (for leak checks). */
  get listenerCount(): number {
    return this.#events?.listenerCount('stateChange') ?? 0;
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
    this.#breaker.reset();
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
    for (const probe of Array.from(probes)) probe.abort(error);
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
    const breaker = this.#breaker;
    const snapshot: CircuitBreakerSnapshot = {
      name: this.name,
      mode: this.mode,
      state: this.state,
      openedAt: this.#state === CLOSED ? null : this.#openedAt,
      consecutiveFailures: breaker.mode === 'consecutive' ? breaker.state : 0,
      halfOpenSuccesses: this.#probeSuccesses,
      isolated: this.#isolated > 0,
    };
    return breaker.mode === 'consecutive' ? snapshot : { ...snapshot, window: breaker.state };
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
    this.#breaker.dispose();
    if (this.#metricsRef !== undefined) this.#metrics!.removeBreaker(this.#metricsRef);
    this.#events?.removeAllListeners();
    return Promise.resolve();
  }

  [Symbol.asyncDispose](): Promise<void> {
    return this.close();
  }
}
