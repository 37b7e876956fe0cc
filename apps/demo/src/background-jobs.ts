import { createHash } from 'node:crypto';
import { closeOnce, GuardError } from '@guard/core';
import type { RateLimiter } from '@guard/playbooks';

/** Options for {@link BackgroundJobs}. */
export interface BackgroundJobsOptions {
  /** The playbooks' limiter; `throttle` sets a limit on `key`. */
  readonly limiter: RateLimiter;
  /** The limiter key these jobs take a token from. Default `non_critical`. */
  readonly key?: string;
  /** Jobs per second when nothing throttles them. Default 20. */
  readonly ratePerSec?: number;
  /** Window of {@link BackgroundJobs.rate}. Default 3000. */
  readonly rateWindowMs?: number;
}

/**
 * Non-critical background jobs (cache compaction, stats roll-ups): an in-process loop that runs up to
 * `ratePerSec` small jobs a second, each one only when the limiter grants a token of its key. `throttle
 * non_critical` therefore lowers the measured rate (`rate()`, completed jobs per second over a window).
 *
 * @example
 * const jobs = new BackgroundJobs({ limiter, ratePerSec: 20 });
 * jobs.start();
 * limiter.setLimit('non_critical', 10); // jobs.rate() drops to ~10/s
 */
export class BackgroundJobs implements AsyncDisposable {
  readonly #limiter: RateLimiter;
  readonly #key: string;
  readonly #ratePerSec: number;
  readonly #windowMs: number;
  /** Completion times in the rate window (bounded by rate x window). */
  readonly #done: number[] = [];
  #timer: NodeJS.Timeout | undefined;
  #completed = 0;
  #deferred = 0;
  #digest = '';

  constructor(options: BackgroundJobsOptions) {
    this.#limiter = options.limiter;
    this.#key = options.key ?? 'non_critical';
    this.#ratePerSec = options.ratePerSec ?? 20;
    this.#windowMs = options.rateWindowMs ?? 3_000;
    if (!(this.#ratePerSec > 0 && this.#ratePerSec <= 1_000)) throw new GuardError('INVALID_OPTION', 'ratePerSec must be in (0, 1000]', { details: { field: 'ratePerSec' } });
  }

  /** The limiter key (what `throttle` targets). */
  get key(): string {
    return this.#key;
  }

  /** The unthrottled rate, jobs per second. */
  get baseRatePerSec(): number {
    return this.#ratePerSec;
  }

  start(): void {
    if (this.#timer) return;
    this.#timer = setInterval(() => this.#tick(), 1_000 / this.#ratePerSec);
    this.#timer.unref();
  }

  /** Completed jobs per second over the last window. */
  rate(now = Date.now()): number {
    this.#prune(now);
    return this.#done.length / (this.#windowMs / 1_000);
  }

  stats(): { completed: number; deferred: number; ratePerSec: number; baseRatePerSec: number; throttled: boolean } {
    return { completed: this.#completed, deferred: this.#deferred, ratePerSec: this.rate(), baseRatePerSec: this.#ratePerSec, throttled: this.#limiter.isLimited(this.#key) };
  }

  readonly close = closeOnce(async () => {
    if (this.#timer) clearInterval(this.#timer);
    this.#timer = undefined;
  });

  [Symbol.asyncDispose](): Promise<void> {
    return this.close();
  }

  #tick(): void {
    if (!this.#limiter.tryAcquire(this.#key)) {
      this.#deferred += 1; // its turn comes at the next tick
      return;
    }
    // The job itself: a small roll-up (a hash over the previous digest), real CPU work of a few microseconds.
    this.#digest = createHash('sha256').update(this.#digest).update(String(this.#completed)).digest('hex');
    this.#completed += 1;
    const now = Date.now();
    this.#done.push(now);
    this.#prune(now);
  }

  #prune(now: number): void {
    const from = now - this.#windowMs;
    let drop = 0;
    while (drop < this.#done.length && this.#done[drop]! < from) drop++;
    if (drop > 0) this.#done.splice(0, drop);
  }
}
