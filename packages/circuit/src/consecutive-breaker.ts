import { assertNumberOption } from '@guard/core';
import type { Breaker } from './breaker.js';

/**
 * Opens after `threshold` failures in a row; a success starts the count again. Its state is the count.
 *
 * @example
 * const breaker = new ConsecutiveBreaker(5);
 * breaker.failure(); // false, until the fifth
 */
export class ConsecutiveBreaker implements Breaker<number> {
  readonly mode = 'consecutive' as const;
  readonly threshold: number;
  #count = 0;

  constructor(threshold: number) {
    this.threshold = threshold;
  }

  get state(): number {
    return this.#count;
  }

  set state(count: number) {
    assertNumberOption('initialState.consecutiveFailures', count, { min: 0, integer: true });
    this.#count = count;
  }

  success(): void {
    this.#count = 0;
  }

  failure(): boolean {
    return ++this.#count >= this.threshold;
  }

  reset(): void {
    this.#count = 0;
  }

  dispose(): void {}
}
