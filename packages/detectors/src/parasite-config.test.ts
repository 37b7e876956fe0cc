import { isGuardError } from '@guard/core';
import { describe, expect, it } from 'vitest';
import { Registry } from 'prom-client';
import { DetectorChain } from './detector-chain.js';
import { DEFAULT_THRESHOLDS, detectorChainOptionsFromEnv, parasiteConfigFromEnv } from './parasite-config.js';
import { memoryLogger } from './test-support.js';

function envError(env: Record<string, string>): { code: string; variable: unknown; message: string } {
  try {
    parasiteConfigFromEnv(env);
  } catch (error) {
    if (!isGuardError(error)) throw error;
    return { code: error.code, variable: error.details.variable, message: error.message };
  }
  throw new Error('expected an error');
}

describe('parasiteConfigFromEnv', () => {
  it('has the seed defaults', () => {
    const config = parasiteConfigFromEnv({});
    expect(config.mode).toBe('detect');
    expect(config.thresholds).toEqual(DEFAULT_THRESHOLDS);
    expect(config.thresholds.websocket.ackTimeoutMs).toBe(3_000);
    expect(config.thresholds.eventbus.leakThreshold).toBe(1_000);
    expect(config.thresholds.db.maxPoolSize).toBe(30);
    expect(config.components.websocket).toEqual({ sanitization: true });
    expect(config).toMatchObject({ logLevel: 'info', logStructured: true, metrics: true, metricsPrefix: 'parasite' });
  });

  it('reads modes, switches and thresholds by the seed names', () => {
    const config = parasiteConfigFromEnv({
      PARASITE_GUARD_MODE: 'FULL',
      PARASITE_GUARD_WEBSOCKET: 'true',
      PARASITE_GUARD_EVENTBUS: 'false',
      PARASITE_GUARD_DB: 'dry_run',
      PARASITE_GUARD_CIRCUIT_DISABLE: '1',
      PARASITE_GUARD_BATCH_SANITIZATION: 'off',
      PARASITE_GUARD_WEBSOCKET_THRESHOLD: 'ack_timeout=3,max_buffered=65536',
      PARASITE_GUARD_EVENTBUS_THRESHOLD: 'leak_threshold=500',
      PARASITE_GUARD_DB_THRESHOLD: 'max_pool_size=10, leak_threshold=2.5',
      PARASITE_GUARD_HANDLES_THRESHOLD: 'window=30,growth=50',
      PARASITE_LOG_LEVEL: 'debug',
      PARASITE_LOG_STRUCTURED: 'no',
      PARASITE_METRICS: '0',
      PARASITE_METRICS_PREFIX: 'guard_parasite',
    });
    expect(config.mode).toBe('full');
    expect(config.components).toMatchObject({
      websocket: { sanitization: true },
      eventbus: { mode: 'disabled' },
      db: { mode: 'dry_run' },
      circuit: { mode: 'disabled' },
      batch: { sanitization: false },
    });
    expect(config.components.websocket.mode).toBeUndefined();
    expect(config.thresholds.websocket).toEqual({ ackTimeoutMs: 3_000, pingIntervalMs: 30_000, maxBufferedBytes: 65_536 });
    expect(config.thresholds.eventbus.leakThreshold).toBe(500);
    expect(config.thresholds.db).toEqual({ maxPoolSize: 10, leakThresholdMs: 2_500 });
    expect(config.thresholds.handles).toEqual({ windowMs: 30_000, growthThreshold: 50 });
    expect(config).toMatchObject({ logLevel: 'debug', logStructured: false, metrics: false, metricsPrefix: 'guard_parasite' });
  });

  it('PARASITE_GUARD=false and PARASITE_GUARD_DISABLE=true turn everything off', () => {
    expect(parasiteConfigFromEnv({ PARASITE_GUARD: 'false', PARASITE_GUARD_MODE: 'full' }).mode).toBe('disabled');
    expect(parasiteConfigFromEnv({ PARASITE_GUARD_DISABLE: 'yes' }).mode).toBe('disabled');
  });

  it('accepts the seed\'s log level names (DEBUG, INFO, WARNING, ERROR, CRITICAL) and ours', () => {
    const levels = Object.fromEntries(['DEBUG', 'INFO', 'WARNING', 'ERROR', 'CRITICAL', 'warning', 'warn', 'silent', ' Info '].map((v) => [v, parasiteConfigFromEnv({ PARASITE_LOG_LEVEL: v }).logLevel]));
    expect(levels).toEqual({ DEBUG: 'debug', INFO: 'info', WARNING: 'warn', ERROR: 'error', CRITICAL: 'fatal', warning: 'warn', warn: 'warn', silent: 'silent', ' Info ': 'info' });
    expect(envError({ PARASITE_LOG_LEVEL: 'LOUD' })).toMatchObject({ code: 'INVALID_ENV', variable: 'PARASITE_LOG_LEVEL' });
  });

  it('names the variable of every bad value', () => {
    expect(envError({ PARASITE_GUARD_MODE: 'loud' })).toMatchObject({ code: 'INVALID_ENV', variable: 'PARASITE_GUARD_MODE' });
    expect(envError({ PARASITE_GUARD: 'sometimes' })).toMatchObject({ code: 'INVALID_ENV', variable: 'PARASITE_GUARD' });
    expect(envError({ PARASITE_GUARD_DB: 'maybe' })).toMatchObject({ code: 'INVALID_ENV', variable: 'PARASITE_GUARD_DB' });
    expect(envError({ PARASITE_GUARD_WEBSOCKET_SANITIZATION: 'perhaps' })).toMatchObject({ variable: 'PARASITE_GUARD_WEBSOCKET_SANITIZATION' });
    expect(envError({ PARASITE_GUARD_WEBSOCKET_THRESHOLD: 'ack_timeout=abc' })).toMatchObject({ variable: 'PARASITE_GUARD_WEBSOCKET_THRESHOLD' });
    expect(envError({ PARASITE_GUARD_WEBSOCKET_THRESHOLD: 'leak_threshold=3' })).toMatchObject({ variable: 'PARASITE_GUARD_WEBSOCKET_THRESHOLD' });
    expect(envError({ PARASITE_GUARD_DB_THRESHOLD: 'max_pool_size=0' })).toMatchObject({ variable: 'PARASITE_GUARD_DB_THRESHOLD' });
    expect(envError({ PARASITE_LOG_LEVEL: 'chatty' })).toMatchObject({ variable: 'PARASITE_LOG_LEVEL' });
    expect(envError({ PARASITE_LOG_STRUCTURED: 'json' })).toMatchObject({ variable: 'PARASITE_LOG_STRUCTURED' });
    expect(envError({ PARASITE_METRICS: 'x' })).toMatchObject({ variable: 'PARASITE_METRICS' });
    const prefix = envError({ PARASITE_METRICS_PREFIX: '9-bad' });
    expect(prefix).toMatchObject({ variable: 'PARASITE_METRICS_PREFIX' });
    expect(prefix.message).toContain('PARASITE_METRICS_PREFIX');
  });
});

describe('detectorChainOptionsFromEnv and DetectorChain.fromEnv', () => {
  it('returns the chain options the environment sets', () => {
    const options = detectorChainOptionsFromEnv({ PARASITE_GUARD_MODE: 'dry_run', PARASITE_METRICS_PREFIX: 'px', PARASITE_GUARD_DB_THRESHOLD: 'max_pool_size=4' });
    expect(options).toMatchObject({ mode: 'dry_run', metrics: true, metricsPrefix: 'px', thresholds: { db: { maxPoolSize: 4 } } });
    expect(typeof options.logger?.info).toBe('function');
  });

  it('code wins over the environment; an option set to undefined leaves the env value', async () => {
    const env = { PARASITE_GUARD_MODE: 'dry_run', PARASITE_GUARD_WEBSOCKET_THRESHOLD: 'ack_timeout=5' };
    await using coded = DetectorChain.fromEnv(env, { mode: 'detect', scanIntervalMs: 0, registry: new Registry(), logger: memoryLogger() });
    expect(coded.mode).toBe('detect');
    expect(coded.thresholds.websocket.ackTimeoutMs).toBe(5_000);
    await using unset = DetectorChain.fromEnv(env, { mode: undefined, scanIntervalMs: 0, registry: new Registry(), logger: memoryLogger() });
    expect(unset.mode).toBe('dry_run');
  });
});
