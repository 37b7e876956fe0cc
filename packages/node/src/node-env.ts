import { envReader, resolvePgTimeouts } from '@guard/core';
import type { Env, PgTimeouts } from '@guard/core';

/**
 * The settings of `@guard/node` itself that come from the environment. Every other package's names
 * (`PARASITE_GUARD_*`, `MEMORY_*`, `GUARD_IMMUNE_*`, `GUARD_PRESSURE_*`, ...) are read by that package's own
 * helper, from the same snapshot of the environment.
 *
 * @example
 * const { shutdownTimeoutMs } = nodeEnv({ GUARD_SHUTDOWN_TIMEOUT: '20s' }); // 20000
 */
export interface NodeEnvConfig {
  /** `GUARD_ADMIN_TOKEN`: bearer token of the admin endpoints (mode switch, self-check POSTs). */
  readonly adminToken?: string;
  /** `GUARD_IMMUNE_WRITE_TOKEN`: bearer token of `POST /api/immune/event`. */
  readonly immuneWriteToken?: string;
  /** `GUARD_SHUTDOWN_TIMEOUT` (default 10 s). */
  readonly shutdownTimeoutMs: number;
  /** `GUARD_SHUTDOWN_DELAY` (default 0). */
  readonly shutdownDelayMs: number;
  /** `GUARD_HEALTH_TIMEOUT` (default 1 s): per-check timeout of `/readyz` and `/livez`. */
  readonly healthCheckTimeoutMs: number;
}

/** Reads {@link NodeEnvConfig}; a bad value throws `INVALID_ENV` naming the variable. Durations take `500ms`, `5s` or bare seconds. */
export function nodeEnv(env: Env): NodeEnvConfig {
  const read = envReader(env);
  const adminToken = read.string('GUARD_ADMIN_TOKEN');
  const immuneWriteToken = read.string('GUARD_IMMUNE_WRITE_TOKEN');
  return {
    ...(adminToken ? { adminToken } : {}),
    ...(immuneWriteToken ? { immuneWriteToken } : {}),
    shutdownTimeoutMs: read.durationMs('GUARD_SHUTDOWN_TIMEOUT', 10_000, 's', { min: 1 }),
    shutdownDelayMs: read.durationMs('GUARD_SHUTDOWN_DELAY', 0, 's', { min: 0 }),
    healthCheckTimeoutMs: read.durationMs('GUARD_HEALTH_TIMEOUT', 1_000, 's', { min: 1 }),
  };
}

const NEVER_MS = 2 ** 31 - 1;

/**
 * Timeouts for the app's own pg pools: none unless `GUARD_PG_*_TIMEOUT_MS` asks for them (a guard must not
 * start failing an app's legitimately long queries); the error handling applies either way.
 */
export function appPoolTimeouts(env: Env): PgTimeouts {
  const read = envReader(env);
  const given = (name: string) => read.nameOf(name) !== undefined;
  return resolvePgTimeouts(
    {
      connectTimeoutMs: given('GUARD_PG_CONNECT_TIMEOUT_MS') ? undefined : NEVER_MS,
      statementTimeoutMs: given('GUARD_PG_STATEMENT_TIMEOUT_MS') ? undefined : NEVER_MS,
      queryTimeoutMs: given('GUARD_PG_QUERY_TIMEOUT_MS') || given('GUARD_PG_STATEMENT_TIMEOUT_MS') ? undefined : NEVER_MS,
    },
    env,
  );
}
