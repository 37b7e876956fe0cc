import { describe, expect, it } from 'vitest';
import { immuneConfigFromEnv, immuneHandlerOptionsFromEnv, immuneOptionsFromEnv, immuneStoreOptionsFromEnv } from './env.js';
import { ImmuneService } from './immune-service.js';

/** Each variable, a value for it, and what that value sets. */
const VARIABLES: [variable: string, value: string, sets: object][] = [
  ['GUARD_IMMUNE_WINDOW', '15min', { service: { defaultWindowMs: 900_000 } }],
  ['GUARD_IMMUNE_MAX_LIMIT', '50', { service: { maxLimit: 50 } }],
  ['GUARD_IMMUNE_RETENTION', '24', { store: { retentionMs: 86_400_000 } }], // bare numbers are hours
  ['GUARD_IMMUNE_BATCH_SIZE', '200', { store: { maxBatchSize: 200 } }],
  ['GUARD_IMMUNE_MAX_PENDING', '5000', { store: { maxPending: 5_000 } }],
  ['GUARD_IMMUNE_TABLE', 'events_x', { store: { tableName: 'events_x' } }],
  ['GUARD_IMMUNE_MEMORY_CAPACITY', '99', { memory: { capacity: 99 } }],
  ['GUARD_IMMUNE_BODY_LIMIT_BYTES', '1024', { http: { limitBytes: 1_024 } }],
  ['GUARD_IMMUNE_SSE_HEARTBEAT', '5s', { http: { heartbeatMs: 5_000 } }],
  ['GUARD_IMMUNE_SSE_MAX_CLIENTS', '7', { http: { maxSseClients: 7 } }],
  ['GUARD_IMMUNE_WRITE_TOKEN', 'tok', { http: { writeToken: 'tok' } }],
  ['GUARD_PG_CONNECT_TIMEOUT_MS', '1s', { postgres: { connectTimeoutMs: 1_000 } }],
  ['GUARD_PG_STATEMENT_TIMEOUT_MS', '2000', { postgres: { statementTimeoutMs: 2_000, queryTimeoutMs: 3_000 } }], // the query timeout follows, 1 s above
  ['GUARD_PG_QUERY_TIMEOUT_MS', '2500ms', { postgres: { queryTimeoutMs: 2_500 } }],
  ['GUARD_IMMUNE_SQLITE_PATH', '/var/lib/guard/immune.db', { sqlitePath: '/var/lib/guard/immune.db' }],
  ['DATABASE_URL', 'postgres://db/guard', { databaseUrl: 'postgres://db/guard' }],
];

describe('immuneConfigFromEnv', () => {
  it('has the documented defaults', () => {
    expect(immuneConfigFromEnv({})).toEqual({
      service: { defaultWindowMs: 3_600_000, maxLimit: 1_000 },
      store: { retentionMs: 7 * 24 * 3_600_000, maxBatchSize: 1_000, maxPending: 100_000, tableName: 'immune_events' },
      memory: { capacity: 10_000 },
      http: { limitBytes: 65_536, heartbeatMs: 15_000, maxSseClients: 100 },
      postgres: { connectTimeoutMs: 5_000, statementTimeoutMs: 5_000, queryTimeoutMs: 6_000 },
    });
  });

  it.each(VARIABLES)('reads %s=%s', (variable, value, expected) => {
    expect(immuneConfigFromEnv({ [variable]: value })).toMatchObject(expected);
  });

  it('reads every variable at once, GUARD_IMMUNE_DATABASE_URL before DATABASE_URL', () => {
    expect(immuneConfigFromEnv(Object.fromEntries(VARIABLES.map(([variable, value]) => [variable, value])))).toEqual({
      service: { defaultWindowMs: 900_000, maxLimit: 50 },
      store: { retentionMs: 86_400_000, maxBatchSize: 200, maxPending: 5_000, tableName: 'events_x' },
      memory: { capacity: 99 },
      http: { limitBytes: 1_024, heartbeatMs: 5_000, maxSseClients: 7, writeToken: 'tok' },
      postgres: { connectTimeoutMs: 1_000, statementTimeoutMs: 2_000, queryTimeoutMs: 2_500 },
      sqlitePath: '/var/lib/guard/immune.db',
      databaseUrl: 'postgres://db/guard',
    });
    expect(immuneConfigFromEnv({ GUARD_IMMUNE_DATABASE_URL: 'postgres://a', DATABASE_URL: 'postgres://b' }).databaseUrl).toBe('postgres://a');
  });

  it.each([
    ['GUARD_IMMUNE_WINDOW', 'soon'],
    ['GUARD_IMMUNE_MAX_LIMIT', '0'],
    ['GUARD_IMMUNE_RETENTION', 'forever'],
    ['GUARD_IMMUNE_BATCH_SIZE', '1.5'],
    ['GUARD_IMMUNE_TABLE', 'drop table; --'],
    ['GUARD_IMMUNE_BODY_LIMIT_BYTES', '-1'],
    ['GUARD_IMMUNE_SSE_MAX_CLIENTS', 'lots'],
    ['GUARD_PG_CONNECT_TIMEOUT_MS', '0'],
    ['GUARD_PG_STATEMENT_TIMEOUT_MS', 'never'],
  ])('rejects %s=%s with INVALID_ENV naming it', (variable, value) => {
    expect(() => immuneConfigFromEnv({ [variable]: value })).toThrow(expect.objectContaining({ code: 'INVALID_ENV', message: expect.stringContaining(variable) }));
  });
});

describe('per-object env options', () => {
  it('leave unset variables out, so the code keeps its defaults', () => {
    expect(immuneOptionsFromEnv({})).toEqual({});
    expect(immuneStoreOptionsFromEnv({})).toEqual({});
    expect(immuneHandlerOptionsFromEnv({ GUARD_IMMUNE_WRITE_TOKEN: '' })).toEqual({});
    expect(immuneOptionsFromEnv({ GUARD_IMMUNE_WINDOW: '5m' })).toEqual({ defaultWindowMs: 300_000 });
    expect(immuneStoreOptionsFromEnv({ GUARD_IMMUNE_RETENTION: '2', GUARD_IMMUNE_TABLE: 'ev' })).toEqual({ retentionMs: 7_200_000, tableName: 'ev' });
    expect(immuneHandlerOptionsFromEnv({ GUARD_IMMUNE_SSE_HEARTBEAT: '1s', GUARD_IMMUNE_WRITE_TOKEN: 't' })).toEqual({ heartbeatMs: 1_000, writeToken: 't' });
  });

  it('ImmuneService.fromEnv: the environment under the code (code wins)', async () => {
    const env = { GUARD_IMMUNE_WINDOW: '5m', GUARD_IMMUNE_MAX_LIMIT: '50' };
    await using fromEnv = ImmuneService.fromEnv(env);
    expect([fromEnv.defaultWindowMs, fromEnv.maxLimit]).toEqual([300_000, 50]);
    await using overridden = ImmuneService.fromEnv(env, { maxLimit: 20 });
    expect([overridden.defaultWindowMs, overridden.maxLimit]).toEqual([300_000, 20]);
    expect(() => ImmuneService.fromEnv({ GUARD_IMMUNE_MAX_LIMIT: 'many' })).toThrow(/GUARD_IMMUNE_MAX_LIMIT/);
  });
});
