import type { Env } from './env.js';
import { envReader } from './env.js';
import { assertNumberOption, GuardError, isGuardError } from './guard-error.js';
import type { Logger } from './logger.js';
import { silentLogger } from './logger.js';

/**
 * The slice of a pg `PoolClient` that {@link guardPgPool} uses (structural: core never imports `pg`).
 *
 * @example
 * const client: PgClientLike = await pool.connect(); // a pg PoolClient fits
 */
export interface PgClientLike {
  // eslint-disable-next-line @typescript-eslint/no-explicit-any -- pg's query is overloaded (text, config, cursor, callback) with results of the caller's row type: any keeps a pg PoolClient assignable
  query(...args: any[]): any;
  release(error?: Error | boolean): void;
  on(event: 'error', listener: (error: Error) => void): unknown;
}

/**
 * The slice of a pg `Pool` that {@link guardPgPool} uses (structural: core never imports `pg`).
 *
 * @example
 * const pool: PgPoolLike = new pg.Pool({ connectionString });
 */
export interface PgPoolLike {
  connect(): Promise<PgClientLike>;
  end(): Promise<void>;
  on(event: 'error', listener: (error: Error, client?: unknown) => void): unknown;
  on(event: 'connect', listener: (client: PgClientLike) => void): unknown;
  removeListener(event: 'error', listener: (error: Error, client?: unknown) => void): unknown;
  removeListener(event: 'connect', listener: (client: PgClientLike) => void): unknown;
}

/**
 * Timeouts that bound every wait on Postgres.
 *
 * @example
 * const timeouts: PgTimeouts = { connectTimeoutMs: 5_000, statementTimeoutMs: 5_000, queryTimeoutMs: 6_000 };
 */
export interface PgTimeouts {
  /** Opening a connection (or waiting for a free one in the pool). */
  readonly connectTimeoutMs: number;
  /** Server-side `statement_timeout`: Postgres cancels a slow statement. */
  readonly statementTimeoutMs: number;
  /** Client-side bound of one query: catches a silent network (a partition), where the server cannot answer at all. */
  readonly queryTimeoutMs: number;
}

/**
 * Defaults a user would pick for small, fast statements: fail within seconds, never hang.
 *
 * @example
 * resolvePgTimeouts({}, {}); // equals PG_TIMEOUT_DEFAULTS
 */
export const PG_TIMEOUT_DEFAULTS: PgTimeouts = Object.freeze({ connectTimeoutMs: 5_000, statementTimeoutMs: 5_000, queryTimeoutMs: 6_000 });

/**
 * Resolves Postgres timeouts: code options win, then `GUARD_PG_CONNECT_TIMEOUT_MS`, `GUARD_PG_STATEMENT_TIMEOUT_MS`,
 * `GUARD_PG_QUERY_TIMEOUT_MS` (`5000`, `5s`), then {@link PG_TIMEOUT_DEFAULTS}. The query timeout defaults to the
 * statement timeout + 1 s, so the server's own cancel normally answers first. A bad value throws `INVALID_OPTION`
 * or `INVALID_ENV` naming the option or variable.
 *
 * @example
 * const timeouts = resolvePgTimeouts({ statementTimeoutMs: 2_000 }, process.env);
 */
export function resolvePgTimeouts(options: Partial<PgTimeouts> = {}, env: Env = process.env): PgTimeouts {
  const read = envReader(env);
  const bounds = { min: 1, max: 2 ** 31 - 1 };
  const connectTimeoutMs = options.connectTimeoutMs ?? read.durationMs('GUARD_PG_CONNECT_TIMEOUT_MS', PG_TIMEOUT_DEFAULTS.connectTimeoutMs, 'ms', bounds);
  const statementTimeoutMs =
    options.statementTimeoutMs ?? read.durationMs('GUARD_PG_STATEMENT_TIMEOUT_MS', PG_TIMEOUT_DEFAULTS.statementTimeoutMs, 'ms', bounds);
  assertNumberOption('connectTimeoutMs', connectTimeoutMs, bounds);
  assertNumberOption('statementTimeoutMs', statementTimeoutMs, bounds);
  const queryTimeoutMs = options.queryTimeoutMs ?? read.durationMs('GUARD_PG_QUERY_TIMEOUT_MS', Math.min(statementTimeoutMs + 1_000, bounds.max), 'ms', bounds);
  assertNumberOption('queryTimeoutMs', queryTimeoutMs, bounds);
  return { connectTimeoutMs, statementTimeoutMs, queryTimeoutMs };
}

/**
 * The pg `Pool` settings for these timeouts, to spread into `new pg.Pool({...})`: connect timeout, server-side
 * statement timeout and TCP keep-alive (a dead peer is noticed on idle connections too).
 *
 * @example
 * const pool = new pg.Pool({ connectionString, max: 4, ...pgPoolTimeoutConfig(resolvePgTimeouts()) });
 */
export function pgPoolTimeoutConfig(timeouts: PgTimeouts): {
  connectionTimeoutMillis: number;
  statement_timeout: number;
  keepAlive: true;
  keepAliveInitialDelayMillis: number;
} {
  return {
    connectionTimeoutMillis: timeouts.connectTimeoutMs,
    statement_timeout: timeouts.statementTimeoutMs,
    keepAlive: true,
    keepAliveInitialDelayMillis: 10_000,
  };
}

const UNAVAILABLE_SOCKET_CODES = new Set(['ECONNREFUSED', 'ECONNRESET', 'ECONNABORTED', 'ETIMEDOUT', 'EPIPE', 'EHOSTUNREACH', 'ENETUNREACH', 'ENOTFOUND', 'EAI_AGAIN']);
// SQLSTATE 57P01 admin_shutdown (pg_terminate_backend), 57P02 crash_shutdown, 57P03 cannot_connect_now,
// 57014 query_canceled (statement_timeout), 53300 too_many_connections; class 08 is "connection exception".
const UNAVAILABLE_SQLSTATES = new Set(['57P01', '57P02', '57P03', '57014', '53300']);
const UNAVAILABLE_MESSAGES = [
  /connection terminated/i,
  /timeout exceeded when trying to connect/i,
  /query read timeout/i,
  /is not queryable/i,
  /terminating connection/i,
];

/**
 * Whether an error (or one of its causes) means Postgres is unreachable, cut off or too slow: a socket error, a
 * terminated backend, a connect, statement or query timeout. Such failures are transient: answer "unavailable,
 * retry later" (503), not "internal error".
 *
 * @example
 * if (isPgUnavailableError(error)) sendProblem(res, { status: 503, title: 'Database unavailable' }, { 'retry-after': '5' });
 */
export function isPgUnavailableError(error: unknown): boolean {
  let e: unknown = error;
  for (let depth = 0; e !== null && typeof e === 'object' && depth < 8; depth++) {
    if (isGuardError(e, 'TIMEOUT')) return true;
    const code = (e as { code?: unknown }).code;
    if (typeof code === 'string' && (UNAVAILABLE_SOCKET_CODES.has(code) || UNAVAILABLE_SQLSTATES.has(code) || /^08[0-9A-Z]{3}$/.test(code))) return true;
    const message = (e as { message?: unknown }).message;
    if (typeof message === 'string' && UNAVAILABLE_MESSAGES.some((re) => re.test(message))) return true;
    e = (e as { cause?: unknown }).cause;
  }
  return false;
}

/**
 * Whether a failed statement left its connection unusable (terminated backend, reset socket, query timeout): such a
 * connection is destroyed, not returned to the pool. A statement timeout (`57014`) is the server cancelling one
 * statement on a healthy connection, so it is not.
 *
 * @example
 * client.release(isPgConnectionBroken(error) ? (error as Error) : undefined);
 */
export function isPgConnectionBroken(error: unknown): boolean {
  return isPgUnavailableError(error) && (error as { code?: unknown } | null)?.code !== '57014';
}

/**
 * Options for {@link guardPgPool}.
 *
 * @example
 * guardPgPool(pool, { timeouts: resolvePgTimeouts(), logger, onError: () => errors.inc() });
 */
export interface GuardPgPoolOptions {
  /** Connect and query timeouts the facade enforces. Default {@link resolvePgTimeouts}() (env, then defaults). */
  readonly timeouts?: PgTimeouts;
  /** Where connection errors are logged (warn, once per error). Default silent. */
  readonly logger?: Logger;
  /** Called for every connection error of the pool or one of its clients (e.g. to count it). */
  readonly onError?: (error: Error) => void;
  /** What to call the database in logs and errors. Default `postgres`. */
  readonly name?: string;
}

/**
 * A checked-out client of a {@link GuardedPgPool}: `query` is bounded by the query timeout, and `release()` evicts
 * the connection from the pool when a query on it timed out or broke at the connection level.
 *
 * @example
 * const client = await safe.connect();
 * try { await client.query('select 1'); } finally { client.release(); }
 */
export interface GuardedPgClient {
  // eslint-disable-next-line @typescript-eslint/no-explicit-any -- the same overloads as pg's query, which this passes through (see PgClientLike)
  query(...args: any[]): any;
  /** Returns the connection to the pool; with an error (or `true`), or after a broken query, destroys it instead. */
  release(error?: Error | boolean): void;
}

/**
 * A kysely-compatible pool facade (`connect()` + `end()`) over a guarded pg pool.
 *
 * @example
 * const db = new Kysely<any>({ dialect: new PostgresDialect({ pool: guardPgPool(pool) }) });
 */
export interface GuardedPgPool {
  connect(): Promise<GuardedPgClient>;
  /** Detaches, then ends the underlying pool. */
  end(): Promise<void>;
  /** Removes the pool listeners; client listeners stay (a checked-out client must never raise an unhandled error). */
  detach(): void;
  /** Connection errors seen so far. */
  readonly errors: number;
}

interface ClientState {
  facade: GuardedPgClient;
  broken: Error | undefined;
}

/**
 * Makes a pg pool survive what the network and the database do to it ("do no harm"): an `'error'` listener on the
 * pool and on every client, also while checked out (pg-pool drops its idle listener at checkout and kysely adds
 * none, so a backend terminated mid-transaction would otherwise crash the process); connects bounded by
 * `connectTimeoutMs`; queries bounded by `queryTimeoutMs` (a partition never hangs a caller); a connection whose
 * query timed out or broke is evicted on release instead of being reused, so the pool heals by itself once the
 * database is back. Returns a facade to hand to kysely's `PostgresDialect`.
 *
 * @example
 * const timeouts = resolvePgTimeouts();
 * const pool = new pg.Pool({ connectionString, max: 4, ...pgPoolTimeoutConfig(timeouts) });
 * const db = new Kysely<any>({ dialect: new PostgresDialect({ pool: guardPgPool(pool, { timeouts, logger }) }) });
 */
export function guardPgPool(pool: PgPoolLike, options: GuardPgPoolOptions = {}): GuardedPgPool {
  const timeouts = options.timeouts ?? resolvePgTimeouts();
  const logger = options.logger ?? silentLogger;
  const name = options.name ?? 'postgres';
  const watched = new WeakSet<object>();
  const states = new WeakMap<object, ClientState>();
  let errors = 0;
  let detached = false;

  const report = (error: Error, where: 'client' | 'idle') => {
    errors++;
    try {
      options.onError?.(error);
    } catch {
      // a counting hook must not turn a handled error into an unhandled one
    }
    logger.warn({ err: error, where }, `${name} connection failed; it is dropped from the pool and replaced on demand`);
  };
  const watch = (client: PgClientLike) => {
    if (watched.has(client)) return;
    watched.add(client);
    // Never removed: this keeps a dying checked-out connection from raising an unhandled 'error'.
    client.on('error', (error) => report(error, 'client'));
  };
  const onConnect = (client: PgClientLike) => watch(client);
  // pg-pool re-emits idle clients' errors on the pool; the ones we watch were reported already.
  const onPoolError = (error: Error, client?: unknown) => {
    if (!(client !== null && typeof client === 'object' && watched.has(client))) report(error, 'idle');
  };
  pool.on('connect', onConnect);
  pool.on('error', onPoolError);

  function detach(): void {
    if (detached) return;
    detached = true;
    pool.removeListener('connect', onConnect);
    pool.removeListener('error', onPoolError);
  }

  const facadeOf = (client: PgClientLike): GuardedPgClient => {
    const known = states.get(client);
    if (known) return known.facade;
    const state: ClientState = {
      broken: undefined,
      facade: {
        // eslint-disable-next-line @typescript-eslint/no-explicit-any -- implements GuardedPgClient.query
        query(...args: any[]): any {
          // Cursors (pg-cursor) and callback-style calls pass through unchanged.
          if (typeof args[0] !== 'string' || typeof args[args.length - 1] === 'function') return client.query(...args);
          const pending = client.query(...args) as Promise<unknown>;
          return new Promise((resolve, reject) => {
            const timer = setTimeout(() => {
              const error = new GuardError('TIMEOUT', `${name} query exceeded ${timeouts.queryTimeoutMs} ms`, { details: { timeoutMs: timeouts.queryTimeoutMs } });
              state.broken ??= error;
              reject(error);
            }, timeouts.queryTimeoutMs);
            timer.unref();
            pending.then(
              (value) => {
                clearTimeout(timer);
                resolve(value);
              },
              (error: unknown) => {
                clearTimeout(timer);
                if (isPgConnectionBroken(error)) state.broken ??= error as Error;
                reject(error);
              },
            );
          });
        },
        release(error?: Error | boolean) {
          const broken = state.broken ?? (error || undefined);
          state.broken = undefined;
          // With an error pg-pool destroys the connection (pg destroys the socket of a connection with a hung query).
          client.release(broken);
        },
      },
    };
    states.set(client, state);
    return state.facade;
  };

  return {
    get errors() {
      return errors;
    },
    async connect() {
      if (detached) throw new GuardError('CLOSED', `${name} pool is closed`);
      let timer: NodeJS.Timeout | undefined;
      const connecting = pool.connect();
      const giveUp = new Promise<never>((_, reject) => {
        timer = setTimeout(() => {
          // A connection that arrives after we gave up goes straight back to the pool.
          connecting.then(
            (late) => late.release(),
            () => {},
          );
          reject(new GuardError('TIMEOUT', `connecting to ${name} exceeded ${timeouts.connectTimeoutMs} ms`, { details: { timeoutMs: timeouts.connectTimeoutMs } }));
        }, timeouts.connectTimeoutMs);
        timer.unref();
      });
      let client: PgClientLike;
      try {
        client = await Promise.race([connecting, giveUp]);
      } finally {
        clearTimeout(timer);
      }
      watch(client);
      return facadeOf(client);
    },
    detach,
    async end() {
      detach();
      await pool.end();
    },
  };
}
