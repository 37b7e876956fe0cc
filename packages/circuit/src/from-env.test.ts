import { isGuardError } from '@guard/core';
import { describe, expect, it } from 'vitest';
import { CircuitBreaker } from './circuit-breaker.js';
import { ConnectionPool } from './connection-pool.js';
import { circuitOptionsFromEnv, fromEnv } from './from-env.js';

describe('fromEnv', () => {
  it('uses the defaults when nothing is set', () => {
    expect(fromEnv({})).toEqual({
      breaker: { failureThreshold: 5, resetTimeoutMs: 60_000, halfOpenSuccesses: 3 },
      pool: {
        maxConcurrentConnections: 50,
        connectionTimeoutMs: 10_000,
        idleTimeoutMs: 300_000,
        breaker: { failureThreshold: 5, resetTimeoutMs: 60_000, halfOpenSuccesses: 3 },
      },
    });
  });

  it('reads GUARD_* names, bare durations in seconds', async () => {
    const { breaker, pool } = fromEnv({
      GUARD_MAX_CONNECTIONS: '20',
      GUARD_CONNECTION_TIMEOUT: '5',
      GUARD_IDLE_TIMEOUT: '2min',
      GUARD_CIRCUIT_THRESHOLD: '7',
      GUARD_CIRCUIT_TIMEOUT: '500ms',
      GUARD_CIRCUIT_HALF_OPEN_CALLS: '2',
    });
    expect(pool).toMatchObject({ maxConcurrentConnections: 20, connectionTimeoutMs: 5_000, idleTimeoutMs: 120_000 });
    expect(breaker).toEqual({ failureThreshold: 7, resetTimeoutMs: 500, halfOpenSuccesses: 2 });
    await using b = new CircuitBreaker({ metrics: false, ...breaker });
    expect(b.state).toBe('closed');
  });

  it('accepts the seed ANALYZER_* aliases, GUARD_* winning when both are set', () => {
    const { pool } = fromEnv({ ANALYZER_MAX_CONNECTIONS: '9', ANALYZER_CIRCUIT_THRESHOLD: '3', GUARD_CIRCUIT_THRESHOLD: '4' });
    expect(pool.maxConcurrentConnections).toBe(9);
    expect(pool.breaker.failureThreshold).toBe(4);
  });

  it.each([
    ['GUARD_MAX_CONNECTIONS', '0'],
    ['GUARD_CIRCUIT_THRESHOLD', 'five'],
    ['ANALYZER_CIRCUIT_HALF_OPEN_CALLS', '1.5'],
    ['GUARD_CONNECTION_TIMEOUT', 'soon'],
  ])('a bad %s throws INVALID_ENV naming the variable', (name, value) => {
    let error: unknown;
    try {
      fromEnv({ [name]: value });
    } catch (e) {
      error = e;
    }
    expect(isGuardError(error, 'INVALID_ENV')).toBe(true);
    expect((error as Error).message).toContain(name);
  });

  it('circuitOptionsFromEnv() returns only what is set', () => {
    expect(circuitOptionsFromEnv({})).toEqual({ breaker: {}, pool: { breaker: {} } });
    expect(circuitOptionsFromEnv({ GUARD_CIRCUIT_TIMEOUT: '5', GUARD_IDLE_TIMEOUT: '0' })).toEqual({
      breaker: { resetTimeoutMs: 5_000 },
      pool: { idleTimeoutMs: 0, breaker: { resetTimeoutMs: 5_000 } },
    });
  });

  it('CircuitBreaker.fromEnv and ConnectionPool.fromEnv: the code\'s options win over the environment', async () => {
    const env = { GUARD_CIRCUIT_THRESHOLD: '2', GUARD_CIRCUIT_TIMEOUT: '5', GUARD_MAX_CONNECTIONS: '3', GUARD_CONNECTION_TIMEOUT: '7' };
    await using breaker = CircuitBreaker.fromEnv(env, { metrics: false, failureThreshold: 9 });
    for (let i = 0; i < 8; i++) await breaker.execute(() => Promise.reject(new Error('x'))).catch(() => {});
    expect(breaker.state).toBe('closed'); // 9 from code, not 2 from the environment
    await using pool = ConnectionPool.fromEnv(env, { metrics: false, maxConcurrentConnections: 4, breaker: { resetTimeoutMs: 1_000 } });
    expect(pool).toMatchObject({ maxConcurrentConnections: 4, connectionTimeoutMs: 7_000 });
    const poolBreaker = pool.breakerFor('ws://127.0.0.1:1');
    for (let i = 0; i < 2; i++) await poolBreaker.execute(() => Promise.reject(new Error('x'))).catch(() => {});
    expect(poolBreaker.state).toBe('open'); // the threshold from the environment reached the pool's breakers
  });
});
