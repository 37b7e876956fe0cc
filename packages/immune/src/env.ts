import type { Env, PgTimeouts } from '@guard/core';
import { envReader, GuardError, resolvePgTimeouts } from '@guard/core';
import type { ImmuneHandlerOptions } from './http-handler.js';
import type { ImmuneServiceOptions } from './immune-service.js';
import type { KyselyEventStoreOptions } from './kysely-store.js';

/**
 * The variables immune reads, by the option they set.
 *
 * @example
 * process.env[IMMUNE_ENV.retentionMs] = '24'; // hours
 */
export const IMMUNE_ENV = {
  defaultWindowMs: 'GUARD_IMMUNE_WINDOW',
  maxLimit: 'GUARD_IMMUNE_MAX_LIMIT',
  retentionMs: 'GUARD_IMMUNE_RETENTION',
  maxBatchSize: 'GUARD_IMMUNE_BATCH_SIZE',
  maxPending: 'GUARD_IMMUNE_MAX_PENDING',
  tableName: 'GUARD_IMMUNE_TABLE',
  memoryCapacity: 'GUARD_IMMUNE_MEMORY_CAPACITY',
  limitBytes: 'GUARD_IMMUNE_BODY_LIMIT_BYTES',
  heartbeatMs: 'GUARD_IMMUNE_SSE_HEARTBEAT',
  maxSseClients: 'GUARD_IMMUNE_SSE_MAX_CLIENTS',
  writeToken: 'GUARD_IMMUNE_WRITE_TOKEN',
  sqlitePath: 'GUARD_IMMUNE_SQLITE_PATH',
  databaseUrl: ['GUARD_IMMUNE_DATABASE_URL', 'DATABASE_URL'],
} as const;

/** An options bag being filled in. */
type Mutable<T> = { -readonly [K in keyof T]: T[K] };

/**
 * The {@link ImmuneService} options the environment sets (`GUARD_IMMUNE_WINDOW`, `GUARD_IMMUNE_MAX_LIMIT`); unset
 * variables are left out. A bad value throws `INVALID_ENV` naming the variable. `ImmuneService.fromEnv` applies it
 * under the code's own options.
 *
 * @example
 * const service = new ImmuneService({ ...immuneOptionsFromEnv(), store });
 */
export function immuneOptionsFromEnv(env: Env = process.env): Partial<ImmuneServiceOptions> {
  const read = envReader(env);
  const options: Mutable<Partial<ImmuneServiceOptions>> = {};
  if (read.nameOf(IMMUNE_ENV.defaultWindowMs)) options.defaultWindowMs = read.durationMs(IMMUNE_ENV.defaultWindowMs, 0, 'ms', { min: 1 });
  if (read.nameOf(IMMUNE_ENV.maxLimit)) options.maxLimit = read.number(IMMUNE_ENV.maxLimit, 0, { min: 1, max: 100_000, integer: true });
  return options;
}

/**
 * The store options the environment sets (retention, batch size, queue bound, table; bare retention numbers are
 * hours), for `createSqliteStore`, `createPostgresStore` and `createKyselyEventStore`; unset variables are left out.
 *
 * @example
 * await createSqliteStore({ path: 'immune.db', ...immuneStoreOptionsFromEnv(), retentionMs: 86_400_000 });
 */
export function immuneStoreOptionsFromEnv(env: Env = process.env): Partial<Pick<KyselyEventStoreOptions, 'retentionMs' | 'maxBatchSize' | 'maxPending' | 'tableName'>> {
  const read = envReader(env);
  const options: Mutable<Partial<Pick<KyselyEventStoreOptions, 'retentionMs' | 'maxBatchSize' | 'maxPending' | 'tableName'>>> = {};
  if (read.nameOf(IMMUNE_ENV.retentionMs)) options.retentionMs = read.durationMs(IMMUNE_ENV.retentionMs, 0, 'h', { min: 1_000 });
  if (read.nameOf(IMMUNE_ENV.maxBatchSize)) options.maxBatchSize = read.number(IMMUNE_ENV.maxBatchSize, 0, { min: 1, max: 100_000, integer: true });
  if (read.nameOf(IMMUNE_ENV.maxPending)) options.maxPending = read.number(IMMUNE_ENV.maxPending, 0, { min: 1, integer: true });
  const tableName = read.string(IMMUNE_ENV.tableName);
  if (tableName !== undefined) {
    if (!/^[A-Za-z_][A-Za-z0-9_]{0,39}$/.test(tableName)) {
      throw new GuardError('INVALID_ENV', `${IMMUNE_ENV.tableName}=${JSON.stringify(tableName)} is invalid: expected a SQL identifier of at most 40 characters`, {
        details: { variable: IMMUNE_ENV.tableName, value: tableName },
      });
    }
    options.tableName = tableName;
  }
  return options;
}

/**
 * The {@link createImmuneHandler} options the environment sets (body limit, SSE heartbeat and client cap, write
 * token); unset variables are left out.
 *
 * @example
 * const handler = createImmuneHandler(service, { ...immuneHandlerOptionsFromEnv(), basePath: '/immune' });
 */
export function immuneHandlerOptionsFromEnv(env: Env = process.env): Partial<ImmuneHandlerOptions> {
  const read = envReader(env);
  const options: Mutable<Partial<ImmuneHandlerOptions>> = {};
  if (read.nameOf(IMMUNE_ENV.limitBytes)) options.limitBytes = read.number(IMMUNE_ENV.limitBytes, 0, { min: 1, integer: true });
  if (read.nameOf(IMMUNE_ENV.heartbeatMs)) options.heartbeatMs = read.durationMs(IMMUNE_ENV.heartbeatMs, 0, 'ms', { min: 10 });
  if (read.nameOf(IMMUNE_ENV.maxSseClients)) options.maxSseClients = read.number(IMMUNE_ENV.maxSseClients, 0, { min: 0, integer: true });
  const writeToken = read.string(IMMUNE_ENV.writeToken);
  if (writeToken !== undefined) options.writeToken = writeToken;
  return options;
}

/**
 * What {@link immuneConfigFromEnv} reads, grouped by the object it configures, defaults filled in.
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
 * Every immune setting of the environment with its default, grouped by object (what `@guard/node` wires up). Prefer
 * the per-object readers ({@link immuneOptionsFromEnv}, {@link immuneStoreOptionsFromEnv},
 * {@link immuneHandlerOptionsFromEnv}), which leave unset variables to the code's own defaults.
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
 */
export function immuneConfigFromEnv(env: Env = process.env): ImmuneEnvConfig {
  const read = envReader(env);
  const sqlitePath = read.string(IMMUNE_ENV.sqlitePath);
  const databaseUrl = read.string(IMMUNE_ENV.databaseUrl);
  return {
    service: { defaultWindowMs: 3_600_000, maxLimit: 1_000, ...immuneOptionsFromEnv(env) },
    store: { retentionMs: 7 * 24 * 3_600_000, maxBatchSize: 1_000, maxPending: 100_000, tableName: 'immune_events', ...immuneStoreOptionsFromEnv(env) },
    memory: { capacity: read.number(IMMUNE_ENV.memoryCapacity, 10_000, { min: 1, max: 10_000_000, integer: true }) },
    http: { limitBytes: 64 * 1024, heartbeatMs: 15_000, maxSseClients: 100, ...immuneHandlerOptionsFromEnv(env) },
    postgres: resolvePgTimeouts({}, env),
    ...(sqlitePath === undefined ? {} : { sqlitePath }),
    ...(databaseUrl === undefined ? {} : { databaseUrl }),
  };
}
