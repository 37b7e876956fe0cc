import Fastify from 'fastify';
import { describe, expect, it } from 'vitest';
import { createGuard } from './index.js';
import { guardPlugin } from './fastify.js';
import { testGuardOptions } from '../test/support.js';

const options = () => testGuardOptions({ env: { GUARD_ADMIN_TOKEN: 't' } });

describe('@guard/node/fastify', () => {
  it('registers Guard routes in Fastify\'s router (at the guard\'s paths) and decorates fastify.guard', async () => {
    const app = Fastify();
    await app.register(guardPlugin, { ...options(), endpoints: { metrics: '/internal/metrics' } });
    app.get('/hello', async () => ({ hello: 'world' }));
    await app.ready();
    expect(app.hasRoute({ method: 'GET', url: '/readyz' })).toBe(true);
    expect((await app.inject('/readyz')).json()).toMatchObject({ status: 'ok' });
    expect((await app.inject('/internal/metrics')).body).toContain('guard_memory_rss_bytes');
    expect(app.hasRoute({ method: 'GET', url: '/metrics' })).toBe(false);
    expect((await app.inject('/hello')).json()).toEqual({ hello: 'world' });
    expect(app.guard.chain.mode).toBe('detect');
    await app.close();
    expect(app.guard.shuttingDown).toBe(true);
  });

  it('reads POST bodies itself: problem+json for bad JSON, and the mode switch works through Fastify', async () => {
    const app = Fastify();
    await app.register(guardPlugin, options());
    const bad = await app.inject({ method: 'POST', url: '/guard/mode', headers: { 'content-type': 'application/json', authorization: 'Bearer t' }, payload: '{"mode":' });
    expect(bad.statusCode).toBe(400);
    expect(bad.headers['content-type']).toContain('application/problem+json');
    const ok = await app.inject({ method: 'POST', url: '/guard/mode', headers: { authorization: 'Bearer t' }, payload: { mode: 'dry_run' } });
    expect(ok.statusCode).toBe(200);
    expect(app.guard.chain.mode).toBe('dry_run');
    const event = await app.inject({ method: 'POST', url: '/api/immune/event', payload: { severity: 'INFO', type: 'ERROR_SPIKE', message: 'from fastify' } });
    expect(event.statusCode).toBe(201);
    await app.close();
  });

  it('sheds load in onRequest while under pressure (503 + Retry-After), like @fastify/under-pressure', async () => {
    const app = Fastify();
    await app.register(guardPlugin, { ...options(), pressure: { autoStart: false, sustainMs: 0, thresholds: { cpu: 80 } } });
    app.get('/work', async () => 'done');
    await app.ready();
    expect((await app.inject('/work')).statusCode).toBe(200);
    app.guard.pressure!.evaluate({ cpuPercent: 99 });
    app.guard.pressure!.evaluate({ cpuPercent: 99 });
    expect(app.guard.isUnderPressure()).toBe(true);
    const shed = await app.inject('/work');
    expect(shed.statusCode).toBe(503);
    expect(shed.headers['retry-after']).toBe('5');
    expect(shed.json()).toMatchObject({ title: 'Service under pressure' });
    // Probes and metrics still answer: shedding them would get a busy pod restarted or blind its monitoring.
    expect((await app.inject('/livez')).statusCode).toBe(200);
    expect((await app.inject('/metrics')).statusCode).toBe(200);
    await app.close();
  });

  it('takes a guard built elsewhere and leaves closing it to its owner', async () => {
    await using guard = await createGuard(options());
    const app = Fastify();
    await app.register(guardPlugin, { guard });
    expect((await app.inject('/livez')).statusCode).toBe(200);
    await app.close();
    expect(guard.shuttingDown).toBe(false);
  });
});

describe('@guard/node/fastify shutdown', () => {
  it('a guard shutdown drains fastify.server and then runs the app\'s onClose hooks; fastify.close() after it is harmless', async () => {
    const app = Fastify();
    await app.register(guardPlugin, options());
    const closed: string[] = [];
    app.addHook('onClose', async () => {
      closed.push('app');
    });
    await app.listen({ port: 0, host: '127.0.0.1' });
    const report = await app.guard.shutdown();
    expect(report.drained).toBe(true);
    expect(app.server.listening).toBe(false);
    expect(closed).toEqual(['app']);
    await app.close();
  });
});
