import type { ChildProcess } from 'node:child_process';
import { GuardError, assertNumberOption, terminateProcess } from '@guard/core';
import { TaskCancelledError } from './errors.js';

/** Where a task is in its life. */
export type TaskStatus = 'running' | 'succeeded' | 'failed' | 'cancelled';

/**
 * Options of {@link TaskRegistry}.
 *
 * @example
 * const tasks = new TaskRegistry({ killGraceMs: 2_000 } satisfies TaskRegistryOptions);
 */
export interface TaskRegistryOptions {
  /** How long cancelled tasks' children get after SIGTERM before SIGKILL; default 5 000 ms. */
  readonly killGraceMs?: number;
}

/** What {@link TaskRegistry.register} takes. */
export interface RegisterTaskOptions<T> {
  /** Unique among running tasks. */
  readonly taskId: string;
  /** The work; it should stop when `signal` aborts. Without it, settle the task with `complete()` or `fail()`. */
  readonly run?: (signal: AbortSignal, task: ManagedTask<T>) => T | PromiseLike<T>;
  /** A parent signal: aborting it cancels the task. */
  readonly signal?: AbortSignal;
}

/** How an attached child is killed. */
export interface AttachOptions {
  /** Signal the child's whole process group (`kill(-pid)`); the child must be spawned with `detached: true`. */
  readonly group?: boolean;
}

interface Child {
  readonly process: ChildProcess;
  readonly group: boolean;
  terminating: Promise<void> | undefined;
}

function alive(child: ChildProcess): boolean {
  return child.exitCode === null && child.signalCode === null;
}

function exited(child: ChildProcess): Promise<void> {
  if (!alive(child)) return Promise.resolve();
  return new Promise((resolve) => child.once('exit', () => resolve()));
}

/**
 * One cancellable unit of work: an id, an `AbortSignal`, attached child processes and a promise that settles with
 * the work's result, or rejects with `TASK_CANCELLED` when cancelled.
 *
 * @example
 * const task = tasks.register({ taskId: 'render-42', run: (signal) => render(job, { signal }) });
 * task.attach(spawn('ffmpeg', args));
 * const video = await task.promise;
 */
export class ManagedTask<T = unknown> {
  readonly taskId: string;
  readonly startedAt: number;
  readonly promise: Promise<T>;
  readonly #controller = new AbortController();
  readonly #children = new Set<Child>();
  readonly #killGraceMs: number;
  readonly #onSettled: (task: ManagedTask<T>) => void;
  #status: TaskStatus = 'running';
  #resolve!: (value: T) => void;
  #reject!: (error: unknown) => void;

  /** @internal Use {@link TaskRegistry.register}. */
  constructor(options: RegisterTaskOptions<T>, killGraceMs: number, onSettled: (task: ManagedTask<T>) => void) {
    this.taskId = options.taskId;
    this.startedAt = Date.now();
    this.#killGraceMs = killGraceMs;
    this.#onSettled = onSettled;
    this.promise = new Promise<T>((resolve, reject) => {
      this.#resolve = resolve;
      this.#reject = reject;
    });
    this.promise.catch(() => {}); // a cancelled task nobody awaits must not crash the process
  }

  /** @internal Starts `run` and links the parent signal. */
  start(options: RegisterTaskOptions<T>): void {
    const parent = options.signal;
    if (parent !== undefined) {
      const why = () => (parent.reason instanceof Error ? parent.reason.message : 'parent aborted');
      if (parent.aborted) {
        void this.cancel(why());
        return;
      }
      const onAbort = () => void this.cancel(why());
      parent.addEventListener('abort', onAbort, { once: true });
      this.promise.then(
        () => parent.removeEventListener('abort', onAbort),
        () => parent.removeEventListener('abort', onAbort),
      );
    }
    if (options.run === undefined) return;
    let result: T | PromiseLike<T>;
    try {
      result = options.run(this.#controller.signal, this);
    } catch (error) {
      this.fail(error);
      return;
    }
    Promise.resolve(result).then(
      (value) => this.complete(value),
      (error: unknown) => this.fail(error),
    );
  }

  /** Aborted when the task is cancelled (its reason is the {@link TaskCancelledError}). */
  get signal(): AbortSignal {
    return this.#controller.signal;
  }

  get status(): TaskStatus {
    return this.#status;
  }

  /** Attached children that have not exited yet. */
  get children(): ChildProcess[] {
    return Array.from(this.#children, (c) => c.process).filter(alive);
  }

  /**
   * Attaches a child process: cancelling the task SIGTERMs it, then SIGKILLs it after the grace period. A child
   * attached to an already cancelled task is killed at once.
   *
   * @example
   * task.attach(spawn('convert', args));
   */
  attach(child: ChildProcess, options: AttachOptions = {}): void {
    if (typeof child?.kill !== 'function') {
      throw new GuardError('INVALID_INPUT', 'attach() takes a ChildProcess', { details: { field: 'child' } });
    }
    const entry: Child = { process: child, group: options.group === true, terminating: undefined };
    if (!alive(child)) return;
    this.#children.add(entry);
    child.once('exit', () => this.#children.delete(entry));
    if (this.#status === 'cancelled') void this.#terminate(entry);
  }

  /** Settles a running task with a value (for tasks without `run`); ignored once settled. */
  complete(value: T): void {
    if (this.#settle('succeeded')) this.#resolve(value);
  }

  /** Settles a running task with an error; ignored once settled. */
  fail(error: unknown): void {
    if (this.#settle('failed')) this.#reject(error);
  }

  #settle(status: TaskStatus): boolean {
    if (this.#status !== 'running') return false;
    this.#status = status;
    this.#onSettled(this);
    return true;
  }

  /**
   * Aborts the signal, rejects the promise with `TASK_CANCELLED`, SIGTERMs the children and SIGKILLs the ones still
   * alive after the grace period. Resolves when every child has exited (and was reaped).
   *
   * @example
   * await task.cancel('user pressed stop');
   */
  cancel(reason = 'cancelled'): Promise<void> {
    if (this.#status === 'running') {
      const error = new TaskCancelledError(this.taskId, reason);
      this.#settle('cancelled');
      this.#controller.abort(error);
      this.#reject(error);
    }
    return Promise.all(Array.from(this.#children, (entry) => this.#terminate(entry))).then(() => undefined);
  }

  #terminate(entry: Child): Promise<void> {
    entry.terminating ??= this.#kill(entry);
    return entry.terminating;
  }

  async #kill(entry: Child): Promise<void> {
    const child = entry.process;
    if (!alive(child)) return;
    await terminateProcess(child, { graceMs: this.#killGraceMs, group: entry.group });
    // SIGKILL cannot be ignored, but its exit may come later than terminateProcess waits: cancel() promises the exit
    await exited(child);
  }
}

/**
 * Running tasks by id. `cancel(taskId)` aborts a task and kills its children (SIGTERM, then SIGKILL after
 * `killGraceMs`); no process is left behind.
 *
 * @example
 * await using tasks = new TaskRegistry({ killGraceMs: 2_000 });
 * const task = tasks.register({ taskId: 'job-1', run: (signal) => work(signal) });
 * await tasks.cancel('job-1', 'timeout');
 */
export class TaskRegistry implements AsyncDisposable {
  readonly killGraceMs: number;
  readonly #tasks = new Map<string, ManagedTask<unknown>>();
  #closing: Promise<void> | undefined;

  constructor(options: TaskRegistryOptions = {}) {
    const { killGraceMs = 5_000 } = options;
    assertNumberOption('killGraceMs', killGraceMs, { min: 0, max: 2_147_483_647 });
    this.killGraceMs = killGraceMs;
  }

  /**
   * Registers and starts a task; throws `INVALID_INPUT` (`details.reason: 'exists'`) when that id is running,
   * `CLOSED` after `close()`.
   *
   * @example
   * const task = tasks.register({ taskId: 'scan', run: async (signal) => scan(dir, { signal }) });
   */
  register<T>(options: RegisterTaskOptions<T>): ManagedTask<T> {
    if (this.#closing !== undefined) throw new GuardError('CLOSED', 'TaskRegistry is closed');
    const { taskId } = options;
    if (typeof taskId !== 'string' || taskId === '') {
      throw new GuardError('INVALID_INPUT', 'taskId must be a non-empty string', { details: { field: 'taskId' } });
    }
    if (this.#tasks.has(taskId)) {
      throw new GuardError('INVALID_INPUT', `task "${taskId}" is already running`, { details: { field: 'taskId', taskId, reason: 'exists' } });
    }
    const task = new ManagedTask<T>(options, this.killGraceMs, (settled) => {
      if (this.#tasks.get(settled.taskId) === settled) this.#tasks.delete(settled.taskId);
    });
    this.#tasks.set(taskId, task as ManagedTask<unknown>);
    task.start(options);
    return task;
  }

  /** The running task with that id. */
  get(taskId: string): ManagedTask<unknown> | undefined {
    return this.#tasks.get(taskId);
  }

  /** Running tasks. */
  list(): ManagedTask<unknown>[] {
    return Array.from(this.#tasks.values());
  }

  /** Number of running tasks. */
  get size(): number {
    return this.#tasks.size;
  }

  /**
   * Cancels a running task (see {@link ManagedTask.cancel}); resolves false when no task has that id, true once
   * its children have exited.
   *
   * @example
   * if (!(await tasks.cancel(id, 'client went away'))) log.warn({ id }, 'no such task');
   */
  async cancel(taskId: string, reason = 'cancelled'): Promise<boolean> {
    const task = this.#tasks.get(taskId);
    if (task === undefined) return false;
    await task.cancel(reason);
    return true;
  }

  /** Cancels every running task and waits for their children; later `register()` calls throw `CLOSED`. */
  close(): Promise<void> {
    this.#closing ??= Promise.all(this.list().map((task) => task.cancel('registry closed'))).then(() => undefined);
    return this.#closing;
  }

  [Symbol.asyncDispose](): Promise<void> {
    return this.close();
  }
}
