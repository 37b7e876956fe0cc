import { createServer } from 'node:http';
import type { Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { isGuardError } from '@guard/core';
import { Registry } from 'prom-client';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { BYTES_PER_MB } from './memory-snapshot.js';
import { MemoryGuardrail } from './memory-guardrail.js';
import type { MemoryGuardrailOptions } from './guardrail-options.js';
import { createSelfCheckHandler, selfCheckOptionsFromEnv } from './self-check-handler.js';
import type { SelfCheckHandlerOptions } from './self-check-handler.js';
import { createManualClock, createSyntheticSampler } from './testing.js';
import type { JsonObject } from './test-support.js';

const TOKEN = 's3cret-admin-token';

interface TestServer extends AsyncDisposable {
  readonly url: string;
  readonly guardrail: MemoryGuardrail;
  setRss(mb: number): void;
  readonly clock: ReturnType<typeof createManualClock>;
  readonly terminated: number[];
}

async function startServer(
  handlerOptions: SelfCheckHandlerOptions = { adminToken: TOKEN },
  guardOptions: MemoryGuardrailOptions = {},
  withNext = true,
): Promise<TestServer> {
  let rss = 200;
  const clock = createManualClock();
  const terminated: number[] = [];
  const guardrail = new MemoryGuardrail({
    sampler: createSyntheticSampler(clock, { rssMb: () => rss }),
    now: clock,
    registry: new Registry(),
    autoStart: false,
    // The endpoints report every check's point (the start-up grace has its own tests).
    startupGraceMs: 0,
    terminate: () => terminated.push(clock()),
    ...guardOptions,
  });
  const handler = createSelfCheckHandler(guardrail, handlerOptions);
  const server: Server = createServer((req, res) =>
    withNext
      ? handler(req, res, () => {
          res.writeHead(200, { 'content-type': 'text/plain' });
          res.end('app');
        })
      : handler(req, res),
  );
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}`,
    guardrail,
    clock,
    terminated,
    setRss: (mb) => {
      rss = mb;
    },
    async [Symbol.asyncDispose]() {
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
      await guardrail.close();
    },
  };
}

const json = (body: unknown) => ({ headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) });

async function call(url: string, init: { method?: string; token?: string; headers?: Record<string, string>; body?: string } = {}) {
  const headers: Record<string, string> = { ...init.headers };
  if (init.token) headers.authorization = `Bearer ${init.token}`;
  const res = await fetch(url, { method: init.method ?? 'GET', headers, ...(init.body === undefined ? {} : { body: init.body }) });
  const text = await res.text();
  return { status: res.status, headers: res.headers, text, body: text ? (JSON.parse(text) as JsonObject) : undefined };
}

describe('self-check endpoints over real HTTP', () => {
  let s: TestServer;
  beforeAll(async () => {
    s = await startServer();
  });
  afterAll(async () => {
    await s[Symbol.asyncDispose]();
  });

  it.each([
    [200, 200, 'healthy'],
    [600, 206, 'warning'],
    [750, 503, 'critical'],
  ] as const)('GET /self-check at %d MB answers %d (%s)', async (rss, code, status) => {
    s.setRss(rss);
    const res = await call(`${s.url}/self-check`);
    expect(res.status).toBe(code);
    expect(res.headers.get('content-type')).toMatch(/^application\/json/);
    expect(res.headers.get('server-timing')).toMatch(/^self-check;dur=/);
    expect(res.body).toMatchObject({
      status,
      memory: { rssBytes: rss * BYTES_PER_MB, rssMb: rss, thresholdMb: 700 },
      cache: { threshold: 2200, caches: [] },
      thresholds: { rssMb: 700, cacheEntries: 2200 },
      restart: { advised: status === 'critical', autoRestart: false },
    });
    expect(typeof res.body!.responseTimeMs).toBe('number');
    expect(res.body!.reasons.length > 0).toBe(status !== 'healthy');
  });

  it('answers HEAD with the status and no body, and ignores query strings and trailing slashes', async () => {
    s.setRss(600);
    const head = await call(`${s.url}/self-check`, { method: 'HEAD' });
    expect(head.status).toBe(206);
    expect(head.text).toBe('');
    expect((await call(`${s.url}/self-check/?verbose=1`)).status).toBe(206);
  });

  it('GET /self-check/memory reports heap detail, growth and time to threshold', async () => {
    // A 6 MB/min climb over ten checks.
    for (let i = 0; i <= 10; i++) {
      s.setRss(300 + 6 * i);
      if (i > 0) s.clock.advance(60_000);
      s.guardrail.check();
    }
    const res = await call(`${s.url}/self-check/memory`);
    expect(res.status).toBe(200);
    expect(res.body).toMatchObject({ status: 'warning', rssMb: 360, thresholdMb: 700, growth: { leakDetected: true, samples: 12 } });
    expect(res.body!.growth.mbPerMin).toBeCloseTo(6, 0);
    expect(res.body!.heapUsedBytes).toBeGreaterThan(0);
    expect(res.body!.timeToThresholdMs).toBeGreaterThan(50 * 60_000);
    expect(Date.parse(res.body!.predictedBreachAt)).toBeGreaterThan(s.clock());
  });

  it('GET /self-check/baseline passes under +50 MB and fails over it', async () => {
    const baseline = s.guardrail.baseline()!;
    s.setRss(baseline.rssBytes / BYTES_PER_MB + 20);
    const ok = await call(`${s.url}/self-check/baseline`);
    expect(ok.status).toBe(200);
    expect(ok.body).toMatchObject({ acceptanceMb: 50, pass: true, growthMb: 20, baseline: { complete: true, samples: 10 } });
    expect(ok.body!.current.rssBytes).toBe(baseline.rssBytes + 20 * BYTES_PER_MB);
    s.setRss(baseline.rssBytes / BYTES_PER_MB + 80);
    expect((await call(`${s.url}/self-check/baseline`)).body).toMatchObject({ pass: false, growthMb: 80 });
  });

  it('GET /self-check/detailed carries the report for the chart', async () => {
    const res = await call(`${s.url}/self-check/detailed`);
    expect(res.status).toBe(200);
    expect(res.body!.report.series).toHaveLength(11);
    expect(res.body!.report.regression).toMatchObject({ leakDetected: true });
    expect(res.body!.current.snapshot.rssBytes).toBeGreaterThan(0);
  });

  it('GET /livez is 200; GET /readyz is 200 for healthy and warning, 503 for critical', async () => {
    s.setRss(750);
    expect((await call(`${s.url}/livez`)).status).toBe(200);
    const notReady = await call(`${s.url}/readyz`);
    expect(notReady.status).toBe(503);
    expect(notReady.body).toMatchObject({ ready: false, status: 'critical' });
    s.setRss(600);
    expect((await call(`${s.url}/readyz`)).body).toMatchObject({ ready: true, status: 'warning' });
  });

  it('POST /self-check/force-memory-check runs a check (admin token)', async () => {
    const before = s.guardrail.snapshots().length;
    s.setRss(250);
    const res = await call(`${s.url}/self-check/force-memory-check`, { method: 'POST', token: TOKEN });
    expect(res.status).toBe(200);
    expect(res.body).toMatchObject({ memory: { rssMb: 250 } });
    expect(s.guardrail.snapshots().length).toBe(before + 1);
  });

  it.each([
    ['POST', '/self-check', 'GET, HEAD'],
    ['DELETE', '/readyz', 'GET, HEAD'],
    ['GET', '/self-check/restart', 'POST'],
    ['PUT', '/self-check/force-memory-check', 'POST'],
  ])('%s %s is 405 with Allow: %s', async (method, path, allow) => {
    const res = await call(`${s.url}${path}`, { method });
    expect(res.status).toBe(405);
    expect(res.headers.get('allow')).toBe(allow);
    expect(res.headers.get('content-type')).toMatch(/^application\/problem\+json/);
    expect(res.body).toMatchObject({ status: 405, title: 'Method not allowed' });
  });

  it('admin endpoints: 401 without a token, 403 with a wrong one', async () => {
    for (const path of ['/self-check/restart', '/self-check/force-memory-check']) {
      const missing = await call(`${s.url}${path}`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: '{"confirm":true}' });
      expect(missing.status).toBe(401);
      expect(missing.headers.get('www-authenticate')).toBe('Bearer');
      expect(missing.body).toMatchObject({ status: 401, field: 'authorization' });
      const wrong = await call(`${s.url}${path}`, { method: 'POST', token: 'nope', ...json({ confirm: true }) });
      expect(wrong.status).toBe(403);
    }
    expect(s.terminated).toHaveLength(0);
  });

  it('POST /self-check/restart: 400 without confirmation, 415 not JSON, 400 malformed, 413 too large', async () => {
    const url = `${s.url}/self-check/restart`;
    for (const body of [{}, { confirm: 'yes' }, [true]]) {
      const res = await call(url, { method: 'POST', token: TOKEN, headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) });
      expect(res.status).toBe(400);
      expect(res.body).toMatchObject({ status: 400, title: 'Confirmation required', field: 'confirm' });
    }
    const text = await call(url, { method: 'POST', token: TOKEN, headers: { 'content-type': 'text/plain' }, body: 'confirm' });
    expect(text.status).toBe(415);
    const malformed = await call(url, { method: 'POST', token: TOKEN, headers: { 'content-type': 'application/json' }, body: '{"confirm":' });
    expect(malformed.status).toBe(400);
    expect(malformed.body).toMatchObject({ title: 'Malformed JSON' });
    const big = await call(url, { method: 'POST', token: TOKEN, ...json({ confirm: true, pad: 'x'.repeat(10_000) }) });
    expect(big.status).toBe(413);
    expect(s.terminated).toHaveLength(0);
  });

  it('unknown self-check paths are 404; other paths go to next()', async () => {
    const unknown = await call(`${s.url}/self-check/nope`);
    expect(unknown.status).toBe(404);
    expect(unknown.body).toMatchObject({ status: 404 });
    const app = await fetch(`${s.url}/api/items`);
    expect(app.status).toBe(200);
    expect(await app.text()).toBe('app');
  });
});

describe('self-check restart endpoint and options', () => {
  it('POST /self-check/restart restarts (202), then 409 while in progress, then 429 from the next process', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'guard-memory-http-'));
    const restartStateFile = join(dir, 'restart.json');
    try {
      {
        await using s = await startServer({ adminToken: TOKEN }, { restartStateFile });
        const res = await call(`${s.url}/self-check/restart`, { method: 'POST', token: TOKEN, ...json({ confirm: true }) });
        expect(res.status).toBe(202);
        expect(res.body).toMatchObject({ restarting: true, reason: 'manual' });
        const again = await call(`${s.url}/self-check/restart`, { method: 'POST', token: TOKEN, ...json({ confirm: true }) });
        expect(again.status).toBe(409);
        await expect.poll(() => s.terminated.length).toBe(1);
      }
      {
        await using s = await startServer({ adminToken: TOKEN }, { restartStateFile });
        const res = await call(`${s.url}/self-check/restart`, { method: 'POST', token: TOKEN, ...json({ confirm: true }) });
        expect(res.status).toBe(429);
        expect(Number(res.headers.get('retry-after'))).toBeGreaterThan(0);
        expect(res.body).toMatchObject({ status: 429, title: 'Restart budget used' });
        expect(s.terminated).toHaveLength(0);
      }
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('POST /self-check/restart is 500 and does not restart when the restart time cannot be persisted', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'guard-memory-http-'));
    try {
      writeFileSync(join(dir, 'file'), 'x');
      await using s = await startServer({ adminToken: TOKEN }, { restartStateFile: join(dir, 'file', 'restart.json') });
      const res = await call(`${s.url}/self-check/restart`, { method: 'POST', token: TOKEN, ...json({ confirm: true }) });
      expect(res.status).toBe(500);
      expect(res.body).toMatchObject({ status: 500, title: 'Restart not started' });
      await new Promise((resolve) => setImmediate(resolve));
      expect(s.terminated).toHaveLength(0);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('admin endpoints are 403 when no admin token is configured', async () => {
    await using s = await startServer({});
    const res = await call(`${s.url}/self-check/force-memory-check`, { method: 'POST', token: 'anything' });
    expect(res.status).toBe(403);
    expect(res.body).toMatchObject({ title: 'Admin endpoints disabled' });
  });

  it('readyzFailAt: warning makes /readyz fail on warning; basePath moves the endpoints', async () => {
    await using s = await startServer({ readyzFailAt: 'warning', basePath: '/ops/health/' });
    s.setRss(600);
    expect((await call(`${s.url}/readyz`)).status).toBe(503);
    expect((await call(`${s.url}/ops/health`)).status).toBe(206);
    expect((await fetch(`${s.url}/self-check`)).status).toBe(200); // now an app path, served by next()
  });

  it('answers 404 for other paths when mounted without next(), and 503 once the guardrail is closed', async () => {
    await using s = await startServer({}, {}, false);
    expect((await call(`${s.url}/elsewhere`)).status).toBe(404);
    await s.guardrail.close();
    const closed = await call(`${s.url}/self-check`);
    expect(closed.status).toBe(503);
    expect(closed.body).toMatchObject({ title: 'Guardrail closed' });
    expect((await call(`${s.url}/livez`)).status).toBe(200);
  });

  it('rejects bad handler options with INVALID_OPTION', async () => {
    const guardrail = new MemoryGuardrail({ autoStart: false, registry: new Registry() });
    expect(() => createSelfCheckHandler(guardrail, { basePath: 'self' })).toThrow(expect.objectContaining({ code: 'INVALID_OPTION' }));
    expect(() => createSelfCheckHandler(guardrail, { readyzFailAt: 'healthy' as never })).toThrow(
      expect.objectContaining({ code: 'INVALID_OPTION' }),
    );
    await guardrail.close();
  });

  it('selfCheckOptionsFromEnv reads GUARD_ADMIN_TOKEN and MEMORY_READYZ_FAIL_AT', () => {
    expect(selfCheckOptionsFromEnv({})).toEqual({ readyzFailAt: 'critical' });
    expect(selfCheckOptionsFromEnv({ GUARD_ADMIN_TOKEN: 'abc', MEMORY_READYZ_FAIL_AT: 'Warning' })).toEqual({
      adminToken: 'abc',
      readyzFailAt: 'warning',
    });
    try {
      selfCheckOptionsFromEnv({ MEMORY_READYZ_FAIL_AT: 'healthy' });
      expect.unreachable();
    } catch (error) {
      expect(isGuardError(error, 'INVALID_ENV')).toBe(true);
      expect((error as Error).message).toMatch(/MEMORY_READYZ_FAIL_AT/);
    }
  });
});
