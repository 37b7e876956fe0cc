import type { Breaker } from './breaker.js';
import { RateWindow } from './rate-window.js';
import type { RateWindowState } from './rate-window.js';

/** What {@link RateBreaker} needs. */
export interface RateBreakerOptions {
  /** Failure ratio (0-1] over the window that opens the circuit. */
  readonly failureRateThreshold: number;
  /** Calls the window needs before the ratio may open the circuit. */
  readonly minimumThroughput: number;
  readonly windowMs: number;
  readonly windowBuckets: number;
}

/**
 * Opens when failures reach `failureRateThreshold` of the calls in a rolling window that holds at least
 * `minimumThroughput` calls (cockatiel's `SamplingBreaker`). Its state is the window, buckets included.
 *
 * @example
 * const breaker = new RateBreaker({ failureRateThreshold: 0.5, minimumThroughput: 10, windowMs: 10_000, windowBuckets: 10 });
 */
export class RateBreaker implements Breaker<RateWindowState> {
  readonly mode = 'rate' as const;
  readonly failureRateThreshold: number;
  readonly minimumThroughput: number;
  readonly #window: RateWindow;

  constructor(options: RateBreakerOptions) {
    this.failureRateThreshold = options.failureRateThreshold;
    this.minimumThroughput = options.minimumThroughput;
    this.#window = new RateWindow(options.windowMs, options.windowBuckets);
  }

  get state(): RateWindowState {
    return this.#window.snapshot(Date.now());
  }

  set state(saved: RateWindowState) {
    this.#window.restore(saved, Date.now());
  }

  success(): void {
    this.#window.recordSuccess();
  }

  failure(): boolean {
    const window = this.#window;
    window.recordFailure(Date.now());
    return window.calls >= this.minimumThroughput && window.failures / window.calls >= this.failureRateThreshold;
  }

  reset(): void {
    this.#window.reset();
  }

  dispose(): void {
    this.#window.dispose();
  }
}
