import type {} from './errors.js';
import type { Logger, MetricsOptions } from '@guard/core';
import { assertNumberOption, GuardError, isGuardError, silentLogger, unrefInterval } from '@guard/core';
import type { ImmuneEvent } from './event.js';
import type { EventCounts, EventQuery, EventStore } from './event-store.js';
import type { EventWriter } from './event-writer.js';
import { GroupCommitter } from './group-commit.js';
import { immuneCounter, immuneHistogram } from './metrics.js';
import { migrateEventStore } from './migrations.js';
import { createPostgresWriter } from './postgres-writer.js';
import { COARSE_BUCKETS_PER_FINE, rollupDeltas } from './rollups.js';
import type { SqliteHandle } from './sqlite-writer.js';
import { createSqliteWriter } from './sqlite-writer.js';
import type { AnyKysely, EventStoreDialect } from './store-dialect.js';
import { resolveDialect } from './store-dialect.js';
import { toStoreError } from './store-error.js';
import { countEvents, pruneEvents, queryEvents } from './store-queries.js';
import type { StoreTables } from './store-queries.js';

/**
 * Options for {@link KyselyEventStore} and {@link createKyselyEventStore}.
 *
 * @example
 * const options: KyselyEventStoreOptions = { db, tableName: 'immune_events', retentionMs: 86_400_000 };
 */
export interface KyselyEventStoreOptions extends MetricsOptions {
  /** An existing kysely instance (may be shared with the rest of the app); its adapter says which SQL to write. */
  readonly db: AnyKysely;
  /**
   * @deprecated The dialect is read from `db`'s kysely adapter. When given it must agree (`INVALID_OPTION`
   * otherwise); it is used only for an adapter that is neither kysely's `SqliteAdapter` nor `PostgresAdapter`.
   */
  readonly dialect?: EventStoreDialect;
  /** Events table; the store also owns `<table>_rollup`, `<table>_migrations` and `<table>_migrations_lock`. Default `immune_events`. */
  readonly tableName?: string;
  /** Most events per commit (group commit). Default 1,000. */
  readonly maxBatchSize?: number;
  /** Most events waiting for a commit before `insert` rejects with `QUEUE_FULL`. Default 100,000. */
  readonly maxPending?: number;
  /** Commits in flight at once (a second starts only when a full batch waits). Default 2 on Postgres, 1 on SQLite. */
  readonly maxConcurrentCommits?: number;
  /** Events older than this are pruned; `Infinity` keeps everything. Default 7 days. */
  readonly retentionMs?: number;
  /** How often pruning runs. Default 60 s. */
  readonly pruneIntervalMs?: number;
  /**
   * Width of the fine count-rollup buckets. Counts are kept per fine bucket and per coarse bucket (60x wider), so a
   * summary reads at most ~60 fine rows, the coarse rows and the raw rows of one partial fine bucket. Default 60 s.
   */
  readonly rollupBucketMs?: number;
  /** Destroy `db` on close (set when the store created it). Default false. */
  readonly destroyOnClose?: boolean;
  /**
   * The better-sqlite3 `Database` under `db`: inserts then run as prepared statements inside one synchronous
   * transaction per batch, bypassing kysely's per-query overhead. Queries and migrations stay in kysely.
   */
  readonly sqliteHandle?: SqliteHandle;
  readonly logger?: Logger;
  /** Clock of the retention pruner (epoch ms). Default `Date.now`. */
  readonly now?: () => number;
}

const TABLE_NAME = /^[A-Za-z_][A-Za-z0-9_]{0,39}$/;

/**
 * The durable event store on kysely: SQLite (better-sqlite3, WAL) or Postgres (fleet mode: many services, one
 * table). Runs its own migrations (`migrations.ts`), keeps a count rollup updated in the same transaction as the
 * events (`rollups.ts`), writes each batch with the writer of its dialect (`sqlite-writer.ts`, `postgres-writer.ts`,
 * picked from the kysely adapter), prunes by retention and groups concurrent inserts into one commit per batch.
 *
 * @example
 * const db = new Kysely<Database>({ dialect: new PostgresDialect({ pool }) });
 * const store = await createKyselyEventStore({ db, tableName: 'immune_events' });
 */
export class KyselyEventStore implements EventStore {
  readonly kind: EventStoreDialect;
  readonly tableName: string;
  readonly rollupBucketMs: number;
  /** Width of the coarse rollup buckets (60 x `rollupBucketMs`). */
  readonly coarseBucketMs: number;
  readonly retentionMs: number;
  /** Resolves once migrations ran; rejects with `STORE_UNAVAILABLE` or `STORE_ERROR` if the first attempt failed (every later call retries it). */
  readonly ready: Promise<this>;
  readonly #db: AnyKysely;
  readonly #tables: StoreTables;
  readonly #options: KyselyEventStoreOptions;
  readonly #committer: GroupCommitter<ImmuneEvent>;
  readonly #pruned: ReturnType<typeof immuneCounter<'store'>>;
  /** Set once migrations ran (the fast SQLite path prepares statements against the migrated tables). */
  #writer: EventWriter | undefined;
  /** The running or succeeded migration; cleared on failure so the next call retries (the database may be back). */
  #migrated: Promise<void> | undefined;
  #pruneTimer: NodeJS.Timeout | undefined;
  #pruning: Promise<number> | undefined;
  #closed = false;
  #closing: Promise<void> | undefined;

  constructor(options: KyselyEventStoreOptions) {
    const tableName = options.tableName ?? 'immune_events';
    if (!TABLE_NAME.test(tableName)) {
      throw new GuardError('INVALID_OPTION', `tableName must match ${TABLE_NAME}, got ${JSON.stringify(tableName)}`, { details: { field: 'tableName' } });
    }
    if (!options.db || typeof options.db.selectFrom !== 'function' || typeof options.db.getExecutor !== 'function') {
      throw new GuardError('INVALID_OPTION', 'db must be a Kysely instance', { details: { field: 'db' } });
    }
    const kind = resolveDialect(options.db, options.dialect);
    const retentionMs = options.retentionMs ?? 7 * 24 * 3_600_000;
    const pruneIntervalMs = options.pruneIntervalMs ?? 60_000;
    const rollupBucketMs = options.rollupBucketMs ?? 60_000;
    assertNumberOption('retentionMs', retentionMs, { min: 1_000 });
    assertNumberOption('pruneIntervalMs', pruneIntervalMs, { min: 10, max: 2 ** 31 - 1 });
    assertNumberOption('rollupBucketMs', rollupBucketMs, { min: 1_000, max: 86_400_000, integer: true });
    this.kind = kind;
    this.tableName = tableName;
    this.rollupBucketMs = rollupBucketMs;
    this.coarseBucketMs = rollupBucketMs * COARSE_BUCKETS_PER_FINE;
    this.retentionMs = retentionMs;
    this.#db = options.db;
    this.#tables = { db: options.db, table: tableName, rollupTable: `${tableName}_rollup`, fineMs: rollupBucketMs, coarseMs: this.coarseBucketMs };
    this.#options = options;
    const logger = options.logger ?? silentLogger;

    const batchSize = immuneHistogram(options, {
      name: 'store_commit_batch_size',
      help: 'Events per group commit',
      labelNames: ['store'],
      buckets: [1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 2000, 5000],
    });
    const commitSeconds = immuneHistogram(options, {
      name: 'store_commit_duration_seconds',
      help: 'Duration of one group commit',
      labelNames: ['store'],
      buckets: [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1],
    });
    this.#pruned = immuneCounter(options, { name: 'store_pruned_total', help: 'Events removed by retention', labelNames: ['store'] });
    this.#committer = new GroupCommitter<ImmuneEvent>({
      maxBatchSize: options.maxBatchSize ?? 1_000,
      maxPending: options.maxPending ?? 100_000,
      maxConcurrentCommits: options.maxConcurrentCommits ?? (kind === 'postgres' ? 2 : 1),
      // Once migrated, a writer may commit synchronously (the SQLite fast path): no promise, no extra turn.
      commit: (events) => (this.#writer ? this.#writer.write(events) : this.#ensureMigrated().then(() => this.#writer!.write(events))),
      ...(batchSize && commitSeconds
        ? {
            onCommit: (size: number, seconds: number) => {
              batchSize.observe({ store: kind }, size);
              commitSeconds.observe({ store: kind }, seconds);
            },
          }
        : {}),
    });

    this.ready = this.#ensureMigrated().then(() => this);
    if (Number.isFinite(retentionMs)) {
      const now = options.now ?? Date.now;
      this.#pruneTimer = unrefInterval(() => {
        if (this.#pruning || this.#closed) return;
        this.prune(now() - retentionMs).catch((error: unknown) => {
          // An unreachable database is expected to come back (and is reported by every call meanwhile): warn only.
          if (isGuardError(error, 'STORE_UNAVAILABLE')) logger.warn({ err: error }, 'immune store prune skipped: store unavailable');
          else logger.error({ err: error }, 'immune store prune failed');
        });
      }, pruneIntervalMs);
    }
    // A failed open is surfaced by `ready` and by every call, which retries it: the database may come back.
    this.ready.catch(() => {});
  }

  #ensureMigrated(): Promise<void> {
    this.#migrated ??= this.#migrate().catch((error: unknown) => {
      this.#migrated = undefined;
      throw error;
    });
    return this.#migrated;
  }

  async #migrate(): Promise<void> {
    await migrateEventStore(this.#db, this.tableName, this.kind);
    const { db, table, rollupTable, fineMs, coarseMs } = this.#tables;
    const writer = { db, table, rollupTable, deltas: (events: readonly ImmuneEvent[]) => rollupDeltas(events, fineMs, coarseMs) };
    const handle = this.#options.sqliteHandle;
    this.#writer = this.kind === 'postgres' ? createPostgresWriter(writer) : createSqliteWriter(handle ? { ...writer, handle } : writer);
  }

  async #open(): Promise<void> {
    if (this.#closed) throw new GuardError('CLOSED', 'the event store is closed');
    try {
      await this.#ensureMigrated();
    } catch (error) {
      throw toStoreError(error, 'the event store failed to open');
    }
  }

  insert(event: ImmuneEvent): Promise<void> {
    if (this.#closed) return Promise.reject(new GuardError('CLOSED', 'the event store is closed'));
    return this.#committer.submit(event);
  }

  async query(query: EventQuery): Promise<ImmuneEvent[]> {
    await this.#open();
    return queryEvents(this.#tables, query);
  }

  async counts(since: number): Promise<EventCounts> {
    await this.#open();
    return countEvents(this.#tables, since);
  }

  /**
   * Deletes events created before `before`, rounded down to a coarse rollup bucket so counts stay exact; deletes in
   * chunks so a large backlog never holds the database for long. Concurrent calls share one run.
   */
  prune(before: number): Promise<number> {
    if (this.#pruning) return this.#pruning;
    const run = (async () => {
      await this.#open();
      const removed = await pruneEvents(this.#tables, before, () => this.#closed);
      if (removed > 0) this.#pruned?.inc({ store: this.kind }, removed);
      return removed;
    })();
    this.#pruning = run;
    const clear = () => {
      this.#pruning = undefined;
    };
    run.then(clear, clear);
    return run;
  }

  /** Waits until every queued insert has been committed. */
  flush(): Promise<void> {
    return this.#committer.drain();
  }

  close(): Promise<void> {
    this.#closed = true;
    this.#closing ??= (async () => {
      if (this.#pruneTimer) clearInterval(this.#pruneTimer);
      await this.#committer.close();
      await this.#pruning?.catch(() => {});
      await this.#migrated?.catch(() => {});
      if (this.#options.destroyOnClose) await this.#db.destroy();
    })();
    return this.#closing;
  }

  [Symbol.asyncDispose](): Promise<void> {
    return this.close();
  }
}

/**
 * Waits for a new store's migrations and hands it back; closes it when they failed. Every `create*Store` ends here.
 *
 * @example
 * return openStore(new KyselyEventStore(options));
 */
export async function openStore<S extends KyselyEventStore>(store: S): Promise<S> {
  try {
    await store.ready;
    return store;
  } catch (error) {
    await store.close();
    throw error;
  }
}

/**
 * Creates a {@link KyselyEventStore} on an existing kysely instance and waits for its migrations.
 *
 * @example
 * const db = new Kysely<Database>({ dialect: new SqliteDialect({ database: new Database('app.db') }) });
 * await using store = await createKyselyEventStore({ db });
 */
export async function createKyselyEventStore(options: KyselyEventStoreOptions): Promise<KyselyEventStore> {
  return openStore(new KyselyEventStore(options));
}
