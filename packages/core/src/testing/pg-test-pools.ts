import { pgTestDatabase } from './pg-test-database.js';
import type { PgTestDatabase } from './pg-test-database.js';

/** What {@link pgTestPools} passes to the pool constructor. */
export interface PgTestPoolConfig {
  readonly connectionString: string;
  readonly max: number;
}

/** The slice of a pg `Pool` that {@link pgTestPools} uses (structural: `pg` is the caller's). */
export interface PgTestPoolLike {
  end(): Promise<void>;
  on(event: 'error', listener: (error: Error) => void): unknown;
}

/** Options for {@link pgTestPools}. */
export interface PgTestPoolsOptions<P extends PgTestPoolLike> {
  /** The pool class, usually `pg.Pool` (typed by the caller's `pg`). */
  readonly Pool: new (config: PgTestPoolConfig) => P;
  /** `max` of every pool. Default 2. */
  readonly max?: number;
}

/** A database of the test's own and the pools opened on it; `close()` ends them all, then drops the database. */
export interface PgTestPools<P> extends AsyncDisposable {
  /** URL of the test database. */
  readonly url: string;
  readonly database: PgTestDatabase;
  /**
   * A new pool on the test database, or on `connectionString` (the same database through a proxy, a refused
   * port). Errors of idle connections are ignored: tests cut connections on purpose.
   */
  pool(connectionString?: string): P;
  /** Ends every pool (errors ignored), then drops the database. Idempotent. */
  close(): Promise<void>;
}

/**
 * A database of the test's own ({@link pgTestDatabase}) and a factory of pools on it that are all ended before the
 * database is dropped: the setup of every test file that runs several replicas against one Postgres.
 *
 * @example
 * let fleet: PgTestPools<pg.Pool>;
 * beforeAll(async () => { fleet = await pgTestPools('memory_fleet_lease', { Pool: pg.Pool }); });
 * afterAll(() => fleet?.close());
 * const lease = new PostgresRestartLease({ pool: fleet.pool(), holder: 'a' });
 */
export async function pgTestPools<P extends PgTestPoolLike>(prefix: string, options: PgTestPoolsOptions<P>): Promise<PgTestPools<P>> {
  const database = await pgTestDatabase(prefix);
  const max = options.max ?? 2;
  const pools: P[] = [];
  let closing: Promise<void> | undefined;
  const close = (): Promise<void> =>
    (closing ??= (async () => {
      await Promise.all(pools.splice(0).map((pool) => pool.end().catch(() => undefined)));
      await database.drop();
    })());
  return {
    url: database.url,
    database,
    pool(connectionString = database.url) {
      const pool = new options.Pool({ connectionString, max });
      pool.on('error', () => undefined);
      pools.push(pool);
      return pool;
    },
    close,
    [Symbol.asyncDispose]: close,
  };
}
