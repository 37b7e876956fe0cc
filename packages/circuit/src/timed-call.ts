import type { DeadlineBucket, DeadlineEntry } from './deadline-timers.js';

/** A closed-state call with a `timeoutMs`: one small object per call, no timer, no signal of its own. */
export class TimedCall<T> implements DeadlineEntry {
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
export class ControllerDeadline implements DeadlineEntry {
  slot = 0;
  bucket: DeadlineBucket | undefined = undefined;
  readonly #controller: { abort(reason?: unknown): void };

  constructor(controller: { abort(reason?: unknown): void }) {
    this.#controller = controller;
  }

  expire(reason: unknown): void {
    this.#controller.abort(reason);
  }
}
