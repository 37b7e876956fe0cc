import { envReader } from '@guard/core';
import type { Env } from '@guard/core';

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
 * The variables {@link fromEnv} reads: the `GUARD_*` name first, then the seed's `ANALYZER_*` alias.
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

/**
 * Reads breaker and pool options from the environment. Durations are seconds when bare (`10`) or carry a unit
 * (`500ms`, `5s`, `2min`). A bad value throws `INVALID_ENV` naming the variable.
 *
 * @example
 * const { breaker, pool } = fromEnv();
 * const payments = new CircuitBreaker({ name: 'payments', ...breaker });
 * await using connections = new ConnectionPool(pool);
 */
export function fromEnv(env: Env = process.env): { breaker: CircuitBreakerEnvOptions; pool: ConnectionPoolEnvOptions } {
  const read = envReader(env);
  const breaker: CircuitBreakerEnvOptions = {
    failureThreshold: read.number(CIRCUIT_ENV.failureThreshold, 5, { min: 1, integer: true }),
    resetTimeoutMs: read.durationMs(CIRCUIT_ENV.resetTimeoutMs, 60_000, 's', { min: 0 }),
    halfOpenSuccesses: read.number(CIRCUIT_ENV.halfOpenSuccesses, 3, { min: 1, integer: true }),
  };
  const pool: ConnectionPoolEnvOptions = {
    maxConcurrentConnections: read.number(CIRCUIT_ENV.maxConcurrentConnections, 50, { min: 1, integer: true }),
    connectionTimeoutMs: read.durationMs(CIRCUIT_ENV.connectionTimeoutMs, 10_000, 's', { min: 1 }),
    idleTimeoutMs: read.durationMs(CIRCUIT_ENV.idleTimeoutMs, 300_000, 's', { min: 0 }),
    breaker,
  };
  return { breaker, pool };
}
