import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { WebSocket } from 'ws';
import { startDemo, type Demo } from './server.js';
import { ADMIN_TOKEN, CHAOS_CLI, run, spawnDemo } from './test-support.js';

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
    expect(await ok.json()).toMatchObject({ mode: 'detect', components: { handles: 'dry_run' } });
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

/** Opens a socket, waits for the welcome, and collects every later message and the close code. */
async function openSocket(url: string): Promise<{ ws: WebSocket; messages: Record<string, unknown>[]; closed: Promise<number>; next: () => Promise<Record<string, unknown>> }> {
  const ws = new WebSocket(`${url.replace('http', 'ws')}/ws`);
  const messages: Record<string, unknown>[] = [];
  const waiters: ((m: Record<string, unknown>) => void)[] = [];
  const closed = new Promise<number>((resolve) => ws.once('close', (code) => resolve(code)));
  ws.on('error', () => {});
  ws.on('message', (data) => {
    const message = JSON.parse(String(data)) as Record<string, unknown>;
    if (typeof message.id === 'string') ws.send(JSON.stringify({ type: 'ack', id: message.id }));
    const waiter = waiters.shift();
    if (waiter) waiter(message);
    else messages.push(message);
  });
  const next = () => new Promise<Record<string, unknown>>((resolve) => (messages.length > 0 ? resolve(messages.shift()!) : waiters.push(resolve)));
  expect((await next()).type).toBe('welcome');
  return { ws, messages, closed, next };
}

describe('do no harm', () => {
  it('answers lone surrogates with 400 naming text, cuts no surrogate pair, and never opens the downstream breaker for them', async () => {
    // JSON.stringify escapes a lone surrogate as \ud800, so the body is valid JSON holding ill-formed Unicode.
    for (let i = 0; i < 8; i++) expect((await problem(await fetch(`${demo.url}/api/analyses`, json({ text: 'a\ud800' })), 400)).field).toBe('text');
    expect(demo.guard.downstreamBreaker.state).toBe('closed');
    // Past the edge, the breaker's shouldCount still ignores the caller's fault (URIError on ill-formed text).
    for (let i = 0; i < 6; i++) await expect(demo.service.score('x\udc00')).rejects.toThrow(URIError);
    expect(demo.guard.downstreamBreaker.state).toBe('closed');
    // A valid emoji straddling the 200-unit cut toward the downstream: the pair is kept whole or dropped, never split.
    expect((await fetch(`${demo.url}/api/analyses`, json({ text: `${'a'.repeat(199)}\u{1F600}` }))).status).toBe(201);
    expect(demo.guard.downstreamBreaker.state).toBe('closed');
  });

  it('answers null and other non-object JSON on the WebSocket with an error and keeps the socket', async () => {
    const socket = await openSocket(demo.url);
    for (const text of ['null', '42', '"analyze"', '[]', '{"type":"analyze","text":"\\ud800"}', '{"type":"nope"}']) {
      socket.ws.send(text);
      expect(await socket.next(), text).toMatchObject({ type: 'error' });
    }
    expect(socket.ws.readyState).toBe(WebSocket.OPEN);
    socket.ws.close();
  });

  it('puts WebSocket work through the same rate limit and shedding as the HTTP API', async () => {
    demo.healing.limiter.setLimit('api', 0);
    try {
      const socket = await openSocket(demo.url);
      socket.ws.send(JSON.stringify({ type: 'analyze', text: 'refused' }));
      expect(await socket.next()).toMatchObject({ type: 'error', status: 'rate_limited', retryAfterSec: 1 });
      expect((await fetch(`${demo.url}/api/analyses`, json({ text: 'refused' }))).status).toBe(429);
      socket.ws.close();
    } finally {
      demo.healing.limiter.clear('api');
    }
  });

  it('sheds WebSocket work under resource pressure, like the HTTP API', async () => {
    // A disk alarm (no playbook acts on it) fed straight to the monitor, in its future so the real 1 Hz samples do not interfere.
    const { pressure } = demo.healing;
    const at = Date.now() + 600_000;
    pressure.evaluate({ diskPercent: 99 }, at);
    pressure.evaluate({ diskPercent: 99 }, at + 60_000);
    try {
      expect(pressure.isUnderPressure()).toBe(true);
      const socket = await openSocket(demo.url);
      socket.ws.send(JSON.stringify({ type: 'analyze', text: 'shed me' }));
      expect(await socket.next()).toMatchObject({ type: 'error', status: 'overloaded', retryAfterSec: 2 });
      const shed = await fetch(`${demo.url}/api/analyses`, json({ text: 'shed me' }));
      await problem(shed, 503);
      expect(shed.headers.get('retry-after')).toBe('2');
      socket.ws.close();
    } finally {
      pressure.evaluate({ diskPercent: 0 }, at + 120_000);
      pressure.evaluate({ diskPercent: 0 }, at + 180_000);
    }
    expect(pressure.isUnderPressure()).toBe(false);
  });

  it('closes only the offending socket: 1009 for an oversized frame, 1007 for invalid UTF-8', async () => {
    const bystander = await openSocket(demo.url);
    const big = await openSocket(demo.url);
    big.ws.send(Buffer.alloc(65 * 1024 + 1));
    expect(await big.closed).toBe(1009);
    const bad = await openSocket(demo.url);
    bad.ws.send(Buffer.from([0x7b, 0xff, 0xfe, 0x7d]), { binary: false });
    expect(await bad.closed).toBe(1007);
    expect(bystander.ws.readyState).toBe(WebSocket.OPEN);
    expect(demo.gate.stats.errors).toBeGreaterThanOrEqual(2);
    expect((await fetch(`${demo.url}/livez`)).status).toBe(200);
    bystander.ws.close();
  });
});

describe('demo limits and lab access without a token', () => {
  it('refuses lab endpoints (403), sockets past the cap (503), chatty sockets (1008) and streams past the cap (503)', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'guard-demo-limits-'));
    const env: Record<string, string | undefined> = { ...process.env, PARASITE_GUARD_MODE: 'detect', WS_MAX_CONNECTIONS: '2', WS_MAX_MESSAGES_PER_SEC: '1', WS_MESSAGE_BURST: '3', DASHBOARD_MAX_STREAMS: '1' };
    delete env.GUARD_ADMIN_TOKEN;
    await using limited = await startDemo({ port: 0, host: '127.0.0.1', dataDir: dir, env });
    try {
      const mode = await problem(await fetch(`${limited.url}/guard/mode`, json({ mode: 'full' })), 403);
      expect(mode.title).toBe('Admin endpoints disabled');
      await problem(await fetch(`${limited.url}/chaos/ws-no-ack`, json({})), 403);
      expect(limited.guard.chain.mode).toBe('detect');

      const first = await openSocket(limited.url);
      const chatty = await openSocket(limited.url);
      const refused = new WebSocket(`${limited.url.replace('http', 'ws')}/ws`);
      const status = await new Promise<number>((resolve) => refused.once('unexpected-response', (_req, res) => resolve(res.statusCode ?? 0)));
      refused.on('error', () => {});
      expect(status).toBe(503);
      const elsewhere = new WebSocket(`${limited.url.replace('http', 'ws')}/not-ws`);
      elsewhere.on('error', () => {});
      expect(await new Promise<number>((resolve) => elsewhere.once('unexpected-response', (_req, res) => resolve(res.statusCode ?? 0)))).toBe(404);
      for (let i = 0; i < 10; i++) chatty.ws.send('{"type":"hello"}');
      expect(await chatty.closed).toBe(1008);
      expect(first.ws.readyState).toBe(WebSocket.OPEN);
      first.ws.close();

      // HEAD gets the stream's headers and an ended response, never an open stream.
      const head = await fetch(`${limited.url}/dashboard/stream`, { method: 'HEAD' });
      expect(head.status).toBe(200);
      expect(head.headers.get('content-type')).toBe('text/event-stream');
      expect(await head.text()).toBe('');

      const stream = new AbortController();
      const open = await fetch(`${limited.url}/dashboard/stream`, { signal: stream.signal });
      expect(open.status).toBe(200);
      const second = await fetch(`${limited.url}/dashboard/stream`);
      await problem(second, 503);
      expect(second.headers.get('retry-after')).toBe('5');
      stream.abort();
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
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
    const { code, output } = await run([CHAOS_CLI, 'db-orphan', '--url', child.url, '--token', ADMIN_TOKEN]);
    expect(output).toMatch(/^db-orphan\s.*PASS/m);
    expect(code).toBe(0);
    const events = (await (await fetch(`${child.url}/api/immune/events?limit=50`)).json()) as { events: { module?: string; type: string }[] };
    expect(events.events.some((e) => e.module === 'db' && e.type === 'SELF_HEALING_ACTION')).toBe(true);
    expect(child.output()).toContain('db=postgres');
  });
});
