import { isPgConnectionBroken } from './pg-pool-safety.js';

/** Where a session failed: getting a connection, or the work done on it. */
export type PgSessionPhase = 'connect' | 'run';

/**
 * A pooled connection as {@link withPgClient} needs it: a pg `PoolClient` or a {@link GuardedPgClient} fits.
 * `release(error)` destroys the connection instead of returning it to the pool.
 */
export interface PgSessionClient {
  release(error?: Error | boolean): void;
}

/** Options for {@link withPgClient}. */
export interface WithPgClientOptions {
  /**
   * Turns a failure into the error the caller's API promises (for example `STORE_UNAVAILABLE` or `STORE_ERROR`).
   * Default: the failure as it is.
   */
  readonly mapError?: (error: unknown, phase: PgSessionPhase) => unknown;
}

/**
 * Runs `fn` on one pooled connection: connect, run, release. A connection whose work failed at the connection level
 * (terminated backend, reset socket, query timeout) is destroyed, never handed to the next caller; one that only saw
 * a SQL error or a statement timeout goes back to the pool. Failures go through `mapError` with the phase they
 * happened in.
 *
 * @example
 * const rows = await withPgClient(pool, async (client) => (await client.query('select 1 as one')).rows, {
 *   mapError: (error, phase) => storeError(error, phase === 'connect' ? 'database unreachable' : 'query failed'),
 * });
 */
export async function withPgClient<C extends PgSessionClient, T>(
  pool: { connect(): Promise<C> },
  fn: (client: C) => Promise<T>,
  options: WithPgClientOptions = {},
): Promise<T> {
  const mapError = options.mapError ?? ((error: unknown) => error);
  let client: C;
  try {
    client = await pool.connect();
  } catch (error) {
    throw mapError(error, 'connect');
  }
  let broken: Error | boolean = false;
  try {
    return await fn(client);
  } catch (error) {
    if (isPgConnectionBroken(error)) broken = error instanceof Error ? error : true;
    throw mapError(error, 'run');
  } finally {
    client.release(broken === false ? undefined : broken);
  }
}
