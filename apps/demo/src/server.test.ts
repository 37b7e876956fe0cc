import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { WebSocket } from 'ws';
import { startDemo, type Demo } from './server.js';
import { CHAOS_CLI, run, spawnDemo } from './test-support.js';

let demo: Demo;
let dataDir: string;

beforeAll(async () => {
  dataDir = mkdtempSync(join(tmpdir(), 'guard-demo-test-'));
  demo = await startDemo({ port: 0, host: '127.0.0.1', dataDir, env: { ...process.env, PARASITE_GUARD_MODE: 'detect', GUARD_ADMIN_TOKEN: 'test-token' } });
});
afterAll(async () => {
  await demo?.close();
  rmSync(dataDir, { recursive: true, force: true });
});

const json = (body: unknown) => ({ method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) });

async function problem(res: Response, status: number): Promise<Record<string, unknown>> {
  expect(res.status).toBe(status);
  expect(res.headers.get('content-type')).toContain('application/problem+json');
  return (await res.json()) as Record<string, unknown>;
}

describe('demo service', () => {
  it('scores, stores and lists analyses through the breaker, bulkhead and batch writer', async () => {
    const created = await fetch(`${demo.url}/api/analyses`, json({ text: 'hello guard' }));
    expect(created.status).toBe(201);
    const { id, score } = (await created.json()) as { id: string; score: number };
    expect(typeof score).toBe('number');
    const one = await fetch(`${demo.url}/api/analyses/${id}`);
    expect(await one.json()).toMatchObject({ id, status: 'done', score });
    const list = (await (await fetch(`${demo.url}/api/analyses?limit=5`)).json()) as { analyses: { id: string }[] };
    expect(list.analyses.map((a) => a.id)).toContain(id);
    expect(demo.guard.batch.buffered + demo.guard.sink.written).toBeGreaterThan(0);
  });

  it('streams progress with the ack protocol over WebSocket and closes after the terminal message', async () => {
    const ws = new WebSocket(`${demo.url.replace('http', 'ws')}/ws`);
    const types: string[] = [];
    const closed = new Promise<number>((resolve) => ws.once('close', (code) => resolve(code)));
    ws.on('message', (data) => {
      const message = JSON.parse(String(data)) as { id?: string; type: string };
      types.push(message.type);
      if (message.id) ws.send(JSON.stringify({ type: 'ack', id: message.id }));
      if (message.type === 'welcome') ws.send(JSON.stringify({ type: 'analyze', text: 'stream me' }));
    });
    expect(await closed).toBe(1000);
    expect(types.filter((t) => t === 'progress_update')).toHaveLength(3);
    expect(types).toContain('result');
    const connections = demo.guard.sockets.connections().filter((c) => c.pending > 0);
    expect(connections).toHaveLength(0);
  });

  it('serves metrics with every metric name in DESIGN.md', async () => {
    const text = await (await fetch(`${demo.url}/metrics`)).text();
    for (const name of [
      'process_cpu_seconds_total',
      'parasite_detected_total',
      'parasite_sanitized_total',
      'parasite_active_sanitizations',
      'parasite_eventbus_subscriptions',
      'parasite_db_connections_active',
      'parasite_detection_duration_seconds',
      'parasite_sanitization_duration_seconds',
    ]) {
      expect(text, name).toMatch(new RegExp(`^# TYPE ${name} `, 'm'));
    }
    for (const prefix of ['guard_circuit_', 'guard_memory_', 'guard_immune_', 'guard_playbooks_']) {
      expect(text, prefix).toMatch(new RegExp(`^# TYPE ${prefix}\\w+`, 'm'));
    }
  });

  it('answers the guard endpoints: self-check, probes, immune health, dashboard', async () => {
    expect([200, 206]).toContain((await fetch(`${demo.url}/self-check`)).status);
    expect((await fetch(`${demo.url}/livez`)).status).toBe(200);
    expect((await fetch(`${demo.url}/readyz`)).status).toBe(200);
    expect((await fetch(`${demo.url}/api/immune/health`)).status).toBe(200);
    const page = await fetch(`${demo.url}/`);
    expect(page.headers.get('content-type')).toContain('text/html');
    expect(await page.text()).toContain('Guard');
    const state = (await (await fetch(`${demo.url}/dashboard/state`)).json()) as { mode: string; breakers: unknown[] };
    expect(state.mode).toBe('detect');
    expect(state.breakers).toHaveLength(1);
  });

  it('switches the guard mode at run time with the admin token', async () => {
    const denied = await fetch(`${demo.url}/guard/mode`, json({ mode: 'full' }));
    await problem(denied, 401);
    const auth = { 'content-type': 'application/json', authorization: 'Bearer test-token' };
    const bad = await fetch(`${demo.url}/guard/mode`, { method: 'POST', headers: auth, body: JSON.stringify({ mode: 'loud' }) });
    expect((await problem(bad, 400)).field).toBe('mode');
    const ok = await fetch(`${demo.url}/guard/mode`, { method: 'POST', headers: auth, body: JSON.stringify({ mode: 'dry_run', component: 'handles' }) });
    expect(await ok.json()).toMatchObject({ mode: 'detect', effective: 'dry_run' });
    expect(demo.guard.chain.modeOf('handles')).toBe('dry_run');
  });

  it('answers bad requests on every endpoint with problem+json 4xx and stays up', async () => {
    const post = (path: string, body: string, type = 'application/json') => fetch(`${demo.url}${path}`, { method: 'POST', headers: { 'content-type': type }, body });
    expect((await problem(await post('/api/analyses', '{"text":'), 400)).field).toBe('body');
    expect((await problem(await post('/api/analyses', '{"text":42}'), 400)).field).toBe('text');
    expect((await problem(await post('/api/analyses', '{"text":"x","admin":true}'), 400)).field).toBe('admin');
    await problem(await post('/api/analyses', JSON.stringify({ text: 'x'.repeat(1_000_000) })), 413);
    await problem(await post('/api/analyses', 'text=x', 'application/x-www-form-urlencoded'), 415);
    expect((await problem(await fetch(`${demo.url}/api/analyses?limit=abc`), 400)).field).toBe('limit');
    await problem(await fetch(`${demo.url}/api/analyses/does-not-exist`), 404);
    await problem(await fetch(`${demo.url}/api/analyses`, { method: 'DELETE' }), 405);
    await problem(await post('/api/immune/event', '{"severity":"LOUD","type":"ERROR_SPIKE","message":"x"}'), 400);
    await problem(await post('/api/immune/event', '{not json'), 400);
    await problem(await fetch(`${demo.url}/api/immune/events?limit=-4`), 400);
    await problem(await post('/self-check/restart', '{"confirm":true}'), 401);
    await problem(await post('/chaos/not-a-scenario', '{}'), 401);
    await problem(await fetch(`${demo.url}/chaos/not-a-scenario`, { headers: { authorization: 'Bearer test-token' } }), 404);
    await problem(await fetch(`${demo.url}/nope`), 404);
    const flood = await Promise.all(Array.from({ length: 200 }, () => post('/api/analyses', '{"text":')));
    expect(flood.every((res) => res.status === 400)).toBe(true);
    expect((await fetch(`${demo.url}/livez`)).status).toBe(200);
  });
});

describe('demo process', () => {
  it('starts on PORT and exits 0 on SIGTERM after draining', async () => {
    const child = await spawnDemo();
    expect((await fetch(`${child.url}/metrics`)).status).toBe(200);
    expect(await child.stop()).toBe(0);
  });
});

describe('demo on Postgres (DATABASE_URL)', () => {
  it('stores analyses and immune events in Postgres and heals an orphaned connection there', { timeout: 60_000 }, async () => {
    const pgUrl = process.env.GUARD_TEST_PG_URL ?? 'postgres://postgres@127.0.0.1:5432/test';
    await using child = await spawnDemo({ DATABASE_URL: pgUrl, PARASITE_GUARD_MODE: 'full' });
    const created = await fetch(`${child.url}/api/analyses`, json({ text: 'on postgres' }));
    expect(created.status).toBe(201);
    const state = (await (await fetch(`${child.url}/dashboard/state`)).json()) as { mode: string };
    expect(state.mode).toBe('full');
    const { code, output } = await run([CHAOS_CLI, 'db-orphan', '--url', child.url]);
    expect(output).toMatch(/^db-orphan\s.*PASS/m);
    expect(code).toBe(0);
    const events = (await (await fetch(`${child.url}/api/immune/events?limit=50`)).json()) as { events: { module?: string; type: string }[] };
    expect(events.events.some((e) => e.module === 'db' && e.type === 'SELF_HEALING_ACTION')).toBe(true);
    expect(child.output()).toContain('db=postgres');
  });
});
