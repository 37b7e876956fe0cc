import { assertNumberOption, GuardError, sendProblem, sleep, TokenBucket } from '@guard/core';
import type { HttpHandler } from '@guard/core';
import type {} from './declarations.js';

/** One active limit of a {@link RateLimiter}. */
export interface RateLimitEntry {
  readonly key: string;
  readonly ratePerSec: number;
  /** Epoch ms when the limit lifts; `Infinity` for never. */
  readonly expiresAt: number;
}

interface Bucket extends RateLimitEntry {
  /** Burst max(1, rate): a rate below 1/s lets one call through every 1/rate s; a rate of 0 refuses every call. */
  readonly bucket: TokenBucket;
}

/** Acquire counts per key in one-second slots, for {@link RateLimiter.observedRate}. */
interface RateWindow {
  readonly slots: number[];
  slot: number;
  readonly since: number;
}

const RATE_WINDOW_S = 5;

/** Options for {@link RateLimiter}. */
export interface RateLimiterOptions {
  readonly now?: () => number;
}

/**
 * Named token buckets that playbooks switch on and off at run time (`throttle`, `enable_rate_limit`).
 * A key without a limit always passes, so the check costs one map lookup in normal operation.
 *
 * @example
 * const limiter = new RateLimiter();
 * limiter.setLimit('api', 10, { durationMs: 60_000 });
 * if (!limiter.tryAcquire('api')) res.statusCode = 429;
 */
export class RateLimiter {
  readonly #buckets = new Map<string, Bucket>();
  readonly #observed = new Map<string, RateWindow>();
  readonly #now: () => number;

  constructor(options: RateLimiterOptions = {}) {
    this.#now = options.now ?? Date.now;
  }

  /** Limits `key` to `ratePerSec` (burst = max(1, rate); 0 refuses every call) for `durationMs` (default: until cleared). */
  setLimit(key: string, ratePerSec: number, options: { durationMs?: number } = {}): RateLimitEntry {
    if (typeof key !== 'string' || key.length === 0) throw new GuardError('INVALID_OPTION', 'key must be a non-empty string', { details: { field: 'key' } });
    assertNumberOption('ratePerSec', ratePerSec, { min: 0 });
    const durationMs = options.durationMs ?? Infinity;
    assertNumberOption('durationMs', durationMs, { min: 1 });
    const bucket: Bucket = { key, ratePerSec, expiresAt: this.#now() + durationMs, bucket: new TokenBucket({ ratePerSec, now: this.#now }) };
    this.#buckets.set(key, bucket);
    return { key, ratePerSec, expiresAt: bucket.expiresAt };
  }

  /** Removes the limit of `key`. @returns true when there was one. */
  clear(key: string): boolean {
    return this.#buckets.delete(key);
  }

  /**
   * "May I run now?": takes one token of `key`. @returns false when the call should be refused (or deferred).
   * Granted calls are counted, so {@link observedRate} knows the key's rate before any limit exists.
   */
  tryAcquire(key: string): boolean {
    const granted = this.#take(key);
    if (granted) this.#count(key);
    return granted;
  }

  /**
   * Waits until `key` may run (at once when it has no limit), then takes a token. For background jobs:
   * `await limiter.acquire('non_critical', { signal })` before each unit of work. Rejects `ABORTED` on the
   * signal; a limit of 0 waits until it is lifted or expires.
   *
   * @example
   * for (;;) { await limiter.acquire('non_critical', { signal }); await job(); }
   */
  async acquire(key: string, options: { signal?: AbortSignal } = {}): Promise<void> {
    options.signal?.throwIfAborted();
    while (!this.tryAcquire(key)) {
      try {
        await sleep(this.#waitMs(key), options.signal ? { signal: options.signal } : {});
      } catch (error) {
        throw new GuardError('ABORTED', `wait for rate limit "${key}" aborted`, { cause: options.signal?.reason ?? error });
      }
    }
  }

  /**
   * Granted acquires of `key` per second over the last 5 s (counted whether or not a limit is active).
   *
   * @example
   * limiter.observedRate('non_critical'); // 8.2
   */
  observedRate(key: string): number {
    const w = this.#observed.get(key);
    if (!w) return 0;
    const second = Math.floor(this.#now() / 1000);
    this.#roll(w, second);
    // Full past seconds plus the fraction of the current one.
    const now = this.#now();
    const elapsedS = Math.min(RATE_WINDOW_S - 1 + (now % 1000) / 1000, Math.max(1, (now - w.since) / 1000));
    return Math.round((w.slots.reduce((a, b) => a + b, 0) / Math.max(elapsedS, 0.001)) * 100) / 100;
  }

  #take(key: string): boolean {
    if (this.#buckets.size === 0) return true;
    const bucket = this.#buckets.get(key);
    if (bucket === undefined) return true;
    const now = this.#now();
    if (bucket.expiresAt <= now) {
      this.#buckets.delete(key);
      return true;
    }
    return bucket.bucket.tryTake();
  }

  #count(key: string): void {
    let w = this.#observed.get(key);
    const second = Math.floor(this.#now() / 1000);
    if (!w) {
      if (this.#observed.size >= 1_000) this.#observed.clear();
      w = { slots: new Array<number>(RATE_WINDOW_S).fill(0), slot: second, since: this.#now() };
      this.#observed.set(key, w);
    }
    this.#roll(w, second);
    w.slots[second % RATE_WINDOW_S]! += 1;
  }

  #roll(w: RateWindow, second: number): void {
    if (second === w.slot) return;
    const steps = Math.min(RATE_WINDOW_S, second - w.slot);
    for (let i = 1; i <= steps; i++) w.slots[(w.slot + i) % RATE_WINDOW_S] = 0;
    w.slot = second;
  }

  /** ms until `key` has a token again (at least 1, at most 1 s for re-checks of a zero or lifted limit). */
  #waitMs(key: string): number {
    const bucket = this.#buckets.get(key);
    if (!bucket) return 1;
    // A zero or long wait is re-checked at least once a second: the limit may be lifted or expire.
    return Math.max(1, Math.min(1_000, bucket.bucket.msUntil(), bucket.expiresAt - this.#now()));
  }

  /** True while `key` has an active limit. */
  isLimited(key: string): boolean {
    const bucket = this.#buckets.get(key);
    return bucket !== undefined && bucket.expiresAt > this.#now();
  }

  /** Active limits. */
  limits(): RateLimitEntry[] {
    const now = this.#now();
    return [...this.#buckets.values()].filter((b) => b.expiresAt > now).map(({ key, ratePerSec, expiresAt }) => ({ key, ratePerSec, expiresAt }));
  }

  /**
   * A connect-style handler that answers 429 problem+json (with `Retry-After`) while `key` is over its limit,
   * and calls `next()` otherwise.
   *
   * @example
   * server.on('request', (req, res) => limiter.httpHandler('api')(req, res, () => app(req, res)));
   */
  httpHandler(key: string): HttpHandler {
    return (_req, res, next) => {
      if (this.tryAcquire(key)) return next?.();
      sendProblem(res, { status: 429, title: 'Too many requests', detail: `rate limit "${key}" is active`, code: 'RATE_LIMITED' }, { 'retry-after': '1' });
    };
  }
}
