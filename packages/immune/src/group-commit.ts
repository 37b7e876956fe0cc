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

/** Items that will be committed together, and the one promise all their submitters wait on. */
class Batch<T> {
  readonly items: T[] = [];
  readonly promise: Promise<void>;
  resolve!: () => void;
  reject!: (error: unknown) => void;

  constructor() {
    this.promise = new Promise<void>((resolve, reject) => {
      this.resolve = resolve;
      this.reject = reject;
    });
    // a batch whose submitters all stopped listening must not raise an unhandled rejection of its own
    this.promise.catch(() => {});
  }
}

/**
 * Group commit: concurrent submissions are queued and written in one transaction per batch. A batch is flushed
 * when it reaches `maxBatchSize` or on the next turn of the event loop (`setImmediate`); while a commit runs,
 * new submissions gather into the next batch. Each submission resolves only after its own transaction committed.
 * Submissions of one batch share one promise, so a submission costs an array push, not a promise and two closures.
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
  /** Batches waiting for a commit, oldest first; only the last one takes new items. */
  #batches: Batch<T>[] = [];
  #pending = 0;
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
    return this.#pending;
  }

  /** Queues one item; resolves after the transaction holding it committed. */
  submit(item: T): Promise<void> {
    if (this.#closed) return Promise.reject(new GuardError('CLOSED', 'the event store is closed'));
    if (this.#pending >= this.maxPending) {
      return Promise.reject(
        new GuardError('QUEUE_FULL', `${this.#pending} events are waiting for a commit (maxPending ${this.maxPending})`, {
          details: { pending: this.#pending, maxPending: this.maxPending },
        }),
      );
    }
    const batches = this.#batches;
    let batch = batches[batches.length - 1];
    if (batch === undefined || batch.items.length >= this.maxBatchSize) batches.push((batch = new Batch<T>()));
    batch.items.push(item);
    this.#pending++;
    this.#kick();
    return batch.promise;
  }

  #kick(): void {
    const full = this.#batches[0]!.items.length >= this.maxBatchSize;
    if (this.#active > 0) {
      // The running commit loops pick the queue up; a full batch may open another lane.
      if (this.#active < this.maxConcurrentCommits && full) void this.#run();
      return;
    }
    if (full) {
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
    if (this.#active >= this.maxConcurrentCommits || this.#batches.length === 0) return;
    this.#active++;
    try {
      let batch: Batch<T> | undefined;
      while ((batch = this.#batches.shift()) !== undefined) {
        this.#pending -= batch.items.length;
        const started = performance.now();
        try {
          await this.#commit(batch.items);
        } catch (error) {
          // One failure rejects every item of the batch: none of them is acknowledged, none is stored.
          batch.reject(toStoreError(error, `commit of ${batch.items.length} events failed`));
          continue;
        }
        try {
          this.#onCommit?.(batch.items.length, (performance.now() - started) / 1000);
        } catch {}
        batch.resolve();
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
    if (this.#active === 0 && this.#batches.length === 0) return Promise.resolve();
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
