import { closeOnce, GuardError } from '@guard/core';
import type { TaskGate } from '@guard/playbooks';
import type { PoolTask, WorkerPool } from './worker-pool.js';

/** Counters of {@link HeavyTasks}. */
export interface HeavyTaskStats {
  readonly queued: number;
  readonly running: number;
  readonly started: number;
  readonly completed: number;
  readonly failed: number;
  /** Epoch ms of the last task handed to a worker. */
  readonly lastStartedAt?: number;
  readonly paused: boolean;
}

/** Options for {@link HeavyTasks}. */
export interface HeavyTasksOptions {
  readonly pool: WorkerPool;
  readonly gate: TaskGate;
  /** The `pause_tasks` group that holds these tasks. Default `heavy`. */
  readonly group?: string;
  /** Queue bound: submissions over it are refused. Default 1000. */
  readonly maxQueued?: number;
}

/**
 * Heavy tasks (report builds) queued for the worker pool. Every task passes the task gate right before it is
 * handed to a worker, so `pause_tasks heavy` stops new tasks from starting (measured: `started` stops growing)
 * while the ones already running finish.
 *
 * @example
 * const heavy = new HeavyTasks({ pool, gate });
 * heavy.submit({ name: 'monthly-report', burnMs: 200 });
 */
export class HeavyTasks implements AsyncDisposable {
  readonly #pool: WorkerPool;
  readonly #gate: TaskGate;
  readonly #group: string;
  readonly #maxQueued: number;
  readonly #queue: PoolTask[] = [];
  readonly #abort = new AbortController();
  readonly #offIdle: () => void;
  #pumping = false;
  #started = 0;
  #completed = 0;
  #failed = 0;
  #lastStartedAt: number | undefined;

  constructor(options: HeavyTasksOptions) {
    this.#pool = options.pool;
    this.#gate = options.gate;
    this.#group = options.group ?? 'heavy';
    this.#maxQueued = options.maxQueued ?? 1_000;
    this.#offIdle = this.#pool.onIdle(() => this.#pump());
  }

  /** Queues a task. @returns false when the queue is full (the task is refused, never silently dropped later). */
  submit(task: PoolTask): boolean {
    if (this.#abort.signal.aborted) throw new GuardError('CLOSED', 'HeavyTasks is closed');
    if (this.#queue.length >= this.#maxQueued) return false;
    this.#queue.push(task);
    this.#pump();
    return true;
  }

  /** Drops the queued tasks (running ones finish). @returns how many were dropped. */
  clear(): number {
    return this.#queue.splice(0).length;
  }

  stats(): HeavyTaskStats {
    return {
      queued: this.#queue.length,
      running: this.#pool.busy,
      started: this.#started,
      completed: this.#completed,
      failed: this.#failed,
      ...(this.#lastStartedAt === undefined ? {} : { lastStartedAt: this.#lastStartedAt }),
      paused: this.#gate.isPaused(this.#group),
    };
  }

  readonly close = closeOnce(async () => {
    this.#abort.abort(new GuardError('CLOSED', 'HeavyTasks is closed'));
    this.#offIdle();
    this.#queue.length = 0;
  });

  [Symbol.asyncDispose](): Promise<void> {
    return this.close();
  }

  #pump(): void {
    if (this.#pumping || this.#abort.signal.aborted) return;
    this.#pumping = true;
    this.#drain()
      .catch(() => undefined) // aborted on close
      .finally(() => {
        this.#pumping = false;
      });
  }

  async #drain(): Promise<void> {
    while (this.#queue.length > 0) {
      await this.#gate.waitIfPaused(this.#group, { signal: this.#abort.signal });
      const worker = this.#pool.idle();
      if (!worker) return; // the next idle worker pumps again
      const task = this.#queue.shift();
      if (!task) return;
      this.#started += 1;
      this.#lastStartedAt = Date.now();
      this.#pool.run(worker, task).then(
        () => void (this.#completed += 1),
        () => void (this.#failed += 1),
      );
    }
  }
}
