import { once } from 'node:events';
import { createServer, request } from 'node:http';
import type { AddressInfo } from 'node:net';
import { describe, expect, it } from 'vitest';
import { createImmuneHandler } from './http-handler.js';
import type { ImmuneHandlerOptions } from './http-handler.js';
import { ImmuneService } from './immune-service.js';
import { MemoryEventStore } from './memory-store.js';
import { join } from 'node:path';
import { createSqliteStore } from './sqlite.js';
import { freshRegistry, tempDir } from './test-helpers.js';

interface Reply {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  // eslint-disable-next-line @typescript-eslint/no-explicit-any -- a JSON reply, read field by field in assertions
  body: any;
  text: string;
}

async function serve(options: ImmuneHandlerOptions = {}, serviceOptions: ConstructorParameters<typeof ImmuneService>[0] = {}) {
  const registry = freshRegistry();
  const service = new ImmuneService({ registry, ...serviceOptions });
  const handler = createImmuneHandler(service, { registry, ...options });
  const server = createServer((req, res) =>
    handler(req, res, () => {
      res.writeHead(404, { 'content-type': 'text/plain' });
      res.end('app route');
    }),
  );
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const port = (server.address() as AddressInfo).port;
  const call = (method: string, path: string, body?: string | Buffer, headers: Record<string, string> = {}): Promise<Reply> =>
    new Promise((resolve, reject) => {
      let answered = false;
      const req = request({ host: '127.0.0.1', port, method, path, headers: body === undefined ? headers : { 'content-type': 'application/json', ...headers } }, (res) => {
        answered = true;
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () => {
          const text = Buffer.concat(chunks).toString('utf8');
          let parsed: unknown = text;
          try {
            parsed = JSON.parse(text);
          } catch {}
          resolve({ status: res.statusCode!, headers: res.headers, body: parsed, text });
        });
      });
      // A server may answer 413 and close before a large body is fully sent: the answer counts, not the write error.
      req.on('error', (error) => {
        if (!answered) reject(error);
      });
      if (body !== undefined) req.write(body);
      req.end();
    });
  return {
    service,
    handler,
    registry,
    port,
    call,
    post: (body: unknown) => call('POST', '/api/immune/event', typeof body === 'string' ? body : JSON.stringify(body)),
    async [Symbol.asyncDispose]() {
      await handler.close();
      server.closeAllConnections();
      server.close();
      await once(server, 'close');
      await service.close();
    },
  };
}

/** Opens the SSE stream and reads it until a pattern shows up in everything received so far. */
async function openStream(url: string, headers: Record<string, string> = {}) {
  const controller = new AbortController();
  const response = await fetch(url, { headers, signal: controller.signal });
  const reader = response.body!.getReader();
  const decoder = new TextDecoder();
  const stream = {
    response,
    controller,
    text: '',
    async readUntil(pattern: RegExp): Promise<void> {
      while (!pattern.test(stream.text)) {
        const { value, done } = await reader.read();
        if (done) throw new Error(`stream ended before ${pattern}`);
        stream.text += decoder.decode(value, { stream: true });
      }
    },
  };
  return stream;
}

const valid = { severity: 'WARNING', type: 'ERROR_SPIKE', message: 'spike', agent_id: 'a-1', module: 'api', meta: { rate: 0.3 } };

describe('createImmuneHandler', () => {
  it('POST /event stores an event and answers 201 with its id', async () => {
    await using t = await serve();
    const reply = await t.post(valid);
    expect(reply.status).toBe(201);
    expect(reply.body.id).toMatch(/^[0-9a-f-]{36}$/);
    const [stored] = await t.service.getRecentEvents();
    expect(stored).toMatchObject({ id: reply.body.id, agentId: 'a-1', module: 'api', severity: 'WARNING', meta: { rate: 0.3 } });
  });

  it.each([
    ['malformed JSON', '{"severity": ', 400, 'body'],
    ['an empty body', '', 400, 'body'],
    ['a JSON array', '[]', 400, 'body'],
    ['a wrong type', JSON.stringify({ ...valid, message: 42 }), 400, 'message'],
    ['an unknown severity', JSON.stringify({ ...valid, severity: 'APOCALYPSE' }), 400, 'severity'],
    ['an unknown type', JSON.stringify({ ...valid, type: 'NOPE' }), 400, 'type'],
    ['a missing message', JSON.stringify({ severity: 'INFO', type: 'ERROR_SPIKE' }), 400, 'message'],
    ['an unknown field', JSON.stringify({ ...valid, agentId: 'camel' }), 400, 'agentId'],
    ['a too deep meta', JSON.stringify({ ...valid, meta: JSON.parse('{"a":'.repeat(30) + '1' + '}'.repeat(30)) }), 400, 'meta'],
    ['a meta that is a string', JSON.stringify({ ...valid, meta: 'x' }), 400, 'meta'],
  ])('POST /event with %s answers %i problem+json naming %s', async (_label, body, status, field) => {
    await using t = await serve();
    const reply = await t.post(body);
    expect(reply.status).toBe(status);
    expect(reply.headers['content-type']).toMatch(/^application\/problem\+json/);
    expect(reply.body).toMatchObject({ status, field });
    expect(typeof reply.body.detail).toBe('string');
    expect(await t.service.getRecentEvents()).toEqual([]);
  });

  it('answers 413 to a 1 MB body and 415 to a wrong content type', async () => {
    await using t = await serve();
    const big = JSON.stringify({ ...valid, message: 'x'.repeat(1024 * 1024) });
    const tooLarge = await t.post(big);
    expect(tooLarge.status).toBe(413);
    expect(tooLarge.headers['content-type']).toMatch(/problem\+json/);
    const chunked = await t.call('POST', '/api/immune/event', Buffer.from(big), { 'transfer-encoding': 'chunked' });
    expect(chunked.status).toBe(413);
    const wrongType = await t.call('POST', '/api/immune/event', JSON.stringify(valid), { 'content-type': 'text/plain' });
    expect(wrongType.status).toBe(415);
    expect(wrongType.body.field).toBe('content-type');
    expect((await t.post(valid)).status).toBe(201); // still healthy
  });

  it('honours a smaller limitBytes', async () => {
    await using t = await serve({ limitBytes: 100 });
    expect((await t.post({ ...valid, message: 'x'.repeat(200) })).status).toBe(413);
  });

  it('stores SQL-looking strings verbatim', async () => {
    await using t = await serve();
    const nasty = `'; DROP TABLE immune_events; -- \u0000 " OR "1"="1`;
    const reply = await t.post({ ...valid, message: nasty, module: 'x\'); DELETE FROM y;--', meta: { sql: 'SELECT * FROM users' } });
    expect(reply.status).toBe(201);
    const events = await t.call('GET', '/api/immune/events');
    expect(events.body.events[0]).toMatchObject({ message: nasty, module: "x'); DELETE FROM y;--", meta: { sql: 'SELECT * FROM users' } });
  });

  it('survives a flood of good and bad requests, each answered correctly', async () => {
    await using t = await serve();
    const bodies = Array.from({ length: 300 }, (_, i) =>
      i % 3 === 0 ? JSON.stringify({ ...valid, message: `ok ${i}` }) : i % 3 === 1 ? '{"broken' : JSON.stringify({ ...valid, severity: 'BAD' }),
    );
    const replies = await Promise.all(bodies.map((b) => t.post(b)));
    replies.forEach((r, i) => expect(r.status).toBe(i % 3 === 0 ? 201 : 400));
    const health = await t.call('GET', '/api/immune/health');
    expect(health.status).toBe(200);
    expect(health.body.total).toBe(100);
  });

  it('GET /health summarises a validated window in snake_case', async () => {
    await using t = await serve();
    await t.post({ ...valid, severity: 'CRITICAL' });
    await t.post(valid);
    const reply = await t.call('GET', '/api/immune/health?window=15m');
    expect(reply.status).toBe(200);
    expect(reply.body).toMatchObject({
      status: 'critical',
      window_ms: 900_000,
      total: 2,
      by_severity: { INFO: 0, WARNING: 1, CRITICAL: 1 },
      by_type: { ERROR_SPIKE: 2, POLICY_VIOLATION: 0, SELF_HEALING_ACTION: 0 },
    });
    expect(reply.body.latest_critical).toMatchObject({ severity: 'CRITICAL', created_at: expect.stringMatching(/Z$/) });
    expect((await t.call('GET', '/api/immune/health?window_ms=60000')).body.window_ms).toBe(60_000);
    expect((await t.call('GET', '/api/immune/health')).body.window_ms).toBe(3_600_000);
    for (const bad of ['abc', '-5m', '0', '999d', '1e9']) {
      const r = await t.call('GET', `/api/immune/health?window=${bad}`);
      expect(r.status, bad).toBe(400);
      expect(r.body.field).toBe('window');
    }
  });

  it('GET /events filters, validates and caps its parameters', async () => {
    await using t = await serve({}, { maxLimit: 3 });
    await t.post({ ...valid, severity: 'INFO', type: 'SELF_HEALING_ACTION' });
    await t.post({ ...valid, severity: 'CRITICAL', type: 'POLICY_VIOLATION' });
    for (let i = 0; i < 3; i++) await t.post(valid);
    const tooMany = await t.call('GET', '/api/immune/events?limit=50');
    expect(tooMany.status).toBe(400); // said, not silently capped
    expect(tooMany.body).toMatchObject({ field: 'limit', detail: expect.stringContaining('at most 3') });
    const all = await t.call('GET', '/api/immune/events?limit=3');
    expect(all.status).toBe(200);
    expect(all.body.count).toBe(3);
    expect(all.body.limit).toBe(3);
    expect(all.body.events[0]).toHaveProperty('created_at');
    expect((await t.call('GET', '/api/immune/events?severity=CRITICAL')).body.events).toHaveLength(1);
    expect((await t.call('GET', '/api/immune/events?type=SELF_HEALING_ACTION')).body.events[0].severity).toBe('INFO');
    const future = new Date(Date.now() + 60_000).toISOString();
    expect((await t.call('GET', `/api/immune/events?since=${encodeURIComponent(future)}`)).body.count).toBe(0);
    expect((await t.call('GET', `/api/immune/events?since=0&limit=2`)).body.count).toBe(2);
    const cases: Array<[string, string]> = [
      ['since=yesterday', 'since'],
      ['severity=LOUD', 'severity'],
      ['type=x', 'type'],
      ['limit=0', 'limit'],
      ['limit=-1', 'limit'],
      ['limit=ten', 'limit'],
      ['window=forever', 'window'],
    ];
    for (const [query, field] of cases) {
      const r = await t.call('GET', `/api/immune/events?${query}`);
      expect(r.status, query).toBe(400);
      expect(r.body.field, query).toBe(field);
    }
  });

  it('answers 405 with Allow for a wrong method and passes other paths to next()', async () => {
    await using t = await serve();
    const wrong = await t.call('DELETE', '/api/immune/events');
    expect(wrong.status).toBe(405);
    expect(wrong.headers.allow).toBe('GET');
    const other = await t.call('GET', '/api/other');
    expect(other.status).toBe(404);
    expect(other.text).toBe('app route');
    expect((await t.call('GET', '/api/immune/unknown')).text).toBe('app route');
  });

  it('answers 404 itself without next and mounts under a custom basePath', async () => {
    const service = new ImmuneService({ registry: freshRegistry() });
    const handler = createImmuneHandler(service, { basePath: '/immune/', registry: freshRegistry() });
    const server = createServer((req, res) => handler(req, res));
    server.listen(0, '127.0.0.1');
    await once(server, 'listening');
    const port = (server.address() as AddressInfo).port;
    const get = async (path: string) => (await fetch(`http://127.0.0.1:${port}${path}`)).status;
    expect(await get('/immune/health')).toBe(200);
    expect(await get('/api/immune/health')).toBe(404);
    server.closeAllConnections();
    server.close();
    await service.close();
  });

  it('answers 503 with Retry-After when the service is closed', async () => {
    await using t = await serve();
    await t.service.close();
    const reply = await t.post(valid);
    expect(reply.status).toBe(503);
    expect(reply.headers['retry-after']).toBe('1');
  });

  it('streams new events over SSE with heartbeats, and cleans up disconnected clients', async () => {
    await using t = await serve({ heartbeatMs: 50 });
    const stream = await openStream(`http://127.0.0.1:${t.port}/api/immune/stream?severity=CRITICAL`);
    const { response, controller, readUntil } = stream;
    expect(response.status).toBe(200);
    expect(response.headers.get('content-type')).toMatch(/^text\/event-stream/);
    await readUntil(/: connected/);
    expect(t.handler.sseClients).toBe(1);
    await t.post({ ...valid, message: 'not critical' });
    const id = (await t.post({ ...valid, severity: 'CRITICAL', message: 'on fire' })).body.id;
    await readUntil(/event: immune\.event_published\ndata: .*\n\n/);
    const data = JSON.parse(/data: (.*)\n/.exec(stream.text)![1]!);
    expect(data).toMatchObject({ type: 'immune.event_published', source: 'immune_service', payload: { event_id: id, message: 'on fire' } });
    expect(stream.text).toContain(`id: ${id}`);
    expect(stream.text).not.toContain('not critical');
    await readUntil(/: heartbeat \d+/);
    const metric = await t.registry.getSingleMetric('guard_immune_sse_clients')!.get();
    expect(metric.values[0]!.value).toBe(1);
    controller.abort();
    await expect.poll(() => t.handler.sseClients, { timeout: 5_000 }).toBe(0);
    expect(t.service.listenerCount('immune.event_published')).toBe(0);
    expect((await t.registry.getSingleMetric('guard_immune_sse_clients')!.get()).values[0]!.value).toBe(0);
  });

  it('replays missed events to a client reconnecting with Last-Event-ID, then streams live ones', async () => {
    await using t = await serve();
    const first = (await t.post({ ...valid, message: 'seen before the drop' })).body.id;
    const missed1 = (await t.post({ ...valid, message: 'missed one' })).body.id;
    const missed2 = (await t.post({ ...valid, severity: 'CRITICAL', message: 'missed two' })).body.id;
    const stream = await openStream(`http://127.0.0.1:${t.port}/api/immune/stream`, { 'last-event-id': first });
    const { controller, readUntil } = stream;
    await readUntil(/missed two/);
    const live = (await t.post({ ...valid, message: 'live after replay' })).body.id;
    await readUntil(/live after replay/);
    const ids = [...stream.text.matchAll(/^id: (.+)$/gm)].map((m) => m[1]);
    expect(ids).toEqual([missed1, missed2, live]);
    controller.abort();
    await expect.poll(() => t.handler.sseClients, { timeout: 5_000 }).toBe(0);
  });

  it('refuses SSE clients beyond maxSseClients and ends streams on close', async () => {
    await using t = await serve({ maxSseClients: 1 });
    const first = await fetch(`http://127.0.0.1:${t.port}/api/immune/stream`);
    expect(first.status).toBe(200);
    const second = await fetch(`http://127.0.0.1:${t.port}/api/immune/stream`);
    expect(second.status).toBe(503);
    await second.text();
    const bad = await fetch(`http://127.0.0.1:${t.port}/api/immune/stream?severity=nope`);
    expect(bad.status).toBe(400);
    await t.handler.close();
    await first.text(); // the stream ends
    expect(t.handler.sseClients).toBe(0);
  });

  it('requires the write token on POST /event when one is set (401 + WWW-Authenticate), and only there', async () => {
    await using t = await serve({ writeToken: 's3cret-token' });
    const body = JSON.stringify(valid);
    for (const headers of [{} as Record<string, string>, { authorization: 'Bearer wrong' }, { authorization: 'Basic czNjcmV0' }, { authorization: 'Bearer s3cret-token-and-more' }]) {
      const r = await t.call('POST', '/api/immune/event', body, headers);
      expect(r.status, JSON.stringify(headers)).toBe(401);
      expect(r.headers['www-authenticate']).toMatch(/^Bearer/);
      expect(r.headers['content-type']).toMatch(/problem\+json/);
      expect(r.body.field).toBe('authorization');
    }
    expect((await t.service.getRecentEvents()).length).toBe(0);
    const ok = await t.call('POST', '/api/immune/event', body, { authorization: 'Bearer s3cret-token' });
    expect(ok.status).toBe(201);
    expect((await t.call('GET', '/api/immune/health')).status).toBe(200); // reads stay open
  });

  it('reads the write token and the stream cap from the env when no option is given', async () => {
    await using t = await serve({ env: { GUARD_IMMUNE_WRITE_TOKEN: 'from-env', GUARD_IMMUNE_SSE_MAX_CLIENTS: '0' } });
    expect((await t.post(valid)).status).toBe(401);
    expect((await t.call('POST', '/api/immune/event', JSON.stringify(valid), { authorization: 'Bearer from-env' })).status).toBe(201);
    const stream = await t.call('GET', '/api/immune/stream');
    expect(stream.status).toBe(503);
    expect(stream.headers['retry-after']).toBe('5');
  });

  it('disconnects an SSE client that stopped reading instead of buffering for it', async () => {
    await using t = await serve({ maxSseBufferedBytes: 64 * 1024 }, { store: new MemoryEventStore({ capacity: 100 }) });
    const { Socket } = await import('node:net');
    const socket = new Socket();
    await new Promise<void>((resolve) => socket.connect(t.port, '127.0.0.1', resolve));
    socket.write('GET /api/immune/stream HTTP/1.1\r\nHost: x\r\n\r\n');
    await new Promise<void>((resolve) => socket.once('data', () => resolve()));
    socket.pause(); // stops reading: the kernel buffers fill, then the server's backlog grows
    const closed = new Promise<void>((resolve) => socket.once('close', () => resolve()));
    socket.resume = () => socket; // keep it paused even when a listener is added
    const meta = { blob: 'x'.repeat(8_000) };
    let published = 0;
    while (t.handler.sseClients > 0 && published < 20_000) {
      await Promise.all(Array.from({ length: 50 }, () => t.service.publishEvent({ severity: 'INFO', type: 'ERROR_SPIKE', message: 'm', meta })));
      published += 50;
      await new Promise<void>((resolve) => setImmediate(resolve));
    }
    expect(t.handler.sseClients).toBe(0); // dropped long before 20,000 events (~160 MB) piled up
    socket.destroy();
    await closed;
    const metrics = await t.registry.getSingleMetricAsString('guard_immune_http_refused_total');
    expect(metrics).toMatch(/reason="sse_slow_client"} 1/);
  });

  it('streams immune.critical_event with ?events=critical (the seed pager path), alone or with published', async () => {
    await using t = await serve();
    const critical = await openStream(`http://127.0.0.1:${t.port}/api/immune/stream?events=critical`);
    const both = await openStream(`http://127.0.0.1:${t.port}/api/immune/stream?events=published,critical`);
    await t.post({ ...valid, severity: 'INFO', message: 'calm' });
    const id = (await t.post({ ...valid, severity: 'CRITICAL', message: 'page me' })).body.id as string;
    await critical.readUntil(/event: immune\.critical_event/);
    await both.readUntil(/event: immune\.critical_event/);
    expect(critical.text).toContain(`id: ${id}`);
    expect(critical.text).not.toContain('calm');
    expect(critical.text).not.toContain('immune.event_published');
    expect(both.text.match(/event: immune\.event_published/g)).toHaveLength(2);
    expect(JSON.parse(/event: immune\.critical_event\ndata: (.*)/.exec(critical.text)![1]!).payload).toMatchObject({ event_id: id, critical_at: expect.any(String) });
    critical.controller.abort();
    both.controller.abort();
    expect((await t.call('GET', '/api/immune/stream?events=loud')).body.field).toBe('events');
  });

  it('answers 500 problem+json to a store failure that is not transient, and logs every 5xx with its cause', async () => {
    const tmp = tempDir();
    const store = await createSqliteStore({ path: join(tmp.dir, 'broken.db') });
    store.database.exec(`DROP TABLE "${store.tableName}_rollup"`); // a database that fails for real
    const logged: Array<{ level: string; obj: Record<string, unknown> }> = [];
    const capture = (level: string) => (obj: object) => void logged.push({ level, obj: obj as Record<string, unknown> });
    const logger = { debug: capture('debug'), info: capture('info'), warn: capture('warn'), error: capture('error') };
    try {
      await using t = await serve({ logger }, { store });
      const publish = await t.post(valid);
      expect(publish.status).toBe(500);
      expect(publish.body).toMatchObject({ code: 'STORE_ERROR', title: 'Event store error' });
      const health = await t.call('GET', '/api/immune/health');
      expect(health.status).toBe(500);
      expect(logged.map((l) => [l.level, l.obj.status, l.obj.path])).toEqual([
        ['error', 500, '/api/immune/event'],
        ['error', 500, '/api/immune/health'],
      ]);
      expect(((logged[0]!.obj.err as Error).cause as Error).message).toMatch(/no such table/);
      expect(await t.registry.getSingleMetricAsString('guard_immune_http_refused_total')).toMatch(/reason="store_error"} 2/);
    } finally {
      tmp.cleanup();
    }
  });

  it('validates its options', () => {
    const service = new ImmuneService({ registry: freshRegistry() });
    expect(() => createImmuneHandler(service, { writeToken: ' ' })).toThrow(/writeToken/);
    expect(() => createImmuneHandler(service, { basePath: 'api' })).toThrow(/basePath/);
    expect(() => createImmuneHandler(service, { limitBytes: 0 })).toThrow(/limitBytes/);
    expect(() => createImmuneHandler(service, { heartbeatMs: 1 })).toThrow(/heartbeatMs/);
    void service.close();
  });
});
