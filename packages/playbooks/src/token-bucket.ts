/**
 * The token bucket behind every rate limit of this package (`MessageBus` topic and actor limits,
 * `RateLimiter`), so they cannot diverge again: the burst holds at least one token, so a rate below 1/s
 * lets one call through every 1/rate s instead of blocking everything; a rate of 0 blocks.
 */
export interface TokenBucket {
  readonly ratePerSec: number;
  tokens: number;
  /** When `tokens` was last refilled (ms, on the owner's clock). */
  last: number;
}

/** Largest number of tokens a bucket holds: max(1, rate), or 0 for a rate of 0. */
export function burstOf(ratePerSec: number): number {
  return ratePerSec === 0 ? 0 : Math.max(1, ratePerSec);
}

/** A full bucket. */
export function fullBucket(ratePerSec: number, now: number): TokenBucket {
  return { ratePerSec, tokens: burstOf(ratePerSec), last: now };
}

/** Adds the tokens earned since `last`. */
export function refill(bucket: TokenBucket, now: number): void {
  bucket.tokens = Math.min(burstOf(bucket.ratePerSec), bucket.tokens + ((now - bucket.last) / 1000) * bucket.ratePerSec);
  bucket.last = now;
}

/** Refills, then takes one token. @returns false when none is left. */
export function takeToken(bucket: TokenBucket, now: number): boolean {
  refill(bucket, now);
  if (bucket.tokens < 1) return false;
  bucket.tokens -= 1;
  return true;
}

/** ms until the bucket has a token again (1 at least; `Infinity` for a rate of 0). */
export function msUntilToken(bucket: TokenBucket): number {
  if (bucket.ratePerSec === 0) return Infinity;
  return Math.max(1, Math.ceil(((1 - bucket.tokens) / bucket.ratePerSec) * 1000));
}
