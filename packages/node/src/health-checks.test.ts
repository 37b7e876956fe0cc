import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { isGuardError } from '@guard/core';
import { HealthChecks } from './health-checks.js';
import { verboseReport } from './health-handler.js';

beforeEach(() => vi.useFakeTimers());
afterEach(() => vi.useRealTimers());

describe('HealthChecks', () => {
  it('passes when every critical check passes; a failing non-critical check is reported and stays ready', async () => {
    const checks = new HealthChecks();
    checks.add('db', () => true);
    checks.add('cache', () => Promise.reject(new Error('redis down')), { critical: false });
    const report = await checks.run('readiness');
    expect(report.ok).toBe(true);
    expect(report.checks.find((c) => c.name === 'cache')).toMatchObject({ ok: false, critical: false, message: 'redis down' });
  });

  it('fails on a critical check that throws or returns false', async () => {
    const checks = new HealthChecks();
    const off = checks.add('db', () => false);
    expect((await checks.run('readiness')).ok).toBe(false);
    off();
    checks.add('queue', async () => {
      throw new Error('no broker');
    });
    expect((await checks.run('readiness')).checks).toMatchObject([{ name: 'queue', ok: false, message: 'no broker' }]);
  });

  it('fails a check that outlives its timeout and aborts its signal', async () => {
    const checks = new HealthChecks({ defaultTimeoutMs: 1_000 });
    let seen: AbortSignal | undefined;
    checks.add('slow', (signal) => {
      seen = signal;
      return new Promise(() => {});
    });
    checks.add('quick', () => true, { timeoutMs: 50 });
    const pending = checks.run('readiness');
    await vi.advanceTimersByTimeAsync(1_000);
    const report = await pending;
    expect(report.ok).toBe(false);
    expect(report.checks[0]).toMatchObject({ name: 'slow', ok: false, message: 'timed out after 1000 ms' });
    expect(seen?.aborted).toBe(true);
    expect(isGuardError(seen?.reason, 'TIMEOUT')).toBe(true);
  });

  it('keeps readiness and liveness apart, and skips excluded checks', async () => {
    const checks = new HealthChecks();
    checks.add('db', () => false);
    checks.add('loop', () => true, { probe: 'liveness' });
    checks.add('both', () => true, { probe: 'both' });
    expect(checks.names('liveness')).toEqual(['loop', 'both']);
    expect((await checks.run('liveness')).ok).toBe(true);
    expect((await checks.run('readiness', { exclude: ['db'] })).ok).toBe(true);
  });

  it('rejects bad names, duplicates and options with INVALID_OPTION', () => {
    const checks = new HealthChecks();
    checks.add('db', () => true);
    for (const bad of [() => checks.add('db', () => true), () => checks.add('has space', () => true), () => checks.add('x', () => true, { timeoutMs: 0 })]) {
      expect(bad).toThrow(expect.objectContaining({ code: 'INVALID_OPTION' }));
    }
  });
});

describe('verboseReport', () => {
  it('prints the kube-apiserver format and withholds thrown reasons', () => {
    const text = verboseReport(
      {
        probe: 'readiness',
        ok: false,
        checks: [
          { name: 'ping', ok: true, critical: true, durationMs: 0 },
          { name: 'db', ok: false, critical: true, durationMs: 1, message: 'password authentication failed for user "app"' },
          { name: 'cache', ok: false, critical: false, durationMs: 1, message: 'timed out after 500 ms' },
        ],
      },
      'readyz',
    );
    expect(text).toBe('[+]ping ok\n[-]db failed: reason withheld\n[-]cache failed: timed out after 500 ms (non-critical)\nreadyz check failed\n');
  });
});
