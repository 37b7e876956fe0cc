import { linkSignal } from '@guard/core';
import type { LinkedSignal } from '@guard/core';
import type { ManagedTask, TaskRegistry } from './task-registry.js';
import type { StreamMessage } from './stream-message.js';

/**
 * One `ConnectionPool#request` in flight: a signal that follows the caller's signal and the pool's `close()`, and,
 * with a `taskId`, the task registered for it, so `tasks.cancel(taskId)` ends the request and the request's end
 * settles the task.
 *
 * @example
 * using request = new PoolRequest(tasks, 'job-7', options.signal);
 * const reply = await breaker.execute((signal) => exchange(signal ?? request.signal), { signal: request.signal });
 * request.succeeded(reply);
 */
export class PoolRequest implements Disposable {
  readonly taskId: string | undefined;
  readonly #linked: LinkedSignal;
  readonly #task: ManagedTask<StreamMessage> | undefined;

  /** Registers the task (throws `INVALID_INPUT` for a running `taskId`). */
  constructor(tasks: TaskRegistry, taskId: string | undefined, callerSignal: AbortSignal | undefined) {
    this.taskId = taskId;
    this.#linked = linkSignal(callerSignal);
    try {
      // The task follows the linked signal, so its signal aborts on the caller's abort, close() and cancel(taskId).
      this.#task = taskId === undefined ? undefined : tasks.register<StreamMessage>({ taskId, signal: this.#linked.signal });
    } catch (error) {
      this.#linked.dispose();
      throw error;
    }
  }

  /** Aborts when the request is cancelled, by any of its sources. */
  get signal(): AbortSignal {
    return this.#task?.signal ?? this.#linked.signal;
  }

  /** The aborted signal whose reason says best why: the caller's or the pool's first, else the task's cancel. */
  get abortedBy(): AbortSignal {
    return this.#linked.signal.aborted ? this.#linked.signal : this.signal;
  }

  /** Cancels the request (the pool is closing). */
  abort(reason: unknown): void {
    this.#linked.abort(reason);
  }

  succeeded(reply: StreamMessage): void {
    this.#task?.complete(reply);
  }

  failed(error: unknown): void {
    if (this.#task?.status === 'running') this.#task.fail(error);
  }

  [Symbol.dispose](): void {
    this.#linked.dispose();
  }
}
