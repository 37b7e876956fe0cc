import { isGuardError } from '@guard/core';
import { Registry } from 'prom-client';
import { describe, expect, it } from 'vitest';
import { DeferredSanitizer } from './deferred-sanitizer.js';
import { deferredSanitizerOptionsFromEnv } from './sanitizer-env.js';
import type { Sanitizer } from './sanitizer.js';

/** Each variable, a value for it, and what that value sets (delays in seconds unless a unit says otherwise). */
const VARIABLES: [variable: string, value: string, sets: object][] = [
  ['PARASITE_GUARD_WEBSOCKET_ASYNC_DELAY', '2', { delaysMs: { websocket: 2_000 } }],
  ['PARASITE_GUARD_DB_ASYNC_DELAY', '250ms', { delaysMs: { db: 250 } }],
  ['PARASITE_GUARD_HANDLES_ASYNC_DELAY', '1min', { delaysMs: { handles: 60_000 } }],
  ['PARASITE_GUARD_ASYNC_DELAY', '3', { defaultDelayMs: 3_000 }],
  ['PARASITE_GUARD_SANITIZATION_CONCURRENCY', '8', { concurrency: 8 }],
  ['PARASITE_GUARD_SANITIZATION_TIMEOUT', '10', { timeoutMs: 10_000 }],
  ['PARASITE_GUARD_SANITIZATION_MAX_QUEUED', '50', { maxQueued: 50 }],
  ['PARASITE_GUARD_BATCH_SANITIZATION', 'false', { disabledComponents: ['batch'] }],
  ['PARASITE_GUARD_CONTEXT_SANITIZATION', 'off', { disabledComponents: ['context'] }],
  ['PARASITE_METRICS', 'no', { metrics: false }],
  ['PARASITE_METRICS_PREFIX', 'edge_parasite', { metricsPrefix: 'edge_parasite' }],
];

describe('deferredSanitizerOptionsFromEnv', () => {
  it('gives the defaults on an empty environment', () => {
    expect(deferredSanitizerOptionsFromEnv({})).toEqual({
      delaysMs: { websocket: 5_000, eventbus: 1_000, db: 2_000, circuit: 0, batch: 1_000, context: 1_000, handles: 0 },
      defaultDelayMs: 1_000,
      concurrency: 4,
      timeoutMs: 30_000,
      maxQueued: 10_000,
      disabledComponents: [],
      metrics: true,
      metricsPrefix: 'parasite',
    });
  });

  it.each(VARIABLES)('reads %s=%s', (variable, value, expected) => {
    expect(deferredSanitizerOptionsFromEnv({ [variable]: value })).toMatchObject(expected);
  });

  it('reads them all at once: each component by the same scheme, the switches add up', () => {
    const options = deferredSanitizerOptionsFromEnv(Object.fromEntries(VARIABLES.map(([variable, value]) => [variable, value])));
    expect(options.delaysMs).toMatchObject({ websocket: 2_000, db: 250, handles: 60_000, eventbus: 1_000 });
    expect(options).toMatchObject({
      defaultDelayMs: 3_000,
      concurrency: 8,
      timeoutMs: 10_000,
      maxQueued: 50,
      disabledComponents: ['batch', 'context'],
      metrics: false,
      metricsPrefix: 'edge_parasite',
    });
  });

  it.each([
    ['PARASITE_GUARD_WEBSOCKET_ASYNC_DELAY', 'soon'],
    ['PARASITE_GUARD_CIRCUIT_ASYNC_DELAY', '-1'],
    ['PARASITE_GUARD_ASYNC_DELAY', '5 hours'],
    ['PARASITE_GUARD_SANITIZATION_CONCURRENCY', '0'],
    ['PARASITE_GUARD_SANITIZATION_CONCURRENCY', '2.5'],
    ['PARASITE_GUARD_SANITIZATION_TIMEOUT', '0'],
    ['PARASITE_GUARD_SANITIZATION_MAX_QUEUED', 'lots'],
    ['PARASITE_GUARD_DB_SANITIZATION', 'maybe'],
    ['PARASITE_METRICS', 'sometimes'],
    ['PARASITE_METRICS_PREFIX', '9lives'],
  ])('rejects %s=%s with INVALID_ENV naming the variable', (variable, value) => {
    const read = () => deferredSanitizerOptionsFromEnv({ [variable]: value });
    expect(read).toThrow(expect.toSatisfy((error) => isGuardError(error, 'INVALID_ENV'), 'a GuardError INVALID_ENV'));
    expect(read).toThrow(expect.objectContaining({ message: expect.stringContaining(variable), details: expect.objectContaining({ variable }) }));
  });
});

describe('DeferredSanitizer.fromEnv', () => {
  const noop: Sanitizer = { component: 'websocket', sanitize: async () => ({ outcome: 'skipped' }) };

  it('fromEnv(env, overrides): code wins, an undefined option leaves the env value; the older (options, env) order still works', async () => {
    const env = { PARASITE_GUARD_SANITIZATION_CONCURRENCY: '3', PARASITE_METRICS_PREFIX: 'edge' };
    const registry = new Registry();
    await using sanitizer = DeferredSanitizer.fromEnv(env, { sanitizers: [noop], registry, concurrency: undefined, delaysMs: { websocket: 0 } });
    expect(sanitizer.delayFor('websocket')).toBe(0);
    expect(await registry.getMetricsAsJSON()).toEqual(expect.arrayContaining([expect.objectContaining({ name: 'edge_sanitized_total' })]));
    await using coded = DeferredSanitizer.fromEnv(env, { sanitizers: [noop], metrics: false, metricsPrefix: 'ignored', defaultDelayMs: 5 });
    expect(coded.delayFor('custom')).toBe(5);
    const legacy = new Registry();
    await using named = DeferredSanitizer.fromEnv(env, { sanitizers: [noop], registry: legacy, prefix: 'old_name' });
    expect(named.delayFor('custom')).toBe(1_000);
    expect(await legacy.getMetricsAsJSON()).toEqual(expect.arrayContaining([expect.objectContaining({ name: 'old_name_sanitized_total' })]));
  });

  it('uses the environment and lets options in code win', async () => {
    const env = { PARASITE_GUARD_WEBSOCKET_ASYNC_DELAY: '7', PARASITE_GUARD_DB_ASYNC_DELAY: '9', PARASITE_GUARD_WEBSOCKET_SANITIZATION: '0' };
    await using fromEnv = DeferredSanitizer.fromEnv({ sanitizers: [noop], registry: new Registry() }, env);
    expect(fromEnv.delayFor('websocket')).toBe(7_000);
    expect(fromEnv.delayFor('db')).toBe(9_000);
    expect(fromEnv.schedule({ id: 'd', component: 'websocket', pattern: 'no_ack', severity: 'critical', resourceId: 'c', message: '', details: {}, detectedAt: 0 })).toBe(false);
    await using overridden = DeferredSanitizer.fromEnv({ sanitizers: [noop], metrics: false, delaysMs: { websocket: 100 } }, env);
    expect(overridden.delayFor('websocket')).toBe(100);
    expect(overridden.delayFor('db')).toBe(9_000);
  });

  it('fails on a bad variable', () => {
    expect(() => DeferredSanitizer.fromEnv({ sanitizers: [noop] }, { PARASITE_GUARD_WEBSOCKET_ASYNC_DELAY: 'x' })).toThrow(/PARASITE_GUARD_WEBSOCKET_ASYNC_DELAY/);
  });
});
