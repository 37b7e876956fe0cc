import { AsyncLocalStorage } from 'node:async_hooks';
import { GuardError, SOURCE_SAMPLE_EVERY, SOURCE_SAMPLE_FIRST, assertNumberOption, captureSource, shouldSampleSource } from '@guard/core';
import type { CapturedSource, DbPoolTarget } from '@guard/core';
import type { CompiledQuery, DatabaseConnection, Dialect, Driver, QueryCompiler, QueryResult, TransactionSettings } from 'kysely';
import type { Finding } from './detector.js';
import { readAtScrape } from './parasite-metrics.js';
import type { ParasiteMetrics } from './parasite-metrics.js';
import { nextProcessNumber } from './process-numbers.js';
import { Tracker } from './tracker.js';

declare module '@guard/core' {
  interface GuardErrorCodes {
    /** A disposed pool still held connections afterwards. */
    POOL_NOT_DRAINED: true;
  }
}

/**
 * The part of a `pg` `Pool` the tracker reads (counts) and uses (destroying an orphaned client). `connect` is
 * wrapped on the instance while tracked, so each checkout learns its own client (identity, not event order).
 *
 * @example
 * trackDialect(new PostgresDialect({ pool }), { pgPool: pool });
 */
export interface PgPoolLike {
  readonly totalCount: number;
  readonly idleCount: number;
  readonly waitingCount: number;
  // never[]: pg's overloads (promise and callback) both fit; the tracker passes the arguments through
  connect?(...args: never[]): Promise<PgClientLike> | void;
  on?(event: 'acquire', listener: (client: PgClientLike) => void): unknown;
  removeListener?(event: 'acquire', listener: (client: PgClientLike) => void): unknown;
}

/**
 * A `pg` pool client: `release(error)` destroys it instead of returning it to the pool.
 *
 * @example
 * client.release(new Error('orphan')); // destroys instead of returning to the pool
 */
export interface PgClientLike {
  release(destroy?: Error | boolean): void;
}

/**
 * Options for {@link trackDialect}.
 *
 * @example
 * trackDialect(dialect, { name: 'main', maxPoolSize: 30, leakThresholdMs: 30_000, pgPool: pool });
 */
export interface TrackDialectOptions {
  /**
   * The pool's name: the resource id of `pool_overflow` and the prefix of its checkouts' ids (`<name>:conn_<n>`).
   * Default `db`, then `db_2`, `db_3`... for further pools in the process, so ids never collide.
   */
  readonly name?: string;
  /** More connections checked out than this is `pool_overflow` (critical). Default 30. */
  readonly maxPoolSize?: number;
  /** A connection held longer than this is a `connection_orphan` (critical), reported with its acquiring stack. Default 30000. */
  readonly leakThresholdMs?: number;
  /**
   * Capture the acquiring stack (lazily formatted, HikariCP-style), sampled so it can stay on: the pool's first 16
   * checkouts, then one in `sourceSampleEvery` at random. A finding of an unsampled checkout points at the latest
   * sampled one (`details.sourceSampled: true`). Default true.
   */
  readonly traceSources?: boolean;
  /** One checkout in this many captures its stack after the first 16; 1 captures every checkout. Default 64. */
  readonly sourceSampleEvery?: number;
  /**
   * The `pg` pool behind a `PostgresDialect` (or a function returning the current one, when the dialect is
   * re-created by `dispose`): adds pool counts to detections and lets `release` destroy an orphaned client.
   */
  readonly pgPool?: PgPoolLike | (() => PgPoolLike | undefined);
  /** How long `release` waits for a rollback of an orphan's open transaction. Default 2000. */
  readonly rollbackTimeoutMs?: number;
}

interface Checkout {
  readonly id: string;
  readonly driver: TrackingDriver;
  readonly inner: DatabaseConnection;
  readonly acquiredAt: number;
  readonly source: CapturedSource | undefined;
  inTransaction: boolean;
  released: boolean;
  /** The orphan finding, built once (the chain keeps the first detection while it holds). */
  finding?: Finding;
}

/**
 * A kysely `Dialect` whose driver reports to {@link DbPoolTracker}.
 *
 * @example
 * const dialect: TrackedDialect = trackDialect(new SqliteDialect({ database }));
 * chain.add(dialect.tracker);
 */
export interface TrackedDialect extends Dialect {
  readonly tracker: DbPoolTracker;
}

/**
 * C3: wraps a kysely dialect (SQLite, Postgres, any) so every connection checkout is tracked: hold time
 * and the acquiring stack, like HikariCP's leak detection. Pass a factory instead of a dialect to let
 * `dispose` really destroy the pool and build a fresh one.
 *
 * @example
 * const dialect = trackDialect(() => new PostgresDialect({ pool: new Pool({ connectionString }) }), { maxPoolSize: 30 });
 * const db = new Kysely<DB>({ dialect });
 * chain.add(dialect.tracker);
 */
export function trackDialect(dialect: Dialect | (() => Dialect), options: TrackDialectOptions = {}): TrackedDialect {
  const factory = typeof dialect === 'function' ? dialect : undefined;
  const base = typeof dialect === 'function' ? dialect() : dialect;
  const tracker = new DbPoolTracker(base, factory, options);
  return {
    tracker,
    createDriver: () => tracker.createDriver(),
    createQueryCompiler: () => base.createQueryCompiler(),
    createAdapter: () => base.createAdapter(),
    createIntrospector: (db) => base.createIntrospector(db),
  };
}

/**
 * The tracker behind {@link trackDialect}: a detector (component `db`, patterns `connection_orphan` per
 * checkout and `pool_overflow` per pool) and the `DbPoolTarget` the sanitizer acts through.
 *
 * @example
 * const { tracker } = trackDialect(new SqliteDialect({ database }));
 * tracker.activeCount(); // connections checked out now
 */
export class DbPoolTracker extends Tracker<'db', 'connection_orphan'> implements DbPoolTarget {
  readonly name: string;
  readonly maxPoolSize: number;
  readonly leakThresholdMs: number;
  readonly #rollbackTimeoutMs: number;
  readonly #sampleEvery: number;
  #acquires = 0;
  /** The latest sampled checkout stack: what an unsampled checkout's finding points at (`sourceSampled: true`). */
  #lastSource: CapturedSource | undefined;
  readonly #pgPool: TrackDialectOptions['pgPool'];
  readonly #checkouts = new Map<string, Checkout>();
  readonly #drivers = new Set<TrackingDriver>();
  readonly #base: Dialect;
  readonly #factory: (() => Dialect) | undefined;
  #next = 0;

  /** @internal use {@link trackDialect}. */
  constructor(base: Dialect, factory: (() => Dialect) | undefined, options: TrackDialectOptions) {
    super('db', 'connection_orphan', options);
    // unnamed pools are numbered per process so two of them never share a resource id
    const unnamed = options.name === undefined ? nextProcessNumber('db-pool') : 0;
    this.name = options.name ?? (unnamed === 1 ? 'db' : `db_${unnamed}`);
    this.maxPoolSize = options.maxPoolSize ?? 30;
    this.leakThresholdMs = options.leakThresholdMs ?? 30_000;
    this.#rollbackTimeoutMs = options.rollbackTimeoutMs ?? 2_000;
    assertNumberOption('maxPoolSize', this.maxPoolSize, { min: 1, integer: true });
    assertNumberOption('leakThresholdMs', this.leakThresholdMs, { min: 1 });
    assertNumberOption('rollbackTimeoutMs', this.#rollbackTimeoutMs, { min: 1 });
    this.#sampleEvery = options.sourceSampleEvery ?? SOURCE_SAMPLE_EVERY;
    assertNumberOption('sourceSampleEvery', this.#sampleEvery, { min: 1, integer: true });
    this.#pgPool = options.pgPool;
    this.#base = base;
    this.#factory = factory;
  }

  /** @internal */
  createDriver(): Driver {
    const driver = new TrackingDriver(this, this.#base.createDriver(), this.#factory, this.#pgPool);
    this.#drivers.add(driver);
    return driver;
  }

  activeCount(): number {
    return this.#checkouts.size;
  }

  /** The `pg` pool's counts, when a pool was given. */
  poolCounts(): { total: number; idle: number; waiting: number } | undefined {
    const pool = resolvePool(this.#pgPool);
    return pool ? { total: pool.totalCount, idle: pool.idleCount, waiting: pool.waitingCount } : undefined;
  }

  /** Snapshots of the checkouts, oldest first. */
  checkouts(now: number = Date.now()): { id: string; heldMs: number; inTransaction: boolean; source: readonly string[] }[] {
    return [...this.#checkouts.values()].map((c) => ({ id: c.id, heldMs: now - c.acquiredAt, inTransaction: c.inTransaction, source: c.source?.frames() ?? [] }));
  }

  /** `parasite_db_connections_active`: this pool's checkouts, counted when Prometheus scrapes. */
  protected override readMetrics(metrics: ParasiteMetrics, signal: AbortSignal): void {
    readAtScrape(metrics, 'dbConnectionsActive', this, (tracker) => tracker.#checkouts.size, signal);
  }

  /** `close()` only stops the metric reading: the dialect keeps working and tracking (its owner destroys it). */
  protected stopTracking(): void {}

  scan(now: number): Finding[] {
    const findings: Finding[] = [];
    for (const c of this.#checkouts.values()) {
      const heldMs = now - c.acquiredAt;
      if (heldMs < this.leakThresholdMs) break; // oldest first: the rest are younger
      const source = c.source ?? this.#lastSource;
      c.finding ??= {
        pattern: 'connection_orphan',
        severity: 'critical',
        resourceId: c.id,
        message: `connection ${c.id} held for ${heldMs} ms${c.inTransaction ? ' in an open transaction' : ''} (leakThresholdMs ${this.leakThresholdMs})`,
        details: {
          pool: this.name,
          heldMs,
          acquiredAt: c.acquiredAt,
          inTransaction: c.inTransaction,
          leakThresholdMs: this.leakThresholdMs,
          ...(c.source === undefined && source !== undefined ? { sourceSampled: true } : {}),
        },
        source: source?.frames(),
      };
      findings.push(c.finding);
    }
    const counts = this.poolCounts();
    const size = Math.max(this.#checkouts.size, counts ? counts.total - counts.idle : 0);
    if (size > this.maxPoolSize) {
      findings.push({
        pattern: 'pool_overflow',
        severity: 'critical',
        resourceId: this.name,
        message: `${size} connections checked out of ${this.name} (maxPoolSize ${this.maxPoolSize})`,
        details: { active: size, maxPoolSize: this.maxPoolSize, ...(counts ? { pg: counts } : {}) },
      });
    }
    return findings;
  }

  /**
   * Releases an orphaned checkout: a `pg` client is destroyed (the server rolls its transaction back);
   * otherwise an open transaction is rolled back and the connection goes back to the pool. Later use of
   * that checkout by its owner fails with `CLOSED`. False when it is no longer checked out.
   */
  async release(resourceId: string): Promise<boolean> {
    const c = this.#checkouts.get(resourceId);
    if (c === undefined || c.released) return false;
    this.#end(c);
    await c.driver.forceRelease(c, this.#rollbackTimeoutMs);
    return true;
  }

  /**
   * Releases every checkout, then (when built from a factory) destroys the driver's pool, checks it
   * drained to 0, and builds a fresh one; acquisitions wait meanwhile. Throws `POOL_NOT_DRAINED` otherwise.
   */
  async dispose(): Promise<void> {
    await Promise.all([...this.#checkouts.keys()].map((id) => this.release(id)));
    for (const driver of this.#drivers) await driver.recycle();
    if (this.#checkouts.size !== 0) {
      throw new GuardError('POOL_NOT_DRAINED', `${this.name} still holds ${this.#checkouts.size} connection(s) after dispose`, { details: { pool: this.name } });
    }
  }

  /** True when `resourceId` is this pool (`pool_overflow`) or one of its checkouts: sanitizers route by it. */
  owns(resourceId: string): boolean {
    return resourceId === this.name || this.#checkouts.has(resourceId);
  }

  /** @internal */
  onAcquire(driver: TrackingDriver, inner: DatabaseConnection, source: CapturedSource | undefined): Checkout {
    if (source !== undefined) this.#lastSource = source;
    const c: Checkout = { id: `${this.name}:conn_${++this.#next}`, driver, inner, acquiredAt: Date.now(), source, inTransaction: false, released: false };
    this.#checkouts.set(c.id, c);
    return c;
  }

  /** @internal */
  onRelease(c: Checkout): boolean {
    if (c.released) return false;
    this.#end(c);
    return true;
  }

  /** @internal True when this checkout should capture its stack: the first 16 of the pool, then ~1 in 64. */
  sampleSource(): boolean {
    return this.traceSources && shouldSampleSource(this.#acquires++, SOURCE_SAMPLE_FIRST, this.#sampleEvery);
  }

  #end(c: Checkout): void {
    c.released = true;
    this.#checkouts.delete(c.id);
  }
}

/**
 * Where a checkout in progress receives its pg client: the wrapped `pool.connect` writes into the store of
 * the async context it was called from, which is the one `TrackingDriver.acquireConnection` opened.
 */
interface ClientSlot {
  client?: PgClientLike;
}
let clientSlots: AsyncLocalStorage<ClientSlot> | undefined;
function slots(): AsyncLocalStorage<ClientSlot> {
  return (clientSlots ??= new AsyncLocalStorage<ClientSlot>());
}

/** Pools whose `connect` is wrapped, with how many drivers use the wrapper (restored when the last one stops). */
const wrappedPools = new WeakMap<PgPoolLike, { readonly own: boolean; readonly original: NonNullable<PgPoolLike['connect']>; users: number }>();

function wrapConnect(pool: PgPoolLike): boolean {
  const known = wrappedPools.get(pool);
  if (known) {
    known.users++;
    return true;
  }
  const original = pool.connect;
  if (typeof original !== 'function') return false;
  const own = Object.prototype.hasOwnProperty.call(pool, 'connect');
  wrappedPools.set(pool, { own, original, users: 1 });
  const storage = slots();
  (pool as { connect: unknown }).connect = function connect(this: unknown, ...args: unknown[]) {
    const result = original.apply(this, args as never[]);
    // callback style (no promise): not kysely's way, left alone
    if (result === undefined || typeof (result as Promise<PgClientLike>).then !== 'function') return result;
    const slot = storage.getStore();
    if (slot === undefined) return result;
    return (result as Promise<PgClientLike>).then((client) => {
      // the first connect in the checkout is the driver's; a later one (an onReserveConnection hook) is not
      slot.client ??= client;
      return client;
    });
  };
  return true;
}

function unwrapConnect(pool: PgPoolLike): void {
  const known = wrappedPools.get(pool);
  if (!known || --known.users > 0) return;
  wrappedPools.delete(pool);
  if (known.own) (pool as { connect: unknown }).connect = known.original;
  else delete (pool as { connect?: unknown }).connect;
}

function resolvePool(pool: TrackDialectOptions['pgPool']): PgPoolLike | undefined {
  return typeof pool === 'function' ? pool() : pool;
}

function released(): GuardError {
  return new GuardError('CLOSED', 'this connection was released by the Parasite Guard as an orphan');
}

class TrackedConnection implements DatabaseConnection {
  readonly checkout: Checkout;
  constructor(checkout: Checkout) {
    this.checkout = checkout;
  }

  executeQuery<R>(compiledQuery: CompiledQuery): Promise<QueryResult<R>> {
    if (this.checkout.released) return Promise.reject(released());
    return this.checkout.inner.executeQuery<R>(compiledQuery);
  }

  streamQuery<R>(compiledQuery: CompiledQuery, chunkSize?: number): AsyncIterableIterator<QueryResult<R>> {
    if (this.checkout.released) throw released();
    return this.checkout.inner.streamQuery<R>(compiledQuery, chunkSize);
  }
}

function unwrap(connection: DatabaseConnection): Checkout {
  if (!(connection instanceof TrackedConnection)) throw new GuardError('INVALID_INPUT', 'not a connection of this tracked dialect');
  if (connection.checkout.released) throw released();
  return connection.checkout;
}

class TrackingDriver implements Driver {
  readonly #tracker: DbPoolTracker;
  readonly #factory: (() => Dialect) | undefined;
  readonly #pgPool: TrackDialectOptions['pgPool'];
  /** kysely keeps one connection object per pg client, so this mapping stays true for the client's life. */
  readonly #clients = new WeakMap<DatabaseConnection, PgClientLike>();
  #inner: Driver;
  #gate: Promise<void> | undefined;
  #listeningPool: PgPoolLike | undefined;

  constructor(tracker: DbPoolTracker, inner: Driver, factory: (() => Dialect) | undefined, pgPool: TrackDialectOptions['pgPool']) {
    this.#tracker = tracker;
    this.#inner = inner;
    this.#factory = factory;
    this.#pgPool = pgPool;
  }

  async init(): Promise<void> {
    await this.#inner.init();
    this.#listen();
  }

  async acquireConnection(): Promise<DatabaseConnection> {
    const source = this.#tracker.sampleSource() ? captureSource({ skip: TrackingDriver.prototype.acquireConnection, limit: 8, depth: 10 }) : undefined;
    while (this.#gate) await this.#gate;
    // The wrapped pool.connect fills this checkout's own slot: concurrent checkouts cannot swap clients.
    const slot: ClientSlot = {};
    const inner = this.#listeningPool ? await slots().run(slot, () => this.#inner.acquireConnection()) : await this.#inner.acquireConnection();
    if (slot.client) this.#clients.set(inner, slot.client);
    return new TrackedConnection(this.#tracker.onAcquire(this, inner, source));
  }

  async beginTransaction(connection: DatabaseConnection, settings: TransactionSettings): Promise<void> {
    const c = unwrap(connection);
    await this.#inner.beginTransaction(c.inner, settings);
    c.inTransaction = true;
  }

  async commitTransaction(connection: DatabaseConnection): Promise<void> {
    const c = unwrap(connection);
    await this.#inner.commitTransaction(c.inner);
    c.inTransaction = false;
  }

  async rollbackTransaction(connection: DatabaseConnection): Promise<void> {
    const c = unwrap(connection);
    await this.#inner.rollbackTransaction(c.inner);
    c.inTransaction = false;
  }

  async savepoint(connection: DatabaseConnection, name: string, compileQuery: QueryCompiler['compileQuery']): Promise<void> {
    if (!this.#inner.savepoint) throw new GuardError('INVALID_INPUT', 'the underlying driver does not support savepoints');
    await this.#inner.savepoint(unwrap(connection).inner, name, compileQuery);
  }

  async rollbackToSavepoint(connection: DatabaseConnection, name: string, compileQuery: QueryCompiler['compileQuery']): Promise<void> {
    if (!this.#inner.rollbackToSavepoint) throw new GuardError('INVALID_INPUT', 'the underlying driver does not support savepoints');
    await this.#inner.rollbackToSavepoint(unwrap(connection).inner, name, compileQuery);
  }

  async releaseSavepoint(connection: DatabaseConnection, name: string, compileQuery: QueryCompiler['compileQuery']): Promise<void> {
    if (!this.#inner.releaseSavepoint) throw new GuardError('INVALID_INPUT', 'the underlying driver does not support savepoints');
    await this.#inner.releaseSavepoint(unwrap(connection).inner, name, compileQuery);
  }

  async releaseConnection(connection: DatabaseConnection): Promise<void> {
    if (!(connection instanceof TrackedConnection)) return;
    // Already force-released by the guard: the pool has it back, nothing to do.
    if (!this.#tracker.onRelease(connection.checkout)) return;
    await this.#inner.releaseConnection(connection.checkout.inner);
  }

  async destroy(): Promise<void> {
    this.#unlisten();
    await this.#inner.destroy();
  }

  /** @internal */
  async forceRelease(c: Checkout, rollbackTimeoutMs: number): Promise<void> {
    const client = this.#clients.get(c.inner);
    if (client) {
      this.#clients.delete(c.inner);
      client.release(new Error('connection orphan destroyed by the Parasite Guard'));
      return;
    }
    if (c.inTransaction) {
      let timer: NodeJS.Timeout | undefined;
      await Promise.race([
        this.#inner.rollbackTransaction(c.inner).catch(() => {}),
        new Promise<void>((resolve) => {
          timer = setTimeout(resolve, rollbackTimeoutMs);
          timer.unref();
        }),
      ]);
      clearTimeout(timer);
      c.inTransaction = false;
    }
    await this.#inner.releaseConnection(c.inner);
  }

  /** @internal destroys the pool and builds a fresh one (factory only); acquisitions wait meanwhile. */
  async recycle(): Promise<void> {
    if (!this.#factory) return;
    let open!: () => void;
    const gate = new Promise<void>((resolve) => (open = resolve));
    this.#gate = gate;
    try {
      const old = this.#listeningPool ?? resolvePool(this.#pgPool);
      await this.destroy();
      if (old && old.totalCount !== 0) {
        throw new GuardError('POOL_NOT_DRAINED', `pool still holds ${old.totalCount} client(s) after destroy`, { details: { pool: this.#tracker.name } });
      }
      this.#inner = this.#factory().createDriver();
      await this.#inner.init();
      this.#listen();
    } finally {
      this.#gate = undefined;
      open();
    }
  }

  #listen(): void {
    const pool = resolvePool(this.#pgPool);
    if (!pool || pool === this.#listeningPool) return;
    this.#unlisten();
    if (wrapConnect(pool)) this.#listeningPool = pool;
  }

  #unlisten(): void {
    if (this.#listeningPool) unwrapConnect(this.#listeningPool);
    this.#listeningPool = undefined;
  }
}
