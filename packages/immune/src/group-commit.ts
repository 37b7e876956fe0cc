import type {} from './errors.js';
import { assertNumberOption, GuardError } from '@guard/core';
import { toStoreError } from './store-error.js';

/**
 * Options for {@link GroupCommitter}.
 *
 * @example
 * new GroupCommitter<Row>({ commit: (rows) => writeAll(rows), maxBatchSize: 500, maxPending: 50_000 });
 */
export interface GroupCommitterOptions<T> {
  /** Commits one batch in one transaction; resolve only once it is durable. */
  readonly commit: (batch: readonly T[]) => void | Promise<void>;
  /** Largest batch per transaction. Default 1,000. */
  readonly maxBatchSize?: number;
  /** Most items waiting for a commit; more are rejected with `QUEUE_FULL`. Default 100,000. */
  readonly maxPending?: number;
  /**
   * Most commits in flight at once. Default 1. A second commit starts only when a full batch is waiting, so grouping
   * is not diluted; useful for pooled, networked databases (Postgres), pointless for a single SQLite connection.
   */
  readonly maxConcurrentCommits?: number;
  /** Called after each successful commit with the batch size and its duration in seconds. */
  readonly onCommit?: (size: number, seconds: number) => void;
}

interface Pending<T> {
  readonly item: T;
  readonly resolve: () => void;
  readonly reject: (error: unknown) => void;
}

/**
 * Group commit: concurrent submissions are queued and written in one transaction per batch. A batch is flushed
 * when the queue reaches `maxBatchSize` or on the next turn of the event loop (`setImmediate`); while a commit runs,
 * new submissions gather into the next batch. Each submission resolves only after its own transaction committed.
 *
 * @example
 * const committer = new GroupCommitter<Row>({ commit: (rows) => insertAll.immediate(rows) });
 * await Promise.all(rows.map((row) => committer.submit(row)));
 */
export class GroupCommitter<T> {
  readonly maxBatchSize: number;
  readonly maxPending: number;
  readonly maxConcurrentCommits: number;
  readonly #commit: (batch: readonly T[]) => void | Promise<void>;
  readonly #onCommit: ((size: number, seconds: number) => void) | undefined;
  #queue: Pending<T>[] = [];
  #active = 0;
  #scheduled = false;
  #closed = false;
  #idle: Array<() => void> = [];

  constructor(options: GroupCommitterOptions<T>) {
    const maxBatchSize = options.maxBatchSize ?? 1_000;
    const maxPending = options.maxPending ?? 100_000;
    assertNumberOption('maxBatchSize', maxBatchSize, { min: 1, max: 100_000, integer: true });
    assertNumberOption('maxPending', maxPending, { min: 1, integer: true });
    const maxConcurrentCommits = options.maxConcurrentCommits ?? 1;
    assertNumberOption('maxConcurrentCommits', maxConcurrentCommits, { min: 1, max: 64, integer: true });
    this.maxConcurrentCommits = maxConcurrentCommits;
    this.maxBatchSize = maxBatchSize;
    this.maxPending = maxPending;
    this.#commit = options.commit;
    this.#onCommit = options.onCommit;
  }

  /** Items waiting for a commit. */
  get pending(): number {
    return this.#queue.length;
  }

  /** Queues one item; resolves after the transaction holding it committed. */
  submit(item: T): Promise<void> {
    if (this.#closed) return Promise.reject(new GuardError('CLOSED', 'the event store is closed'));
    if (this.#queue.length >= this.maxPending) {
      return Promise.reject(
        new GuardError('QUEUE_FULL', `${this.#queue.length} events are waiting for a commit (maxPending ${this.maxPending})`, {
          details: { pending: this.#queue.length, maxPending: this.maxPending },
        }),
      );
    }
    return new Promise<void>((resolve, reject) => {
      this.#queue.push({ item, resolve, reject });
      this.#kick();
    });
  }

  #kick(): void {
    if (this.#active > 0) {
      // The running commit loops pick the queue up; a full batch may open another lane.
      if (this.#active < this.maxConcurrentCommits && this.#queue.length >= this.maxBatchSize) void this.#run();
      return;
    }
    if (this.#queue.length >= this.maxBatchSize) {
      void this.#run();
      return;
    }
    if (this.#scheduled) return;
    this.#scheduled = true;
    setImmediate(() => {
      this.#scheduled = false;
      void this.#run();
    });
  }

  async #run(): Promise<void> {
    if (this.#active >= this.maxConcurrentCommits || this.#queue.length === 0) return;
    this.#active++;
    try {
      while (this.#queue.length > 0) {
        const batch = this.#queue.length <= this.maxBatchSize ? this.#queue : this.#queue.slice(0, this.maxBatchSize);
        this.#queue = batch === this.#queue ? [] : this.#queue.slice(this.maxBatchSize);
        const started = performance.now();
        try {
          await this.#commit(batch.map((p) => p.item));
        } catch (error) {
          // One failure rejects every item of the batch: none of them is acknowledged, none is stored.
          const failure = toStoreError(error, `commit of ${batch.length} events failed`);
          for (const p of batch) p.reject(failure);
          continue;
        }
        try {
          this.#onCommit?.(batch.length, (performance.now() - started) / 1000);
        } catch {}
        for (const p of batch) p.resolve();
      }
    } finally {
      this.#active--;
    }
    if (this.#active > 0) return;
    const idle = this.#idle;
    this.#idle = [];
    for (const wake of idle) wake();
  }

  /** Resolves once every queued item has been committed (or failed). */
  drain(): Promise<void> {
    if (this.#active === 0 && this.#queue.length === 0) return Promise.resolve();
    return new Promise<void>((resolve) => {
      this.#idle.push(resolve);
      if (this.#active === 0) this.#kick();
    }).then(() => this.drain());
  }

  /** Stops accepting items and waits for the queue to drain. */
  async close(): Promise<void> {
    this.#closed = true;
    await this.drain();
  }
}
