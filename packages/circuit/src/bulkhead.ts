import { GuardError, assertNumberOption } from '@guard/core';
import { BulkheadRejectedError } from './errors.js';
import { circuitGauge } from './metrics.js';
import type { CircuitMetricsOptions } from './metrics.js';
import { INVOKE, invokeNext, runWithOptions } from './policy.js';
import type { ExecuteOptions, Operation, Policy } from './policy.js';

/**
 * Options of {@link Bulkhead}.
 *
 * @example
 * const options: BulkheadOptions = { name: 'reports', maxConcurrent: 4, maxQueued: 100, queueTimeoutMs: 5_000 };
 */
export interface BulkheadOptions extends CircuitMetricsOptions {
  /** Names the bulkhead in errors and metric labels; default `'default'`. */
  readonly name?: string;
  /** Calls running at once; default 50. */
  readonly maxConcurrent?: number;
  /** Calls waiting for a slot; more are rejected with `BULKHEAD_REJECTED`; default 1000 (0 = no queue). */
  readonly maxQueued?: number;
  /** How long a call may wait in the queue; 0 waits without limit; default 30 000 ms. */
  readonly queueTimeoutMs?: number;
}

interface Waiter {
  resolve: () => void;
  reject: (error: unknown) => void;
  timer: NodeJS.Timeout | undefined;
  signal: AbortSignal | undefined;
  onAbort: (() => void) | undefined;
  done: boolean;
}

/**
 * Limits concurrency: at most `maxConcurrent` calls run, up to `maxQueued` wait (FIFO, for at most
 * `queueTimeoutMs`), the rest fail fast with `BULKHEAD_REJECTED`. A caller's abort removes its queued call.
 *
 * @example
 * await using bulkhead = new Bulkhead({ name: 'reports', maxConcurrent: 4, maxQueued: 100 });
 * const pdf = await bulkhead.execute(() => renderReport(id));
 */
export class Bulkhead implements Policy, AsyncDisposable {
  readonly name: string;
  readonly maxConcurrent: number;
  readonly maxQueued: number;
  readonly queueTimeoutMs: number;
  #running = 0;
  #queued = 0;
  #queue: Waiter[] = [];
  #head = 0;
  #closed = false;
  /** Aborted by `close()`: the metrics stop reading this bulkhead. */
  readonly #closeSignal = new AbortController();

  constructor(options: BulkheadOptions = {}) {
    const { name = 'default', maxConcurrent = 50, maxQueued = 1000, queueTimeoutMs = 30_000 } = options;
    if (typeof name !== 'string' || name === '') {
      throw new GuardError('INVALID_OPTION', 'name must be a non-empty string', { details: { field: 'name' } });
    }
    assertNumberOption('maxConcurrent', maxConcurrent, { min: 1, integer: true });
    assertNumberOption('maxQueued', maxQueued, { min: 0, integer: true });
    assertNumberOption('queueTimeoutMs', queueTimeoutMs, { min: 0, max: 2_147_483_647 });
    this.name = name;
    this.maxConcurrent = maxConcurrent;
    this.maxQueued = maxQueued;
    this.queueTimeoutMs = queueTimeoutMs;
    if (options.metrics !== false) {
      const labels = { bulkhead: name };
      const signal = this.#closeSignal.signal;
      circuitGauge(options, { name: 'bulkhead_running', help: 'Calls running inside a bulkhead', labelNames: ['bulkhead'] }, signal, () => [[labels, this.#running]]);
      circuitGauge(options, { name: 'bulkhead_queued', help: 'Calls waiting in a bulkhead queue', labelNames: ['bulkhead'] }, signal, () => [[labels, this.#queued]]);
    }
  }

  /** Calls running now. */
  get running(): number {
    return this.#running;
  }

  /** Calls waiting for a slot now. */
  get queued(): number {
    return this.#queued;
  }

  /**
   * Runs `fn` in a slot, waiting in the queue when all are taken. `timeoutMs` covers the wait and the run.
   *
   * @example
   * await bulkhead.execute((signal) => fetch(url, { signal }), { signal: req.signal });
   */
  execute<T>(fn: Operation<T>, options?: ExecuteOptions): Promise<T> {
    if (options === undefined) return this[INVOKE](fn, undefined, undefined, 0);
    return runWithOptions((signal) => this[INVOKE](fn, signal, undefined, 0), options, `bulkhead "${this.name}"`);
  }

  /** @internal */
  async [INVOKE]<T>(fn: Operation<T>, signal: AbortSignal | undefined, chain: readonly Policy[] | undefined, index: number): Promise<T> {
    if (this.#closed) throw new GuardError('CLOSED', `Bulkhead "${this.name}" is closed`, { details: { bulkhead: this.name } });
    if (this.#running < this.maxConcurrent) this.#running++;
    else await this.#wait(signal);
    try {
      return await (chain === undefined ? fn(signal) : invokeNext(fn, signal, chain, index));
    } finally {
      this.#release();
    }
  }

  /** Resolves once a slot was handed over to this call (the slot is already counted in `running`). */
  #wait(signal: AbortSignal | undefined): Promise<void> {
    signal?.throwIfAborted();
    if (this.#queued >= this.maxQueued) return Promise.reject(new BulkheadRejectedError(this.name, 'queue_full'));
    return new Promise<void>((resolve, reject) => {
      const waiter: Waiter = { resolve, reject, timer: undefined, signal, onAbort: undefined, done: false };
      if (this.queueTimeoutMs > 0) {
        waiter.timer = setTimeout(() => this.#drop(waiter, new BulkheadRejectedError(this.name, 'queue_timeout')), this.queueTimeoutMs);
      }
      if (signal !== undefined) {
        waiter.onAbort = () => this.#drop(waiter, signal.reason);
        signal.addEventListener('abort', waiter.onAbort, { once: true });
      }
      this.#queue.push(waiter);
      this.#queued++;
    });
  }

  #settle(waiter: Waiter): void {
    waiter.done = true;
    this.#queued--;
    if (waiter.timer !== undefined) clearTimeout(waiter.timer);
    if (waiter.onAbort !== undefined) waiter.signal!.removeEventListener('abort', waiter.onAbort);
  }

  /** Removes a waiter that gave up (left as a tombstone in the array, skipped on release). */
  #drop(waiter: Waiter, error: unknown): void {
    if (waiter.done) return;
    this.#settle(waiter);
    waiter.reject(error);
    // Keep tombstones bounded even when no slot frees up for a long time.
    if (this.#queue.length - this.#head > 2 * this.#queued + 1024) {
      this.#queue = this.#queue.slice(this.#head).filter((w) => !w.done);
      this.#head = 0;
    }
  }

  #release(): void {
    const queue = this.#queue;
    let head = this.#head;
    while (head < queue.length) {
      const waiter = queue[head]!;
      queue[head++] = undefined as never;
      if (waiter.done) continue;
      if (head > 1024 && head * 2 > queue.length) {
        this.#queue = queue.slice(head);
        this.#head = 0;
      } else {
        this.#head = head;
      }
      this.#settle(waiter);
      waiter.resolve(); // the slot passes to the waiter: `running` stays the same
      return;
    }
    if (queue.length > 0) {
      this.#queue = [];
      this.#head = 0;
    }
    this.#running--;
  }

  /**
   * Rejects queued calls with `CLOSED` and refuses new ones; running calls finish. Safe to call twice.
   *
   * @example
   * await bulkhead.close();
   */
  close(): Promise<void> {
    if (this.#closed) return Promise.resolve();
    this.#closed = true;
    const queue = this.#queue;
    for (let i = this.#head; i < queue.length; i++) {
      this.#drop(queue[i]!, new GuardError('CLOSED', `Bulkhead "${this.name}" is closed`, { details: { bulkhead: this.name } }));
    }
    this.#queue = [];
    this.#head = 0;
    this.#closeSignal.abort();
    return Promise.resolve();
  }

  [Symbol.asyncDispose](): Promise<void> {
    return this.close();
  }
}
