import { spawn, type ChildProcess } from 'node:child_process';
import { closeOnce, GuardError } from '@guard/core';

/**
 * What each worker runs: it burns CPU for `burnMs` per task (a stand-in for rendering a report) and answers
 * `done`. Inline, so the built demo needs no extra file; it exits when the parent goes away.
 */
const WORKER_SCRIPT = `
process.title = 'guard-demo-worker';
process.on('message', (m) => {
  if (!m || m.type !== 'task') return;
  const end = Date.now() + m.burnMs;
  let x = 0;
  while (Date.now() < end) x++;
  process.send({ type: 'done', id: m.id, spins: x });
});
process.on('disconnect', () => process.exit(0));
`;

/** One worker replica: a real child process. */
export interface PoolWorker {
  readonly id: string;
  readonly pid: number;
  readonly startedAt: number;
}

/** A task for a worker: CPU time it burns. */
export interface PoolTask {
  readonly name: string;
  readonly burnMs: number;
}

/** What {@link WorkerPool.scaleDown} did. */
export interface ScaleResult {
  readonly from: number;
  readonly to: number;
  readonly removed: readonly PoolWorker[];
}

/** Options for {@link WorkerPool}. */
export interface WorkerPoolOptions {
  /** Replicas started by {@link WorkerPool.start}. Default 3. */
  readonly size?: number;
  /** Scaling down never goes below this. Default 1. */
  readonly minSize?: number;
  /** How long a stopped worker gets to exit after SIGTERM before SIGKILL. Default 2000. */
  readonly stopGraceMs?: number;
}

interface Slot extends PoolWorker {
  readonly child: ChildProcess;
  running?: { id: number; resolve: () => void; reject: (error: Error) => void };
  stopping: boolean;
}

/**
 * The demo's worker replicas: real child processes that run heavy tasks. `scale_down` removes replicas
 * (their pids are gone afterwards), `scale_up` adds them back. A worker that dies is not replaced on its own:
 * the pool's size is what the operator (or a playbook) set.
 *
 * @example
 * await using pool = new WorkerPool({ size: 3 });
 * pool.start();
 * await pool.run(pool.idle()!, { name: 'report', burnMs: 50 });
 * await pool.scaleDown(2); // 1 replica left
 */
export class WorkerPool implements AsyncDisposable {
  readonly #slots = new Map<string, Slot>();
  readonly #size: number;
  readonly #minSize: number;
  readonly #graceMs: number;
  readonly #idleListeners = new Set<() => void>();
  #seq = 0;
  #taskSeq = 0;
  #closed = false;

  constructor(options: WorkerPoolOptions = {}) {
    this.#size = options.size ?? 3;
    this.#minSize = options.minSize ?? 1;
    this.#graceMs = options.stopGraceMs ?? 2_000;
    if (!Number.isInteger(this.#size) || this.#size < 1) throw new GuardError('INVALID_OPTION', 'size must be an integer >= 1', { details: { field: 'size' } });
    if (!Number.isInteger(this.#minSize) || this.#minSize < 0 || this.#minSize > this.#size) {
      throw new GuardError('INVALID_OPTION', 'minSize must be an integer between 0 and size', { details: { field: 'minSize' } });
    }
  }

  /** Starts the configured number of replicas (idempotent). */
  start(): void {
    while (this.#slots.size < this.#size) this.#spawn();
  }

  /** Replicas alive now. */
  get size(): number {
    return this.#slots.size;
  }

  /** The live replicas. */
  workers(): PoolWorker[] {
    return [...this.#slots.values()].filter((s) => !s.stopping).map(({ id, pid, startedAt }) => ({ id, pid, startedAt }));
  }

  /** Pids of the live replicas (for CPU accounting and the chaos lab's checks). */
  pids(): number[] {
    return this.workers().map((w) => w.pid);
  }

  /** Replicas with a task running. */
  get busy(): number {
    return [...this.#slots.values()].filter((s) => s.running).length;
  }

  /** An idle replica, if any. */
  idle(): PoolWorker | undefined {
    return [...this.#slots.values()].find((s) => !s.running && !s.stopping);
  }

  /** Calls `listener` whenever a replica becomes idle. @returns unsubscribe. */
  onIdle(listener: () => void): () => void {
    this.#idleListeners.add(listener);
    return () => this.#idleListeners.delete(listener);
  }

  /** Runs `task` on `worker` (which must be idle); resolves when the worker answers. */
  run(worker: PoolWorker, task: PoolTask): Promise<void> {
    if (this.#closed) return Promise.reject(new GuardError('CLOSED', 'WorkerPool is closed'));
    const slot = this.#slots.get(worker.id);
    if (!slot || slot.stopping) return Promise.reject(new GuardError('INVALID_INPUT', `worker ${worker.id} is gone`, { details: { field: 'worker' } }));
    if (slot.running) return Promise.reject(new GuardError('INVALID_INPUT', `worker ${worker.id} is busy`, { details: { field: 'worker' } }));
    return new Promise<void>((resolve, reject) => {
      const id = ++this.#taskSeq;
      slot.running = { id, resolve, reject };
      slot.child.send({ type: 'task', id, burnMs: task.burnMs }, (error) => {
        if (error && slot.running?.id === id) this.#finish(slot, error);
      });
    });
  }

  /**
   * Stops `count` replicas (idle ones first), never going below `minSize`, and waits until their processes exited;
   * resolves with how many stopped (the shape `scale_down` acts on). A task running on a stopped replica is rejected.
   */
  async scaleDown(count: number): Promise<number> {
    return (await this.shrink(count)).removed.length;
  }

  /** {@link scaleDown} with the replicas it removed. */
  async shrink(count: number): Promise<ScaleResult> {
    if (!Number.isInteger(count) || count < 1) throw new GuardError('INVALID_INPUT', 'count must be an integer >= 1', { details: { field: 'count' } });
    const live = [...this.#slots.values()].filter((s) => !s.stopping);
    const from = live.length;
    const victims = live.sort((a, b) => Number(Boolean(a.running)) - Number(Boolean(b.running))).slice(0, Math.max(0, Math.min(count, from - this.#minSize)));
    await Promise.all(victims.map((slot) => this.#stop(slot)));
    return { from, to: this.workers().length, removed: victims.map(({ id, pid, startedAt }) => ({ id, pid, startedAt })) };
  }

  /** Starts `count` more replicas. */
  scaleUp(count: number): ScaleResult {
    if (this.#closed) throw new GuardError('CLOSED', 'WorkerPool is closed');
    const from = this.workers().length;
    for (let i = 0; i < count; i++) this.#spawn();
    return { from, to: this.workers().length, removed: [] };
  }

  /** Stops every replica. */
  readonly close = closeOnce(async () => {
    this.#closed = true;
    await Promise.all([...this.#slots.values()].map((slot) => this.#stop(slot)));
  });

  [Symbol.asyncDispose](): Promise<void> {
    return this.close();
  }

  #spawn(): void {
    const child = spawn(process.execPath, ['-e', WORKER_SCRIPT], { stdio: ['ignore', 'ignore', 'ignore', 'ipc'] });
    child.on('error', () => undefined);
    if (child.pid === undefined) throw new GuardError('INVALID_OPTION', 'could not start a pool worker', { details: { field: 'size' } });
    const slot: Slot = { id: `worker_${++this.#seq}`, pid: child.pid, startedAt: Date.now(), child, stopping: false };
    this.#slots.set(slot.id, slot);
    child.on('message', (message: { type?: string; id?: number }) => {
      if (message?.type === 'done' && slot.running?.id === message.id) this.#finish(slot);
    });
    child.once('exit', (code, signal) => {
      this.#slots.delete(slot.id);
      if (slot.running) this.#finish(slot, new Error(`worker ${slot.pid} exited (${signal ?? code})`));
    });
  }

  #finish(slot: Slot, error?: Error): void {
    const running = slot.running;
    slot.running = undefined;
    if (error) running?.reject(error);
    else running?.resolve();
    if (!slot.stopping && !this.#closed) for (const listener of this.#idleListeners) listener();
  }

  #stop(slot: Slot): Promise<void> {
    slot.stopping = true;
    if (slot.child.exitCode !== null || slot.child.signalCode !== null) {
      this.#slots.delete(slot.id);
      return Promise.resolve();
    }
    return new Promise<void>((resolve) => {
      const timer = setTimeout(() => slot.child.kill('SIGKILL'), this.#graceMs);
      timer.unref();
      slot.child.once('exit', () => {
        clearTimeout(timer);
        resolve();
      });
      slot.child.kill('SIGTERM');
    });
  }
}
