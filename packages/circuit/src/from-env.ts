import { envReader } from '@guard/core';
import type { Env, EnvNames, EnvReader } from '@guard/core';
import type { CircuitBreakerOptions } from './circuit-breaker-options.js';
import type { ConnectionPoolOptions } from './connection-pool.js';

/** Breaker options read from the environment. */
export interface CircuitBreakerEnvOptions {
  readonly failureThreshold: number;
  readonly resetTimeoutMs: number;
  readonly halfOpenSuccesses: number;
}

/** Pool options read from the environment (including its breakers' options). */
export interface ConnectionPoolEnvOptions {
  readonly maxConcurrentConnections: number;
  readonly connectionTimeoutMs: number;
  readonly idleTimeoutMs: number;
  readonly breaker: CircuitBreakerEnvOptions;
}

/**
 * The variables this package reads: the `GUARD_*` name first, then the seed's `ANALYZER_*` alias.
 *
 * @example
 * console.log(CIRCUIT_ENV.failureThreshold); // ['GUARD_CIRCUIT_THRESHOLD', 'ANALYZER_CIRCUIT_THRESHOLD']
 */
export const CIRCUIT_ENV = {
  maxConcurrentConnections: ['GUARD_MAX_CONNECTIONS', 'ANALYZER_MAX_CONNECTIONS'],
  connectionTimeoutMs: ['GUARD_CONNECTION_TIMEOUT', 'ANALYZER_CONNECTION_TIMEOUT'],
  idleTimeoutMs: ['GUARD_IDLE_TIMEOUT', 'ANALYZER_IDLE_TIMEOUT'],
  failureThreshold: ['GUARD_CIRCUIT_THRESHOLD', 'ANALYZER_CIRCUIT_THRESHOLD'],
  resetTimeoutMs: ['GUARD_CIRCUIT_TIMEOUT', 'ANALYZER_CIRCUIT_TIMEOUT'],
  halfOpenSuccesses: ['GUARD_CIRCUIT_HALF_OPEN_CALLS', 'ANALYZER_CIRCUIT_HALF_OPEN_CALLS'],
} as const;

/** Reads each set variable of `fields` into an options bag; unset ones are left out (so code and defaults apply). */
function readSet<K extends keyof typeof CIRCUIT_ENV>(read: EnvReader, fields: Readonly<Record<K, (names: EnvNames) => number>>): Partial<Record<K, number>> {
  const options: Partial<Record<K, number>> = {};
  for (const field of Object.keys(fields) as K[]) {
    if (read.nameOf(CIRCUIT_ENV[field]) !== undefined) options[field] = fields[field](CIRCUIT_ENV[field]);
  }
  return options;
}

/**
 * The breaker options set in the environment (only those set). Durations are seconds when bare (`10`) or carry a
 * unit (`500ms`, `5s`, `2min`). A bad value throws `INVALID_ENV` naming the variable.
 *
 * @example
 * const breaker = new CircuitBreaker({ ...circuitBreakerOptionsFromEnv(), name: 'payments' });
 */
export function circuitBreakerOptionsFromEnv(env: Env = process.env): Partial<CircuitBreakerOptions> {
  const read = envReader(env);
  return readSet(read, {
    failureThreshold: (names) => read.number(names, 5, { min: 1, integer: true }),
    resetTimeoutMs: (names) => read.durationMs(names, 60_000, 's', { min: 0 }),
    halfOpenSuccesses: (names) => read.number(names, 3, { min: 1, integer: true }),
  });
}

/**
 * The pool options set in the environment (only those set), its breakers' options under `breaker`.
 *
 * @example
 * await using pool = new ConnectionPool({ ...connectionPoolOptionsFromEnv(), requestTimeoutMs: 5_000 });
 */
export function connectionPoolOptionsFromEnv(env: Env = process.env): Partial<ConnectionPoolOptions> & { breaker: Partial<CircuitBreakerOptions> } {
  const read = envReader(env);
  const pool = readSet(read, {
    maxConcurrentConnections: (names) => read.number(names, 50, { min: 1, integer: true }),
    connectionTimeoutMs: (names) => read.durationMs(names, 10_000, 's', { min: 1 }),
    idleTimeoutMs: (names) => read.durationMs(names, 300_000, 's', { min: 0 }),
  });
  return { ...pool, breaker: circuitBreakerOptionsFromEnv(env) };
}

/**
 * Every option of this package set in the environment: `{ breaker, pool }`. `CircuitBreaker.fromEnv(env, overrides)`
 * and `ConnectionPool.fromEnv(env, overrides)` apply them with the code's options winning.
 *
 * @example
 * const { breaker } = circuitOptionsFromEnv(process.env);
 */
export function circuitOptionsFromEnv(env: Env = process.env): {
  breaker: Partial<CircuitBreakerOptions>;
  pool: Partial<ConnectionPoolOptions> & { breaker: Partial<CircuitBreakerOptions> };
} {
  return { breaker: circuitBreakerOptionsFromEnv(env), pool: connectionPoolOptionsFromEnv(env) };
}

/**
 * Breaker and pool options from the environment with every default filled in.
 *
 * @deprecated Use {@link circuitOptionsFromEnv} (only what is set) with `CircuitBreaker.fromEnv` / `ConnectionPool.fromEnv`.
 * @example
 * const { breaker, pool } = fromEnv();
 */
export function fromEnv(env: Env = process.env): { breaker: CircuitBreakerEnvOptions; pool: ConnectionPoolEnvOptions } {
  const breaker: CircuitBreakerEnvOptions = { failureThreshold: 5, resetTimeoutMs: 60_000, halfOpenSuccesses: 3, ...circuitBreakerOptionsFromEnv(env) };
  const { breaker: _set, ...pool } = connectionPoolOptionsFromEnv(env);
  return {
    breaker,
    pool: { maxConcurrentConnections: 50, connectionTimeoutMs: 10_000, idleTimeoutMs: 300_000, ...pool, breaker },
  };
}
