import { assertNumberOption, GuardError, sendProblem } from '@guard/core';
import type { HttpHandler } from '@guard/core';
import './declarations.js';

/** One active limit of a {@link RateLimiter}. */
export interface RateLimitEntry {
  readonly key: string;
  readonly ratePerSec: number;
  /** Epoch ms when the limit lifts; `Infinity` for never. */
  readonly expiresAt: number;
}

interface Bucket extends RateLimitEntry {
  tokens: number;
  last: number;
}

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
  readonly #now: () => number;

  constructor(options: RateLimiterOptions = {}) {
    this.#now = options.now ?? Date.now;
  }

  /** Limits `key` to `ratePerSec` (burst = max(1, rate)) for `durationMs` (default: until cleared). */
  setLimit(key: string, ratePerSec: number, options: { durationMs?: number } = {}): RateLimitEntry {
    if (typeof key !== 'string' || key.length === 0) throw new GuardError('INVALID_OPTION', 'key must be a non-empty string', { details: { field: 'key' } });
    assertNumberOption('ratePerSec', ratePerSec, { min: 0 });
    const durationMs = options.durationMs ?? Infinity;
    assertNumberOption('durationMs', durationMs, { min: 1 });
    const now = this.#now();
    const bucket: Bucket = { key, ratePerSec, expiresAt: now + durationMs, tokens: Math.max(1, ratePerSec), last: now };
    this.#buckets.set(key, bucket);
    return { key, ratePerSec, expiresAt: bucket.expiresAt };
  }

  /** Removes the limit of `key`. @returns true when there was one. */
  clear(key: string): boolean {
    return this.#buckets.delete(key);
  }

  /** Takes one token of `key`. @returns false when the call should be refused. */
  tryAcquire(key: string): boolean {
    if (this.#buckets.size === 0) return true;
    const bucket = this.#buckets.get(key);
    if (bucket === undefined) return true;
    const now = this.#now();
    if (bucket.expiresAt <= now) {
      this.#buckets.delete(key);
      return true;
    }
    bucket.tokens = Math.min(Math.max(1, bucket.ratePerSec), bucket.tokens + ((now - bucket.last) / 1000) * bucket.ratePerSec);
    bucket.last = now;
    if (bucket.tokens < 1) return false;
    bucket.tokens -= 1;
    return true;
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
