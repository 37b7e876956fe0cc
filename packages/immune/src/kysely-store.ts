import type {} from './errors.js';
import type { Logger, MetricsOptions } from '@guard/core';
import { assertNumberOption, GuardError, isGuardError, histogram, counter, metricName, resolveRegistry, silentLogger, unrefInterval } from '@guard/core';
import { Migrator, sql } from 'kysely';
import type { Kysely, Migration } from 'kysely';
import type { ImmuneEvent, ImmuneEventType, ImmuneSeverity } from './event.js';
import { fromRow, toRow, type EventRow } from './event-row.js';
import type { EventCounts, EventQuery, EventStore } from './event-store.js';
import { emptyCounters } from './event-store.js';
import { GroupCommitter } from './group-commit.js';
import { retryLostConnection, toStoreError } from './store-error.js';

/**
 * The SQL dialects the store speaks.
 *
 * @example
 * createKyselyEventStore({ db, dialect: 'postgres' satisfies EventStoreDialect });
 */
export type EventStoreDialect = 'sqlite' | 'postgres';

/**
 * The few calls of a better-sqlite3 `Database` the SQLite fast path uses (a structural type, so the main entry
 * never imports better-sqlite3).
 *
 * @example
 * const database = new Database('app.db'); // better-sqlite3
 * const store = new KyselyEventStore({ db, dialect: 'sqlite', sqliteHandle: database });
 */
export interface SqliteHandle {
  prepare(source: string): { run(...params: unknown[]): unknown };
  transaction(fn: (...args: any[]) => void): (...args: any[]) => unknown;
  readonly inTransaction: boolean;
}

/**
 * Options for {@link KyselyEventStore} and {@link createKyselyEventStore}.
 *
 * @example
 * const options: KyselyEventStoreOptions = { db, dialect: 'sqlite', tableName: 'immune_events', retentionMs: 86_400_000 };
 */
export interface KyselyEventStoreOptions {
  /** An existing kysely instance (may be shared with the rest of the app). */
  readonly db: Kysely<any>;
  readonly dialect: EventStoreDialect;
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
   * The better-sqlite3 `Database` under `db`: inserts then run as one prepared statement per row inside one
   * synchronous transaction per batch, bypassing kysely's per-query overhead. Queries and migrations stay in kysely.
   */
  readonly sqliteHandle?: SqliteHandle;
  readonly logger?: Logger;
  /** prom-client registry (default global) and metric prefix (default `guard_immune`). */
  readonly registry?: MetricsOptions['registry'];
  readonly metricsPrefix?: string;
}

const TABLE_NAME = /^[A-Za-z_][A-Za-z0-9_]{0,39}$/;
const SQLITE_ROWS_PER_STATEMENT = 500;
const PRUNE_CHUNK = 5_000;
const FAST_CHUNK = 50;
/** Attempts of a statement whose connection died under it (several pooled connections may be cut at once). */
const LOST_CONNECTION_ATTEMPTS = 3;

function migrations(table: string, dialect: EventStoreDialect): Record<string, Migration> {
  // SQLite: WITHOUT ROWID tables clustered on their primary key. The events table is ordered by (created_at, id),
  // so time-range queries read it directly and inserts (time-ordered) append; no separate time index is needed.
  const clustered = sql`without rowid`;
  return {
    '001_create_events': {
      async up(db) {
        let events = db.schema
          .createTable(table)
          .ifNotExists()
          .addColumn('id', 'varchar(64)', (c) => c.notNull())
          .addColumn('agent_id', 'text')
          .addColumn('module', 'text')
          .addColumn('severity', 'varchar(16)', (c) => c.notNull())
          .addColumn('type', 'varchar(32)', (c) => c.notNull())
          .addColumn('message', 'text', (c) => c.notNull())
          .addColumn('meta', 'text', (c) => c.notNull())
          .addColumn('created_at', 'bigint', (c) => c.notNull())
          .addPrimaryKeyConstraint(`${table}_pk`, ['created_at', 'id']);
        if (dialect === 'sqlite') events = events.modifyEnd(clustered);
        await events.execute();
        // Only CRITICAL rows pay for this one (partial index): it serves "latest critical" and severity=CRITICAL queries.
        await db.schema
          .createIndex(`${table}_critical_idx`)
          .ifNotExists()
          .on(table)
          .columns(['created_at'])
          .where(sql.ref('severity'), '=', sql.lit('CRITICAL'))
          .execute();
        let rollup = db.schema
          .createTable(`${table}_rollup`)
          .ifNotExists()
          .addColumn('width', 'bigint', (c) => c.notNull())
          .addColumn('bucket', 'bigint', (c) => c.notNull())
          .addColumn('severity', 'varchar(16)', (c) => c.notNull())
          .addColumn('type', 'varchar(32)', (c) => c.notNull())
          .addColumn('count', 'bigint', (c) => c.notNull())
          .addPrimaryKeyConstraint(`${table}_rollup_pk`, ['width', 'bucket', 'severity', 'type']);
        if (dialect === 'sqlite') rollup = rollup.modifyEnd(clustered);
        await rollup.execute();
      },
      async down(db) {
        await db.schema.dropTable(`${table}_rollup`).ifExists().execute();
        await db.schema.dropTable(table).ifExists().execute();
      },
    },
  };
}

interface Delta {
  width: number;
  bucket: number;
  severity: string;
  type: string;
  count: number;
}

const SEVERITY_INDEX: Record<string, number> = { INFO: 0, WARNING: 1, CRITICAL: 2 };
const TYPE_INDEX: Record<string, number> = { POLICY_VIOLATION: 0, ERROR_SPIKE: 1, SELF_HEALING_ACTION: 2 };
const SEVERITY_NAMES = ['INFO', 'WARNING', 'CRITICAL'] as const;
const TYPE_NAMES = ['POLICY_VIOLATION', 'ERROR_SPIKE', 'SELF_HEALING_ACTION'] as const;

/** Count deltas per (width, bucket, severity, type) of one batch, in a fixed order (fine first, then by bucket). */
function deltasOf(events: readonly ImmuneEvent[], fineMs: number, coarseMs: number): Delta[] {
  const fine = new Map<number, number[]>();
  let last = NaN;
  let counts: number[] = [];
  for (const e of events) {
    const bucket = Math.floor(e.createdAt / fineMs) * fineMs;
    if (bucket !== last) {
      last = bucket;
      let found = fine.get(bucket);
      if (!found) fine.set(bucket, (found = new Array<number>(9).fill(0)));
      counts = found;
    }
    counts[SEVERITY_INDEX[e.severity]! * 3 + TYPE_INDEX[e.type]!]!++;
  }
  const coarse = new Map<number, number[]>();
  for (const [bucket, c] of fine) {
    const key = Math.floor(bucket / coarseMs) * coarseMs;
    let sum = coarse.get(key);
    if (!sum) coarse.set(key, (sum = new Array<number>(9).fill(0)));
    for (let i = 0; i < 9; i++) sum[i]! += c[i]!;
  }
  // A fixed order keeps row locks ordered across fleet instances (no deadlocks on Postgres).
  const deltas: Delta[] = [];
  for (const [width, map] of [
    [fineMs, fine],
    [coarseMs, coarse],
  ] as const) {
    for (const bucket of [...map.keys()].sort((a, b) => a - b)) {
      const c = map.get(bucket)!;
      for (let i = 0; i < 9; i++) {
        if (c[i]! > 0) deltas.push({ width, bucket, severity: SEVERITY_NAMES[Math.floor(i / 3)]!, type: TYPE_NAMES[i % 3]!, count: c[i]! });
      }
    }
  }
  return deltas;
}

/**
 * The durable event store on kysely: SQLite (better-sqlite3, WAL) or Postgres (fleet mode: many services, one
 * table). Runs its own migrations into `<table>_migrations`, indexes the queries, keeps a per-bucket count rollup
 * updated in the same transaction as the events (so summaries over millions of rows stay fast), prunes by
 * retention, and groups concurrent inserts into one transaction per batch.
 *
 * @example
 * const db = new Kysely<any>({ dialect: new PostgresDialect({ pool }) });
 * const store = await createKyselyEventStore({ db, dialect: 'postgres', tableName: 'immune_events' });
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
  readonly #db: Kysely<any>;
  readonly #rollup: string;
  readonly #options: KyselyEventStoreOptions;
  readonly #logger: Logger;
  readonly #committer: GroupCommitter<ImmuneEvent>;
  readonly #pruned: ReturnType<typeof counter<'store'>>;
  #fastCommit: ((events: readonly ImmuneEvent[]) => void) | undefined;
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
    if (options.dialect !== 'sqlite' && options.dialect !== 'postgres') {
      throw new GuardError('INVALID_OPTION', `dialect must be sqlite or postgres, got ${String(options.dialect)}`, { details: { field: 'dialect' } });
    }
    if (!options.db || typeof options.db.selectFrom !== 'function') {
      throw new GuardError('INVALID_OPTION', 'db must be a Kysely instance', { details: { field: 'db' } });
    }
    const retentionMs = options.retentionMs ?? 7 * 24 * 3_600_000;
    const pruneIntervalMs = options.pruneIntervalMs ?? 60_000;
    const rollupBucketMs = options.rollupBucketMs ?? 60_000;
    assertNumberOption('retentionMs', retentionMs, { min: 1_000 });
    assertNumberOption('pruneIntervalMs', pruneIntervalMs, { min: 10, max: 2 ** 31 - 1 });
    assertNumberOption('rollupBucketMs', rollupBucketMs, { min: 1_000, max: 86_400_000, integer: true });
    this.kind = options.dialect;
    this.tableName = tableName;
    this.rollupBucketMs = rollupBucketMs;
    this.coarseBucketMs = rollupBucketMs * 60;
    this.retentionMs = retentionMs;
    this.#db = options.db;
    this.#rollup = `${tableName}_rollup`;
    this.#options = options;
    this.#logger = options.logger ?? silentLogger;

    const registry = resolveRegistry(options.registry);
    const prefix = options.metricsPrefix ?? 'guard_immune';
    const batchSize = histogram(registry, {
      name: metricName(prefix, 'store_commit_batch_size'),
      help: 'Events per group commit',
      labelNames: ['store'],
      buckets: [1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 2000, 5000],
    });
    const commitSeconds = histogram(registry, {
      name: metricName(prefix, 'store_commit_duration_seconds'),
      help: 'Duration of one group commit',
      labelNames: ['store'],
      buckets: [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1],
    });
    this.#pruned = counter(registry, { name: metricName(prefix, 'store_pruned_total'), help: 'Events removed by retention', labelNames: ['store'] });
    const kind = this.kind;
    this.#committer = new GroupCommitter<ImmuneEvent>({
      maxBatchSize: options.maxBatchSize ?? 1_000,
      maxPending: options.maxPending ?? 100_000,
      maxConcurrentCommits: options.maxConcurrentCommits ?? (options.dialect === 'postgres' ? 2 : 1),
      commit: (events) => {
        // The fast path is synchronous: the batch is committed when this returns.
        if (this.#fastCommit && !options.sqliteHandle!.inTransaction) return this.#fastCommit(events);
        return this.#ensureMigrated().then(() => (this.#fastCommit && !options.sqliteHandle!.inTransaction ? this.#fastCommit(events) : this.#kyselyCommit(events)));
      },
      onCommit: (size, seconds) => {
        batchSize.observe({ store: kind }, size);
        commitSeconds.observe({ store: kind }, seconds);
      },
    });

    this.ready = this.#ensureMigrated().then(() => this);
    if (Number.isFinite(retentionMs)) {
      this.#pruneTimer = unrefInterval(() => {
        if (this.#pruning || this.#closed) return;
        this.prune(Date.now() - retentionMs).catch((error: unknown) => {
          // An unreachable database is expected to come back (and is reported by every call meanwhile): warn only.
          if (isGuardError(error, 'STORE_UNAVAILABLE')) this.#logger.warn({ err: error }, 'immune store prune skipped: store unavailable');
          else this.#logger.error({ err: error }, 'immune store prune failed');
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
    const migrator = new Migrator({
      db: this.#db,
      provider: { getMigrations: async () => migrations(this.tableName, this.kind) },
      migrationTableName: `${this.tableName}_migrations`,
      migrationLockTableName: `${this.tableName}_migrations_lock`,
    });
    let result;
    try {
      result = await migrator.migrateToLatest();
    } catch (error) {
      throw toStoreError(error, `migrating ${this.tableName} failed`);
    }
    if (result.error) throw toStoreError(result.error, `migrating ${this.tableName} failed`);
    const handle = this.#options.sqliteHandle;
    if (handle && this.kind === 'sqlite') {
      const columns = `INSERT INTO "${this.tableName}" (id, agent_id, module, severity, type, message, meta, created_at) VALUES `;
      const one = '(?, ?, ?, ?, ?, ?, ?, ?)';
      const insertOne = handle.prepare(columns + one);
      // One statement per FAST_CHUNK rows: far fewer native calls per batch than a row-at-a-time loop.
      const insertChunk = handle.prepare(columns + Array.from({ length: FAST_CHUNK }, () => one).join(', '));
      const upsert = handle.prepare(
        `INSERT INTO "${this.#rollup}" (width, bucket, severity, type, count) VALUES (?, ?, ?, ?, ?) ON CONFLICT (width, bucket, severity, type) DO UPDATE SET count = count + excluded.count`,
      );
      const params = new Array<unknown>(FAST_CHUNK * 8);
      const write = handle.transaction((events: readonly ImmuneEvent[], deltas: readonly Delta[]) => {
        let i = 0;
        for (; i + FAST_CHUNK <= events.length; i += FAST_CHUNK) {
          for (let j = 0; j < FAST_CHUNK; j++) {
            const e = events[i + j]!;
            const k = j * 8;
            params[k] = e.id;
            params[k + 1] = e.agentId ?? null;
            params[k + 2] = e.module ?? null;
            params[k + 3] = e.severity;
            params[k + 4] = e.type;
            params[k + 5] = e.message;
            params[k + 6] = JSON.stringify(e.meta);
            params[k + 7] = e.createdAt;
          }
          insertChunk.run(params);
        }
        for (; i < events.length; i++) {
          const e = events[i]!;
          insertOne.run(e.id, e.agentId ?? null, e.module ?? null, e.severity, e.type, e.message, JSON.stringify(e.meta), e.createdAt);
        }
        for (const d of deltas) upsert.run(d.width, d.bucket, d.severity, d.type, d.count);
      });
      this.#fastCommit = (events) => {
        write(events, deltasOf(events, this.rollupBucketMs, this.coarseBucketMs));
      };
    }
  }

  async #kyselyCommit(events: readonly ImmuneEvent[]): Promise<void> {
    // The batch statement is idempotent (ON CONFLICT DO NOTHING, rollup only when every row was new), so a batch
    // whose connection died, even after the server committed it, is safely sent again on another connection.
    if (this.kind === 'postgres') return retryLostConnection(() => this.#postgresCommit(events), LOST_CONNECTION_ATTEMPTS);
    const rows = events.map(toRow);
    const deltas = deltasOf(events, this.rollupBucketMs, this.coarseBucketMs);
    const chunk = this.kind === 'sqlite' ? SQLITE_ROWS_PER_STATEMENT : 2_000;
    await this.#db.transaction().execute(async (trx) => {
      for (let i = 0; i < rows.length; i += chunk) await trx.insertInto(this.tableName).values(rows.slice(i, i + chunk)).execute();
      for (let i = 0; i < deltas.length; i += chunk) {
        await trx
          .insertInto(this.#rollup)
          .values(deltas.slice(i, i + chunk))
          .onConflict((oc) => oc.columns(['width', 'bucket', 'severity', 'type']).doUpdateSet({ count: sql`${sql.ref(`${this.#rollup}.count`)} + excluded.count` }))
          .execute();
      }
    });
  }

  /**
   * Postgres: the whole batch is one statement (so one round trip and atomic without BEGIN/COMMIT): the rows travel
   * as 8 array parameters expanded by `unnest`, and a data-modifying CTE upserts the rollup in the same statement.
   */
  async #postgresCommit(events: readonly ImmuneEvent[]): Promise<void> {
    const n = events.length;
    const ids = new Array<string>(n);
    const agents = new Array<string | null>(n);
    const modules = new Array<string | null>(n);
    const severities = new Array<string>(n);
    const types = new Array<string>(n);
    const messages = new Array<string>(n);
    const metas = new Array<string>(n);
    const created = new Array<string>(n);
    for (let i = 0; i < n; i++) {
      const e = events[i]!;
      ids[i] = e.id;
      agents[i] = e.agentId ?? null;
      modules[i] = e.module ?? null;
      severities[i] = e.severity;
      types[i] = e.type;
      messages[i] = e.message;
      metas[i] = JSON.stringify(e.meta);
      created[i] = String(e.createdAt);
    }
    const deltas = deltasOf(events, this.rollupBucketMs, this.coarseBucketMs);
    const table = sql.table(this.tableName);
    const rollup = sql.table(this.#rollup);
    await sql`
      WITH inserted AS (
        INSERT INTO ${table} (id, agent_id, module, severity, type, message, meta, created_at)
        SELECT * FROM unnest(${ids}::text[], ${agents}::text[], ${modules}::text[], ${severities}::text[], ${types}::text[],
                             ${messages}::text[], ${metas}::text[], ${created}::bigint[])
        ON CONFLICT DO NOTHING
        RETURNING 1
      )
      INSERT INTO ${rollup} (width, bucket, severity, type, count)
      SELECT * FROM unnest(${deltas.map((d) => String(d.width))}::bigint[], ${deltas.map((d) => String(d.bucket))}::bigint[],
                           ${deltas.map((d) => d.severity)}::text[], ${deltas.map((d) => d.type)}::text[],
                           ${deltas.map((d) => String(d.count))}::bigint[])
      WHERE (SELECT count(*) FROM inserted) = ${n}
      ORDER BY 1, 2, 3, 4
      ON CONFLICT (width, bucket, severity, type) DO UPDATE SET count = ${sql.ref(`${this.#rollup}.count`)} + excluded.count
    `.execute(this.#db);
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
    if (query.limit <= 0) return [];
    let q = this.#db.selectFrom(this.tableName).selectAll().where('created_at', '>=', query.since);
    if (query.severity !== undefined) q = q.where('severity', '=', query.severity);
    if (query.type !== undefined) q = q.where('type', '=', query.type);
    const rows = await guarded(() => q.orderBy('created_at', 'desc').orderBy('id', 'desc').limit(Math.floor(query.limit)).execute());
    return (rows as EventRow[]).map(fromRow);
  }

  async counts(since: number): Promise<EventCounts> {
    await this.#open();
    // [since, fineStart): raw rows; [fineStart, coarseStart): fine buckets; [coarseStart, ...): coarse buckets.
    const fineStart = Math.ceil(since / this.rollupBucketMs) * this.rollupBucketMs;
    const coarseStart = Math.ceil(since / this.coarseBucketMs) * this.coarseBucketMs;
    const [rolled, edge, latest] = await guarded(() =>
      Promise.all([
        this.#db
          .selectFrom(this.#rollup)
          .select(['severity', 'type', sql<string>`sum(count)`.as('n')])
          .where((eb) =>
            eb.or([
              eb.and([eb('width', '=', this.rollupBucketMs), eb('bucket', '>=', fineStart), eb('bucket', '<', coarseStart)]),
              eb.and([eb('width', '=', this.coarseBucketMs), eb('bucket', '>=', coarseStart)]),
            ]),
          )
          .groupBy(['severity', 'type'])
          .execute(),
        fineStart > since
          ? this.#db
              .selectFrom(this.tableName)
              .select(['severity', 'type', sql<string>`count(*)`.as('n')])
              .where('created_at', '>=', since)
              .where('created_at', '<', fineStart)
              .groupBy(['severity', 'type'])
              .execute()
          : Promise.resolve([]),
        this.#db
          .selectFrom(this.tableName)
          .selectAll()
          .where('severity', '=', 'CRITICAL')
          .where('created_at', '>=', since)
          .orderBy('created_at', 'desc')
          .orderBy('id', 'desc')
          .limit(1)
          .executeTakeFirst(),
      ]),
    );
    const { bySeverity, byType } = emptyCounters();
    let total = 0;
    for (const r of [...rolled, ...edge] as Array<{ severity: ImmuneSeverity; type: ImmuneEventType; n: string | number }>) {
      const n = Number(r.n);
      if (r.severity in bySeverity) bySeverity[r.severity] += n;
      if (r.type in byType) byType[r.type] += n;
      total += n;
    }
    return { total, bySeverity, byType, latestCritical: latest ? fromRow(latest as EventRow) : undefined };
  }

  /**
   * Deletes events created before `before`, rounded down to a coarse rollup bucket so counts stay exact; deletes in
   * chunks so a large backlog never holds the database for long.
   */
  prune(before: number): Promise<number> {
    if (this.#pruning) return this.#pruning;
    const run = (async () => {
      await this.#open();
      const cutoff = Math.floor(before / this.coarseBucketMs) * this.coarseBucketMs;
      let removed = 0;
      for (;;) {
        // Delete up to the created_at of the PRUNE_CHUNK-th oldest row: a primary-key range delete on both dialects.
        const edge = await guarded(() =>
          this.#db
            .selectFrom(this.tableName)
            .select('created_at')
            .where('created_at', '<', cutoff)
            .orderBy('created_at')
            .offset(PRUNE_CHUNK - 1)
            .limit(1)
            .executeTakeFirst(),
        );
        const upTo = edge ? Math.min(cutoff, Number(edge.created_at) + 1) : cutoff;
        const result = await guarded(() => this.#db.deleteFrom(this.tableName).where('created_at', '<', upTo).executeTakeFirst());
        const n = Number(result.numDeletedRows);
        removed += n;
        if (upTo >= cutoff || this.#closed) break;
      }
      await guarded(() => this.#db.deleteFrom(this.#rollup).where('bucket', '<', cutoff).execute());
      if (removed > 0) this.#pruned.inc({ store: this.kind }, removed);
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


/** Reads are idempotent: on Postgres a read whose connection was cut under it is tried again on another one. */
async function guarded<T>(fn: () => Promise<T>, attempts = LOST_CONNECTION_ATTEMPTS): Promise<T> {
  try {
    return await retryLostConnection(fn, attempts);
  } catch (error) {
    throw toStoreError(error, 'event store query failed');
  }
}

/**
 * Creates a {@link KyselyEventStore} on an existing kysely instance and waits for its migrations.
 *
 * @example
 * const db = new Kysely<any>({ dialect: new SqliteDialect({ database: new Database('app.db') }) });
 * await using store = await createKyselyEventStore({ db, dialect: 'sqlite' });
 */
export async function createKyselyEventStore(options: KyselyEventStoreOptions): Promise<KyselyEventStore> {
  const store = new KyselyEventStore(options);
  try {
    return await store.ready;
  } catch (error) {
    await store.close();
    throw error;
  }
}
