import { assertNumberOption, GuardError } from '@guard/core';
import type {} from './declarations.js';

interface Group {
  until: number;
  timer: NodeJS.Timeout | undefined;
  waiters: Set<() => void>;
}

/**
 * Pause switches for groups of background tasks. Tasks call `await gate.waitIfPaused('heavy')` at safe
 * points; the `pause_tasks` action pauses a group for a while, and waiters continue on resume or expiry.
 *
 * @example
 * const gate = new TaskGate();
 * for (const job of jobs) { await gate.waitIfPaused('heavy'); await job(); }
 * gate.pause('heavy', { durationMs: 60_000 });
 */
export class TaskGate implements AsyncDisposable {
  readonly #groups = new Map<string, Group>();
  readonly #now: () => number;
  #closed = false;

  constructor(options: { now?: () => number } = {}) {
    this.#now = options.now ?? Date.now;
  }

  /** Pauses `group` for `durationMs` (default until {@link resume}). @returns how many tasks are waiting. */
  pause(group: string, options: { durationMs?: number } = {}): number {
    if (this.#closed) throw new GuardError('CLOSED', 'TaskGate is closed');
    const durationMs = options.durationMs ?? Infinity;
    assertNumberOption('durationMs', durationMs, { min: 1 });
    const state = this.#groups.get(group) ?? { until: 0, timer: undefined, waiters: new Set<() => void>() };
    this.#groups.set(group, state);
    state.until = this.#now() + durationMs;
    if (state.timer) clearTimeout(state.timer);
    state.timer = Number.isFinite(durationMs) ? setTimeout(() => this.resume(group), durationMs) : undefined;
    state.timer?.unref();
    return state.waiters.size;
  }

  /** Resumes `group` and releases its waiters. @returns true when it was paused. */
  resume(group: string): boolean {
    const state = this.#groups.get(group);
    if (!state) return false;
    this.#groups.delete(group);
    if (state.timer) clearTimeout(state.timer);
    for (const release of state.waiters) release();
    return true;
  }

  /** True while `group` is paused. */
  isPaused(group: string): boolean {
    const state = this.#groups.get(group);
    return state !== undefined && state.until > this.#now();
  }

  /** Paused groups and their waiting task counts. */
  paused(): { group: string; until: number; waiting: number }[] {
    return [...this.#groups].filter(([g]) => this.isPaused(g)).map(([group, s]) => ({ group, until: s.until, waiting: s.waiters.size }));
  }

  /** Resolves at once when `group` runs, else when it resumes. Rejects `ABORTED` on the signal. */
  waitIfPaused(group: string, options: { signal?: AbortSignal } = {}): Promise<void> {
    options.signal?.throwIfAborted();
    const state = this.#groups.get(group);
    if (!state || !this.isPaused(group)) return Promise.resolve();
    return new Promise<void>((resolve, reject) => {
      const onAbort = (): void => {
        state.waiters.delete(release);
        reject(new GuardError('ABORTED', `wait for task group "${group}" aborted`, { cause: options.signal?.reason }));
      };
      const release = (): void => {
        options.signal?.removeEventListener('abort', onAbort);
        resolve();
      };
      state.waiters.add(release);
      options.signal?.addEventListener('abort', onAbort, { once: true });
    });
  }

  /** Resumes every group. */
  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    for (const group of [...this.#groups.keys()]) this.resume(group);
  }

  [Symbol.asyncDispose](): Promise<void> {
    return this.close();
  }
}
