import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Registry } from 'prom-client';
import { afterAll, describe, expect, it } from 'vitest';
import { isGuardError } from '@guard/core';
import { createGuard } from './index.js';
import { wsTestServer } from '@guard/detectors/testing';
import { listen, testGuardOptions as base, type NoTables } from '../test/support.js';

const dir = mkdtempSync(join(tmpdir(), 'guard-node-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe('guard.handler', () => {
  it('serves metrics, probes, self-check, immune and mode, and passes everything else on', async () => {
    await using guard = await createGuard(base());
    await using http = await listen((req, res) => guard.handler(req, res, () => res.end('app')));
    const metrics = await fetch(`${http.base}/metrics`);
    expect(metrics.status).toBe(200);
    expect(await metrics.text()).toContain('guard_memory_');
    expect((await fetch(`${http.base}/livez`)).status).toBe(200);
    expect(await (await fetch(`${http.base}/readyz`)).json()).toMatchObject({ status: 'ok', checks: [{ name: 'shutdown', ok: true }, { name: 'immune', ok: true }, { name: 'memory', ok: true }] });
    expect((await fetch(`${http.base}/self-check/memory`)).status).toBe(200);
    expect(await (await fetch(`${http.base}/api/immune/health`)).json()).toMatchObject({ status: 'healthy' });
    expect(await (await fetch(`${http.base}/guard/mode`)).json()).toMatchObject({ mode: 'detect' });
    expect(await (await fetch(`${http.base}/orders`)).text()).toBe('app');
  });

  it('answers 404 problem+json without a next handler', async () => {
    await using guard = await createGuard(base());
    await using http = await listen((req, res) => guard.handler(req, res));
    const res = await fetch(`${http.base}/nope`);
    expect(res.status).toBe(404);
    expect(res.headers.get('content-type')).toContain('application/problem+json');
  });

  it('moves endpoints and turns groups off', async () => {
    await using guard = await createGuard(base({ endpoints: { metrics: '/internal/metrics', immune: false, selfCheck: false } }));
    await using http = await listen((req, res) => guard.handler(req, res, () => res.writeHead(418).end()));
    expect((await fetch(`${http.base}/internal/metrics`)).status).toBe(200);
    expect((await fetch(`${http.base}/metrics`)).status).toBe(418);
    expect((await fetch(`${http.base}/api/immune/health`)).status).toBe(418);
    expect((await fetch(`${http.base}/self-check`)).status).toBe(418);
  });

  it('puts its metrics on the registry it is given, and on the global one by default', async () => {
    const registry = new Registry();
    await using guard = await createGuard(base({ registry }));
    expect((await registry.getMetricsAsJSON()).map((m) => m.name)).toContain('guard_memory_rss_bytes');
    expect(guard.registry).toBe(registry);
  });
});

describe('mode switch', () => {
  const post = (url: string, body: unknown, token?: string) =>
    fetch(url, { method: 'POST', headers: { 'content-type': 'application/json', ...(token ? { authorization: `Bearer ${token}` } : {}) }, body: JSON.stringify(body) });

  it('is off (403) with no admin token configured, even from loopback', async () => {
    await using guard = await createGuard(base());
    await using http = await listen((req, res) => guard.handler(req, res));
    const res = await post(`${http.base}/guard/mode`, { mode: 'full' }, 'anything');
    expect(res.status).toBe(403);
    expect(res.headers.get('content-type')).toContain('application/problem+json');
    expect(guard.chain.mode).toBe('detect');
  });

  it('needs the bearer token (GUARD_ADMIN_TOKEN), validates the body and switches at run time', async () => {
    await using guard = await createGuard(base({ env: { GUARD_ADMIN_TOKEN: 's3cret' } }));
    await using http = await listen((req, res) => guard.handler(req, res));
    expect((await post(`${http.base}/guard/mode`, { mode: 'full' })).status).toBe(401);
    expect((await post(`${http.base}/guard/mode`, { mode: 'full' }, 'wrong')).status).toBe(403);
    expect(await (await post(`${http.base}/guard/mode`, { mode: 'loud' }, 's3cret')).json()).toMatchObject({ status: 400, field: 'mode' });
    expect(await (await post(`${http.base}/guard/mode`, { mode: 'full', component: 'nope' }, 's3cret')).json()).toMatchObject({ status: 400, field: 'component' });
    const ok = await post(`${http.base}/guard/mode`, { mode: 'full', component: 'handles' }, 's3cret');
    expect(ok.status).toBe(200);
    expect(guard.chain.modeOf('handles')).toBe('full');
  });

  it('refuses full mode (409) for a guard without a sanitizer', async () => {
    await using guard = await createGuard(base({ sanitizer: false, adminToken: 't' }));
    await using http = await listen((req, res) => guard.handler(req, res));
    const res = await post(`${http.base}/guard/mode`, { mode: 'full' }, 't');
    expect(res.status).toBe(409);
    expect(await res.json()).toMatchObject({ code: 'SANITIZER_MISSING' });
  });
});

describe('createGuard', () => {
  it('refuses to start in full mode without a sanitizer (SANITIZER_MISSING), and closes what it built', async () => {
    const error = await createGuard(base({ mode: 'full', sanitizer: false })).catch((e: unknown) => e);
    expect(isGuardError(error, 'SANITIZER_MISSING')).toBe(true);
    expect((error as Error).message).toMatch(/full mode .* needs a sanitizer/);
  });

  it('reads the env once; code options win', async () => {
    await using fromEnv = await createGuard(base({ env: { PARASITE_GUARD_MODE: 'dry_run' } }));
    expect(fromEnv.chain.mode).toBe('dry_run');
    await using fromCode = await createGuard(base({ env: { PARASITE_GUARD_MODE: 'dry_run' }, mode: 'detect' }));
    expect(fromCode.chain.mode).toBe('detect');
    // GUARD_FLEET=true with no database would fail to start; `fleet: false` in code keeps fleet mode off.
    await using noFleet = await createGuard(base({ env: { GUARD_FLEET: 'true' }, fleet: false }));
    expect(noFleet.fleet).toBeUndefined();
  });

  it('names the variable of a bad env value', async () => {
    await expect(createGuard(base({ env: { GUARD_SHUTDOWN_TIMEOUT: 'soon' } }))).rejects.toThrow(/GUARD_SHUTDOWN_TIMEOUT/);
  });

  it('keeps the immune log in a SQLite file by default', async () => {
    const path = join(dir, 'immune.db');
    {
      await using guard = await createGuard(base({ immune: { path } }));
      await guard.immune!.publishEvent({ severity: 'INFO', type: 'SELF_HEALING_ACTION', message: 'kept' });
    }
    await using again = await createGuard(base({ immune: { path } }));
    expect((await again.immune!.getRecentEvents()).map((e) => e.message)).toContain('kept');
  });
});

describe('immune write token', () => {
  it('protects POST /api/immune/event with GUARD_IMMUNE_WRITE_TOKEN; reads stay open', async () => {
    await using guard = await createGuard(base({ env: { GUARD_IMMUNE_WRITE_TOKEN: 'w' } }));
    await using http = await listen((req, res) => guard.handler(req, res));
    const body = JSON.stringify({ severity: 'CRITICAL', type: 'ERROR_SPIKE', message: 'injected' });
    const headers = { 'content-type': 'application/json' };
    expect((await fetch(`${http.base}/api/immune/event`, { method: 'POST', headers, body })).status).toBe(401);
    expect((await fetch(`${http.base}/api/immune/event`, { method: 'POST', headers: { ...headers, authorization: 'Bearer w' }, body })).status).toBe(201);
    expect((await fetch(`${http.base}/api/immune/events`)).status).toBe(200);
  });
});

describe('guard.track', () => {
  it('tracks resources made after the guard: a late WebSocket server is healed in full mode, a BatchWriter on the guard\'s own dialect joins', async () => {
    const { default: Database } = await import('better-sqlite3');
    const { Kysely, SqliteDialect } = await import('kysely');
    const { BatchWriter } = await import('@guard/detectors');
    await using guard = await createGuard(
      base({
        mode: 'full',
        db: { app: new SqliteDialect({ database: new Database(':memory:') }) },
        env: { PARASITE_GUARD_WEBSOCKET_THRESHOLD: 'ping_interval=1', PARASITE_GUARD_WEBSOCKET_ASYNC_DELAY: '0' },
      }),
    );
    const db = new Kysely<NoTables>({ dialect: guard.dialects.app! });
    const batch = new BatchWriter<number>({ name: 'results', db, write: async () => {} });
    guard.track({ batches: { results: batch } });
    expect(Object.keys((await modeView(guard)).components)).toContain('batch');

    await using late = await wsTestServer();
    guard.track({ wss: { late: late.wss } });
    const { client: dead } = await late.connect({ autoPong: false });
    expect(await new Promise<number>((resolve) => dead.once('close', resolve))).toBe(1011);
    expect(() => guard.track({ wss: { late: late.wss } })).toThrow(/already tracked/);
    await batch.close();
    await db.destroy();
  });
});

async function modeView(guard: Awaited<ReturnType<typeof createGuard>>): Promise<{ components: Record<string, string> }> {
  await using http = await listen((req, res) => guard.handler(req, res));
  return (await (await fetch(`${http.base}/guard/mode`)).json()) as { components: Record<string, string> };
}

describe('memory budget', () => {
  const sampler = () => ({ rss: 2_000 * 1024 * 1024, heapUsed: 1, heapTotal: 1, external: 0, arrayBuffers: 0 });

  it('with no threshold set, a big process is reported but stays ready and is not shed (Guard does not guess a budget)', async () => {
    await using guard = await createGuard(base({ memory: { sampler } }));
    await using http = await listen((req, res) => guard.handler(req, res, () => guard.middleware(req, res, () => res.end('app'))));
    guard.memory!.check();
    const ready = await fetch(`${http.base}/readyz?verbose`);
    expect(ready.status).toBe(200);
    expect(await ready.text()).toContain('[-]memory failed: memory status critical (non-critical)');
    expect(guard.isUnderPressure()).toBe(false);
    expect(await (await fetch(`${http.base}/work`)).text()).toBe('app');
  });

  it('over a threshold the app set (MEMORY_RSS_THRESHOLD_MB), readiness fails and requests are shed with 503', async () => {
    await using guard = await createGuard(base({ env: { MEMORY_RSS_THRESHOLD_MB: '1000' }, memory: { sampler } }));
    await using http = await listen((req, res) => guard.handler(req, res, () => guard.middleware(req, res, () => res.end('app'))));
    guard.memory!.check();
    expect((await fetch(`${http.base}/readyz`)).status).toBe(503);
    expect(guard.isUnderPressure()).toBe(true);
    const shed = await fetch(`${http.base}/work`);
    expect(shed.status).toBe(503);
    expect(shed.headers.get('retry-after')).toBe('5');
    expect((await fetch(`${http.base}/livez`)).status).toBe(200);
  });

  it('a critical status that is not RSS over the budget (an oversized cache) fails readiness but sheds nothing', async () => {
    const small = () => ({ rss: 100 * 1024 * 1024, heapUsed: 1, heapTotal: 1, external: 0, arrayBuffers: 0 });
    await using guard = await createGuard(base({ env: { MEMORY_RSS_THRESHOLD_MB: '1000', CACHE_ENTRIES_THRESHOLD: '10' }, memory: { sampler: small, caches: { sessions: () => 50 } } }));
    await using http = await listen((req, res) => guard.handler(req, res, () => guard.middleware(req, res, () => res.end('app'))));
    expect(guard.memory!.check().status).toBe('critical');
    expect((await fetch(`${http.base}/readyz`)).status).toBe(503);
    expect(guard.isUnderPressure()).toBe(false);
    expect(await (await fetch(`${http.base}/work`)).text()).toBe('app');
  });
});
