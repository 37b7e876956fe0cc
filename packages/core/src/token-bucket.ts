import { assertNumberOption } from './guard-error.js';

/** Options for {@link TokenBucket}. */
export interface TokenBucketOptions {
  /** Tokens earned per second; fractions work (`0.2` lets one call through every 5 s). 0 blocks everything. */
  readonly ratePerSec: number;
  /** Most tokens the bucket holds, and what it starts with. Default `max(1, ratePerSec)`, 0 for a rate of 0. */
  readonly burst?: number;
  /** Clock in epoch ms. Default `Date.now`. */
  readonly now?: () => number;
}

/** Tolerance for float sums: 0.3 + 0.7 tokens is one token. */
const EPSILON = 1e-9;

/**
 * The rate limiter: a token bucket refilled continuously at `ratePerSec`. The default burst holds at least one
 * token, so a rate below 1/s lets one call through every `1 / rate` s instead of blocking everything.
 *
 * @example
 * const limit = new TokenBucket({ ratePerSec: 0.5 });
 * if (!limit.tryTake()) throw new GuardError('INVALID_INPUT', `rate limited, retry in ${limit.msUntil()} ms`);
 */
export class TokenBucket {
  readonly ratePerSec: number;
  readonly burst: number;
  readonly #now: () => number;
  #tokens: number;
  #last: number;

  constructor(options: TokenBucketOptions) {
    const { ratePerSec, now = Date.now } = options;
    assertNumberOption('ratePerSec', ratePerSec, { min: 0, max: Number.MAX_SAFE_INTEGER });
    const burst = options.burst ?? (ratePerSec === 0 ? 0 : Math.max(1, ratePerSec));
    assertNumberOption('burst', burst, { min: 0, max: Number.MAX_SAFE_INTEGER });
    this.ratePerSec = ratePerSec;
    this.burst = burst;
    this.#now = now;
    this.#tokens = burst;
    this.#last = now();
  }

  /** Tokens available now (fractional while refilling). */
  get tokens(): number {
    this.#refill();
    return this.#tokens;
  }

  /** Takes `n` tokens when there are that many. @returns false (and takes nothing) otherwise. */
  tryTake(n = 1): boolean {
    this.#refill();
    if (this.#tokens + EPSILON < n) return false;
    this.#tokens = Math.max(0, this.#tokens - n);
    return true;
  }

  /** ms until `n` tokens are available: 0 when they are, `Infinity` when they never will be (rate 0, or `n > burst`). */
  msUntil(n = 1): number {
    this.#refill();
    const missing = n - this.#tokens;
    if (missing <= EPSILON) return 0;
    if (this.ratePerSec === 0 || n > this.burst + EPSILON) return Infinity;
    return Math.max(1, Math.ceil((missing / this.ratePerSec) * 1000));
  }

  #refill(): void {
    const now = this.#now();
    // A clock that steps back earns nothing (and never takes tokens away).
    const elapsedMs = Math.max(0, now - this.#last);
    this.#tokens = Math.min(this.burst, this.#tokens + (elapsedMs / 1000) * this.ratePerSec);
    this.#last = Math.max(this.#last, now);
  }
}
