import { describe, expect, it } from 'vitest';
import { GuardError, isGuardError } from './guard-error.js';
import { isPgUnavailableError, pgPoolTimeoutConfig, PG_TIMEOUT_DEFAULTS, resolvePgTimeouts } from './pg-pool-safety.js';

describe('resolvePgTimeouts', () => {
  it('uses the defaults without options or env, the query bound one second above the statement timeout', () => {
    expect(resolvePgTimeouts({}, {})).toEqual(PG_TIMEOUT_DEFAULTS);
    expect(resolvePgTimeouts({ statementTimeoutMs: 2_000 }, {}).queryTimeoutMs).toBe(3_000);
  });

  it('reads the env, and code options win over it', () => {
    const env = { GUARD_PG_CONNECT_TIMEOUT_MS: '2s', GUARD_PG_STATEMENT_TIMEOUT_MS: '750', GUARD_PG_QUERY_TIMEOUT_MS: '900ms' };
    expect(resolvePgTimeouts({}, env)).toEqual({ connectTimeoutMs: 2_000, statementTimeoutMs: 750, queryTimeoutMs: 900 });
    expect(resolvePgTimeouts({ connectTimeoutMs: 100 }, env).connectTimeoutMs).toBe(100);
  });

  it('names the bad variable or option', () => {
    let error: unknown;
    try {
      resolvePgTimeouts({}, { GUARD_PG_STATEMENT_TIMEOUT_MS: 'soon' });
    } catch (e) {
      error = e;
    }
    expect(isGuardError(error, 'INVALID_ENV') && error.details.variable).toBe('GUARD_PG_STATEMENT_TIMEOUT_MS');
    expect(() => resolvePgTimeouts({ connectTimeoutMs: 0 }, {})).toThrow(expect.objectContaining({ code: 'INVALID_OPTION' }));
  });

  it('maps to pg Pool settings', () => {
    expect(pgPoolTimeoutConfig(PG_TIMEOUT_DEFAULTS)).toMatchObject({ connectionTimeoutMillis: 5_000, statement_timeout: 5_000, keepAlive: true });
  });
});

describe('isPgUnavailableError', () => {
  const withCode = (code: string, message = 'x') => Object.assign(new Error(message), { code });

  it('recognises lost connections, terminated backends and timeouts, also as a cause', () => {
    for (const error of [
      withCode('ECONNRESET'),
      withCode('ECONNREFUSED'),
      withCode('57P01', 'terminating connection due to administrator command'),
      withCode('57014', 'canceling statement due to statement timeout'),
      withCode('08006'),
      new Error('Connection terminated unexpectedly'),
      new Error('timeout exceeded when trying to connect'),
      new GuardError('TIMEOUT', 'query exceeded 10 ms'),
      new GuardError('INVALID_INPUT', 'wrapped', { cause: withCode('EPIPE') }),
    ]) {
      expect(isPgUnavailableError(error), String(error)).toBe(true);
    }
  });

  it('leaves real errors alone: syntax, constraints, anything else', () => {
    for (const error of [withCode('42601', 'syntax error'), withCode('23505', 'duplicate key'), new Error('boom'), undefined, 'ECONNRESET']) {
      expect(isPgUnavailableError(error), String(error)).toBe(false);
    }
  });
});
