import type { Env, PgTimeouts } from '@guard/core';
import { envReader, GuardError, resolvePgTimeouts } from '@guard/core';

/**
 * What {@link immuneConfigFromEnv} reads, grouped by the object it configures.
 *
 * @example
 * const { service, store } = immuneConfigFromEnv();
 */
export interface ImmuneEnvConfig {
  readonly service: { readonly defaultWindowMs: number; readonly maxLimit: number };
  readonly store: { readonly retentionMs: number; readonly maxBatchSize: number; readonly maxPending: number; readonly tableName: string };
  readonly memory: { readonly capacity: number };
  readonly http: { readonly limitBytes: number; readonly heartbeatMs: number; readonly maxSseClients: number; readonly writeToken?: string };
  /** `GUARD_PG_CONNECT_TIMEOUT_MS`, `GUARD_PG_STATEMENT_TIMEOUT_MS`, `GUARD_PG_QUERY_TIMEOUT_MS`: options of `createPostgresStore`. */
  readonly postgres: PgTimeouts;
  /** `GUARD_IMMUNE_SQLITE_PATH`: where the embedded store lives, when set. */
  readonly sqlitePath?: string;
  /** `GUARD_IMMUNE_DATABASE_URL` (alias `DATABASE_URL`): Postgres for fleet mode, when set. */
  readonly databaseUrl?: string;
}

/**
 * Reads the immune settings from the environment; a bad value throws `INVALID_ENV` naming the variable.
 *
 * | variable | default |
 * |---|---|
 * | `GUARD_IMMUNE_WINDOW` | `1h` |
 * | `GUARD_IMMUNE_MAX_LIMIT` | `1000` |
 * | `GUARD_IMMUNE_RETENTION` | `168h` (bare numbers are hours) |
 * | `GUARD_IMMUNE_BATCH_SIZE` | `1000` |
 * | `GUARD_IMMUNE_MAX_PENDING` | `100000` |
 * | `GUARD_IMMUNE_TABLE` | `immune_events` |
 * | `GUARD_IMMUNE_MEMORY_CAPACITY` | `10000` |
 * | `GUARD_IMMUNE_BODY_LIMIT_BYTES` | `65536` |
 * | `GUARD_IMMUNE_SSE_HEARTBEAT` | `15s` |
 * | `GUARD_IMMUNE_SSE_MAX_CLIENTS` | `100` |
 * | `GUARD_IMMUNE_WRITE_TOKEN` | unset (writes open) |
 * | `GUARD_PG_CONNECT_TIMEOUT_MS` / `GUARD_PG_STATEMENT_TIMEOUT_MS` / `GUARD_PG_QUERY_TIMEOUT_MS` | `5s` / `5s` / statement + 1 s |
 *
 * @example
 * const config = immuneConfigFromEnv();
 * const store = config.databaseUrl
 *   ? await createPostgresStore({ connectionString: config.databaseUrl, ...config.store })
 *   : await createSqliteStore({ path: config.sqlitePath ?? 'immune.db', ...config.store });
 * const service = new ImmuneService({ store, ...config.service });
 */
export function immuneConfigFromEnv(env: Env = process.env): ImmuneEnvConfig {
  const read = envReader(env);
  const tableName = read.string('GUARD_IMMUNE_TABLE', 'immune_events');
  if (!/^[A-Za-z_][A-Za-z0-9_]{0,39}$/.test(tableName)) {
    throw new GuardError('INVALID_ENV', `GUARD_IMMUNE_TABLE=${JSON.stringify(tableName)} is invalid: expected a SQL identifier of at most 40 characters`, {
      details: { variable: 'GUARD_IMMUNE_TABLE', value: tableName },
    });
  }
  const sqlitePath = read.string('GUARD_IMMUNE_SQLITE_PATH');
  const databaseUrl = read.string(['GUARD_IMMUNE_DATABASE_URL', 'DATABASE_URL']);
  const writeToken = read.string('GUARD_IMMUNE_WRITE_TOKEN');
  return {
    service: {
      defaultWindowMs: read.durationMs('GUARD_IMMUNE_WINDOW', 3_600_000, 'ms', { min: 1 }),
      maxLimit: read.number('GUARD_IMMUNE_MAX_LIMIT', 1_000, { min: 1, max: 100_000, integer: true }),
    },
    store: {
      retentionMs: read.durationMs('GUARD_IMMUNE_RETENTION', 7 * 24 * 3_600_000, 'h', { min: 1_000 }),
      maxBatchSize: read.number('GUARD_IMMUNE_BATCH_SIZE', 1_000, { min: 1, max: 100_000, integer: true }),
      maxPending: read.number('GUARD_IMMUNE_MAX_PENDING', 100_000, { min: 1, integer: true }),
      tableName,
    },
    memory: { capacity: read.number('GUARD_IMMUNE_MEMORY_CAPACITY', 10_000, { min: 1, max: 10_000_000, integer: true }) },
    http: {
      limitBytes: read.number('GUARD_IMMUNE_BODY_LIMIT_BYTES', 64 * 1024, { min: 1, integer: true }),
      heartbeatMs: read.durationMs('GUARD_IMMUNE_SSE_HEARTBEAT', 15_000, 'ms', { min: 10 }),
      maxSseClients: read.number('GUARD_IMMUNE_SSE_MAX_CLIENTS', 100, { min: 0, integer: true }),
      ...(writeToken === undefined ? {} : { writeToken }),
    },
    postgres: resolvePgTimeouts({}, env),
    ...(sqlitePath === undefined ? {} : { sqlitePath }),
    ...(databaseUrl === undefined ? {} : { databaseUrl }),
  };
}
