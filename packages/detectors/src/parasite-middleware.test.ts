import { GuardBus } from '@guard/core';
import express from 'express';
import { createServer } from 'node:http';
import type { RequestListener, Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { Registry } from 'prom-client';
import { describe, expect, it } from 'vitest';
import type { Detector, Finding } from './detector.js';
import { DetectorChain } from './detector-chain.js';
import { createParasiteMiddleware } from './parasite-middleware.js';
import { recordingScheduler } from './test-support.js';

function setup(mode: 'dry_run' | 'detect' | 'full') {
  const scheduler = recordingScheduler();
  const chain = new DetectorChain({ mode, scanIntervalMs: 0, bus: new GuardBus(), registry: new Registry(), scheduler });
  const findings: Finding[] = [];
  const detector: Detector = { component: 'db', pattern: 'connection_orphan', scan: () => findings };
  chain.add(detector);
  findings.push({ pattern: 'connection_orphan', severity: 'critical', resourceId: 'conn_1', message: 'held', details: {} });
  chain.scan();
  scheduler.scheduled.length = 0;
  const guard = createParasiteMiddleware(chain, { routes: [{ prefix: '/orders', component: 'db' }, { pattern: /^\/live\b/, component: 'websocket' }], retryAfterSeconds: 7 });
  return { chain, scheduler, guard, findings };
}

async function listen(handler: RequestListener): Promise<{ url: string } & AsyncDisposable> {
  const server: Server = createServer(handler);
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    [Symbol.asyncDispose]: () => new Promise<void>((resolve) => server.close(() => resolve())),
  };
}

const servers = {
  'node:http': (guard: ReturnType<typeof createParasiteMiddleware>) =>
    listen((req, res) =>
      guard(req, res, () => {
        res.writeHead(200, { 'content-type': 'text/plain' });
        res.end(`ok ${req.url}`);
      }),
    ),
  'Express 5': (guard: ReturnType<typeof createParasiteMiddleware>) => {
    const app = express();
    app.use(guard);
    app.get('/{*path}', (req, res) => {
      res.type('text/plain').send(`ok ${req.url}`);
    });
    return listen(app);
  },
};

describe.each(Object.entries(servers))('createParasiteMiddleware under %s', (_name, serve) => {
  it('full: a request routed to a component with a critical detection gets 503 problem+json and schedules the sanitization', async () => {
    const { chain, scheduler, guard } = setup('full');
    await using server = await serve(guard);
    const detection = chain.criticalFor('db')!;
    const res = await fetch(`${server.url}/orders/42`);
    expect(res.status).toBe(503);
    expect(res.headers.get('retry-after')).toBe('7');
    expect(res.headers.get('content-type')).toContain('application/problem+json');
    expect(await res.json()).toMatchObject({ status: 503, detectionId: detection.id, component: 'db', pattern: 'connection_orphan' });
    expect(scheduler.scheduled.map((d) => d.id)).toEqual([detection.id]);
    const other = await fetch(`${server.url}/live/feed`);
    expect(other.status).toBe(200);
    expect(await other.text()).toBe('ok /live/feed');
    expect((await fetch(`${server.url}/health`)).status).toBe(200);
  });

  it('requests flow unchanged in dry_run and detect, and once the detection clears', async () => {
    for (const mode of ['dry_run', 'detect'] as const) {
      const { scheduler, guard } = setup(mode);
      await using server = await serve(guard);
      const res = await fetch(`${server.url}/orders/42`);
      expect(res.status).toBe(200);
      expect(await res.text()).toBe('ok /orders/42');
      expect(scheduler.scheduled).toEqual([]);
    }
    const { chain, guard, findings } = setup('full');
    await using server = await serve(guard);
    expect((await fetch(`${server.url}/orders`)).status).toBe(503);
    findings.length = 0;
    chain.scan();
    expect((await fetch(`${server.url}/orders`)).status).toBe(200);
    findings.push({ pattern: 'connection_orphan', severity: 'critical', resourceId: 'conn_2', message: 'held', details: {} });
    chain.scan();
    expect((await fetch(`${server.url}/orders`)).status).toBe(503);
    chain.setMode('detect', 'db');
    expect((await fetch(`${server.url}/orders`)).status).toBe(200);
  });
});

describe('createParasiteMiddleware prefixes', () => {
  it('match whole path segments only: /orders guards /orders, /orders/1 and /orders?x, never /ordersfoo', async () => {
    const { guard } = setup('full');
    await using server = await servers['node:http'](guard);
    const statuses: Record<string, number> = {};
    for (const path of ['/orders', '/orders/', '/orders/42', '/orders?page=2', '/ordersfoo', '/orders-archive', '/order']) {
      statuses[path] = (await fetch(`${server.url}${path}`)).status;
    }
    expect(statuses).toEqual({ '/orders': 503, '/orders/': 503, '/orders/42': 503, '/orders?page=2': 503, '/ordersfoo': 200, '/orders-archive': 200, '/order': 200 });
  });
});

describe('createParasiteMiddleware options', () => {
  it('rejects bad route configuration with INVALID_OPTION naming the field', () => {
    const chain = new DetectorChain({ scanIntervalMs: 0, metrics: false });
    expect(() => createParasiteMiddleware(chain, { routes: 'x' as never })).toThrow(expect.objectContaining({ code: 'INVALID_OPTION', details: { field: 'routes' } }));
    expect(() => createParasiteMiddleware(chain, { routes: [{ component: 'db' }] })).toThrow(/routes\[0\] needs exactly one/);
    expect(() => createParasiteMiddleware(chain, { routes: [{ prefix: '/a', pattern: /a/, component: 'db' }] })).toThrow(/exactly one/);
    expect(() => createParasiteMiddleware(chain, { routes: [{ prefix: '/a', component: '' }] })).toThrow(/routes\[0\]\.component/);
    expect(() => createParasiteMiddleware(chain, { routes: [], retryAfterSeconds: -1 })).toThrow(/retryAfterSeconds/);
  });
});
