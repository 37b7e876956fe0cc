import type { IncomingMessage, ServerResponse } from 'node:http';
import type { HttpHandler, MetricsOptions, Problem } from '@guard/core';
import { assertNumberOption, gauge, GuardError, isGuardError, metricName, problemFromError, readJsonBody, resolveRegistry, sendJson, sendProblem } from '@guard/core';
import type { ImmuneEvent, ImmuneEventType, ImmuneSeverity } from './event.js';
import { IMMUNE_EVENT_TYPES, IMMUNE_SEVERITIES, parseWireEventInput, toWireEvent } from './event.js';
import type { ImmuneService, ImmuneStreamEnvelope } from './immune-service.js';
import { toStreamEnvelope } from './immune-service.js';

/**
 * Options for {@link createImmuneHandler}.
 *
 * @example
 * createImmuneHandler(service, { basePath: '/immune', limitBytes: 16 * 1024, heartbeatMs: 10_000 });
 */
export interface ImmuneHandlerOptions {
  /** Where the routes live. Default `/api/immune`. */
  readonly basePath?: string;
  /** Largest accepted `POST /event` body. Default 64 KiB. */
  readonly limitBytes?: number;
  /** Interval of SSE heartbeat comments. Default 15 s. */
  readonly heartbeatMs?: number;
  /** Most concurrent SSE clients; more get 503. Default 100. */
  readonly maxSseClients?: number;
  /** An SSE client whose unsent backlog exceeds this is disconnected (it stopped reading). Default 1 MiB. */
  readonly maxSseBufferedBytes?: number;
  /** prom-client registry (default global) and prefix (default `guard_immune`) of `guard_immune_sse_clients`. */
  readonly registry?: MetricsOptions['registry'];
  readonly metricsPrefix?: string;
}

/**
 * The handler plus `close()`, which ends every open SSE stream.
 *
 * @example
 * const handler = createImmuneHandler(service);
 * server.on('close', () => void handler.close());
 */
export interface ImmuneHandler extends HttpHandler, AsyncDisposable {
  close(): Promise<void>;
  /** Open SSE streams. */
  readonly sseClients: number;
}

const UUID_V7 = /^[0-9a-f]{8}-[0-9a-f]{4}-7[0-9a-f]{3}-[0-9a-f]{4}-[0-9a-f]{12}$/;
const DURATION = /^(\d+(?:\.\d+)?)(ms|s|m|min|h|d)?$/i;
const UNIT_MS: Record<string, number> = { ms: 1, s: 1_000, m: 60_000, min: 60_000, h: 3_600_000, d: 86_400_000 };

function bad(field: string, detail: string): GuardError {
  return new GuardError('INVALID_INPUT', detail, { details: { status: 400, title: 'Invalid query parameter', field } });
}

function parseDuration(field: string, raw: string): number {
  const match = DURATION.exec(raw.trim());
  if (!match) throw bad(field, `${field} must be a duration like 900000, 30s, 15m, 1h or 7d, got ${JSON.stringify(raw.slice(0, 64))}`);
  const ms = Number(match[1]) * UNIT_MS[(match[2] ?? 'ms').toLowerCase()]!;
  if (!(ms > 0)) throw bad(field, `${field} must be greater than 0`);
  return ms;
}

function parseSince(raw: string): number {
  const value = raw.trim();
  const ms = /^\d{1,15}$/.test(value) ? Number(value) : /^\d{4}-\d{2}-\d{2}/.test(value) ? Date.parse(value) : NaN;
  if (!Number.isFinite(ms)) throw bad('since', `since must be an ISO 8601 timestamp or epoch milliseconds, got ${JSON.stringify(value.slice(0, 64))}`);
  return ms;
}

function parseEnum<T extends string>(field: string, raw: string | null, allowed: readonly T[]): T | undefined {
  if (raw === null) return undefined;
  if (!(allowed as readonly string[]).includes(raw)) throw bad(field, `${field} must be one of ${allowed.join(', ')}`);
  return raw as T;
}

function statusOf(error: unknown): Problem {
  if (isGuardError(error, 'QUEUE_FULL')) return { status: 503, title: 'Overloaded', detail: error.message, code: error.code };
  if (isGuardError(error, 'CLOSED')) return { status: 503, title: 'Unavailable', detail: 'the immune service is shutting down', code: error.code };
  if (isGuardError(error, 'INVALID_INPUT') && typeof error.details.status !== 'number') {
    return { ...error.details, status: 400, title: 'Invalid input', detail: error.message, code: error.code };
  }
  return problemFromError(error);
}

function wireSummary(summary: Awaited<ReturnType<ImmuneService['healthSummary']>>) {
  return {
    status: summary.status,
    window_ms: summary.windowMs,
    since: new Date(summary.since).toISOString(),
    total: summary.total,
    by_severity: summary.bySeverity,
    by_type: summary.byType,
    latest_critical: summary.latestCritical ? toWireEvent(summary.latestCritical) : null,
    generated_at: new Date(summary.generatedAt).toISOString(),
  };
}

/**
 * The immune REST API and SSE stream as one connect-style handler; requests outside `basePath` go to `next()`
 * (404 without one). Routes: `POST /event` (201 `{ id }`), `GET /health?window=15m`, `GET /events?since&severity&type&limit`,
 * `GET /stream` (server-sent events with heartbeats). Bad input gets problem+json naming the field.
 *
 * @example
 * const handler = createImmuneHandler(service);
 * http.createServer((req, res) => handler(req, res, () => { res.statusCode = 404; res.end(); })).listen(3000);
 * // Express: app.use(handler)
 */
export function createImmuneHandler(service: ImmuneService, options: ImmuneHandlerOptions = {}): ImmuneHandler {
  const basePath = (options.basePath ?? '/api/immune').replace(/\/+$/, '');
  if (basePath !== '' && !basePath.startsWith('/')) {
    throw new GuardError('INVALID_OPTION', `basePath must start with /, got ${JSON.stringify(basePath)}`, { details: { field: 'basePath' } });
  }
  const limitBytes = options.limitBytes ?? 64 * 1024;
  const heartbeatMs = options.heartbeatMs ?? 15_000;
  const maxSseClients = options.maxSseClients ?? 100;
  const maxSseBufferedBytes = options.maxSseBufferedBytes ?? 1024 * 1024;
  assertNumberOption('limitBytes', limitBytes, { min: 1, integer: true });
  assertNumberOption('heartbeatMs', heartbeatMs, { min: 10, max: 2 ** 31 - 1 });
  assertNumberOption('maxSseClients', maxSseClients, { min: 0, integer: true });
  assertNumberOption('maxSseBufferedBytes', maxSseBufferedBytes, { min: 1_024, integer: true });
  const clientsGauge = gauge(resolveRegistry(options.registry), {
    name: metricName(options.metricsPrefix ?? 'guard_immune', 'sse_clients'),
    help: 'Open server-sent-event streams',
  });
  const clients = new Set<() => void>();
  let closed = false;

  const routes: Record<string, Partial<Record<string, (req: IncomingMessage, res: ServerResponse, url: URL) => void | Promise<void>>>> = {
    '/event': { POST: postEvent },
    '/health': { GET: getHealth },
    '/events': { GET: getEvents },
    '/stream': { GET: stream },
  };

  async function postEvent(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const body = await readJsonBody(req, { limitBytes });
    const input = parseWireEventInput(body);
    const id = await service.publishEvent(input);
    sendJson(res, 201, { id });
  }

  async function getHealth(_req: IncomingMessage, res: ServerResponse, url: URL): Promise<void> {
    const raw = url.searchParams.get('window') ?? url.searchParams.get('window_ms');
    const field = url.searchParams.has('window') ? 'window' : 'window_ms';
    const windowMs = raw === null ? undefined : parseDuration(field, raw);
    if (windowMs !== undefined && windowMs > service.maxWindowMs) throw bad(field, `${field} must be at most ${service.maxWindowMs} ms`);
    sendJson(res, 200, wireSummary(await service.healthSummary(windowMs === undefined ? {} : { windowMs })));
  }

  async function getEvents(_req: IncomingMessage, res: ServerResponse, url: URL): Promise<void> {
    const q = url.searchParams;
    const since = q.get('since') === null ? undefined : parseSince(q.get('since')!);
    const windowRaw = q.get('window');
    const windowMs = windowRaw === null ? undefined : parseDuration('window', windowRaw);
    if (windowMs !== undefined && windowMs > service.maxWindowMs) throw bad('window', `window must be at most ${service.maxWindowMs} ms`);
    const severity = parseEnum<ImmuneSeverity>('severity', q.get('severity'), IMMUNE_SEVERITIES);
    const type = parseEnum<ImmuneEventType>('type', q.get('type'), IMMUNE_EVENT_TYPES);
    const limitRaw = q.get('limit');
    let limit = service.defaultLimit;
    if (limitRaw !== null) {
      if (!/^\d{1,9}$/.test(limitRaw.trim()) || Number(limitRaw) < 1) throw bad('limit', 'limit must be an integer >= 1');
      limit = Math.min(Number(limitRaw), service.maxLimit);
    }
    const events: ImmuneEvent[] = await service.getRecentEvents({
      ...(since === undefined ? {} : { since }),
      ...(windowMs === undefined ? {} : { windowMs }),
      ...(severity === undefined ? {} : { severity }),
      ...(type === undefined ? {} : { type }),
      limit,
    });
    sendJson(res, 200, { events: events.map(toWireEvent), count: events.length, limit });
  }

  function stream(req: IncomingMessage, res: ServerResponse, url: URL): void {
    const severity = parseEnum<ImmuneSeverity>('severity', url.searchParams.get('severity'), IMMUNE_SEVERITIES);
    const type = parseEnum<ImmuneEventType>('type', url.searchParams.get('type'), IMMUNE_EVENT_TYPES);
    if (closed || service.closed) throw new GuardError('CLOSED', 'the immune handler is closed');
    if (clients.size >= maxSseClients) {
      sendProblem(res, { status: 503, title: 'Too many stream clients', detail: `at most ${maxSseClients} streams are served` }, { 'retry-after': '5' });
      return;
    }
    res.writeHead(200, {
      'content-type': 'text/event-stream; charset=utf-8',
      'cache-control': 'no-cache, no-transform',
      connection: 'keep-alive',
      'x-accel-buffering': 'no',
    });
    res.write('retry: 3000\n: connected\n\n');
    const send = (envelope: ImmuneStreamEnvelope) => {
      if (done) return;
      if (res.writableLength > maxSseBufferedBytes) {
        end(); // a client that stopped reading is dropped, never buffered without bound
        return;
      }
      res.write(`id: ${envelope.payload.event_id}\nevent: ${envelope.type}\ndata: ${JSON.stringify(envelope)}\n\n`);
    };
    // A reconnecting EventSource sends Last-Event-ID: replay what it missed from the store, holding live events
    // back until the replay is written (then skipping any the replay already sent).
    const lastId = String(req.headers['last-event-id'] ?? '').trim().toLowerCase();
    let held: ImmuneStreamEnvelope[] | undefined = UUID_V7.test(lastId) ? [] : undefined;
    const onEvent = (envelope: ImmuneStreamEnvelope) => {
      if (severity !== undefined && envelope.payload.severity !== severity) return;
      if (type !== undefined && envelope.payload.type !== type) return;
      if (held) held.push(envelope);
      else send(envelope);
    };
    if (held) {
      const since = parseInt(lastId.slice(0, 8) + lastId.slice(9, 13), 16);
      service
        .getRecentEvents({ since, limit: service.maxLimit, ...(severity ? { severity } : {}), ...(type ? { type } : {}) })
        .then(
          (events) => {
            const sent = new Set<string>();
            for (const event of events.reverse()) {
              if (event.id <= lastId) continue;
              sent.add(event.id);
              send(toStreamEnvelope(event, 'immune.event_published', service.target));
            }
            return sent;
          },
          () => new Set<string>(), // replay is best effort; the live stream goes on
        )
        .then((sent) => {
          const live = held ?? [];
          held = undefined;
          for (const envelope of live) if (!sent.has(envelope.payload.event_id)) send(envelope);
        });
    }
    const heartbeat = setInterval(() => res.write(`: heartbeat ${Date.now()}\n\n`), heartbeatMs);
    heartbeat.unref();
    let done = false;
    const cleanup = () => {
      if (done) return;
      done = true;
      clearInterval(heartbeat);
      service.off('immune.event_published', onEvent);
      clients.delete(end);
      clientsGauge.dec();
    };
    function end() {
      cleanup();
      res.end();
      res.socket?.destroySoon?.();
    }
    service.on('immune.event_published', onEvent);
    clients.add(end);
    clientsGauge.inc();
    req.on('close', cleanup);
    res.on('close', cleanup);
    res.on('error', cleanup);
  }

  const handler = ((req: IncomingMessage, res: ServerResponse, next?: (error?: unknown) => void) => {
    let url: URL;
    try {
      url = new URL(req.url ?? '/', 'http://localhost');
    } catch {
      if (next) next();
      else sendProblem(res, { status: 400, title: 'Bad request', detail: 'malformed request target' });
      return;
    }
    const path = url.pathname.replace(/\/+$/, '');
    const route = path.startsWith(`${basePath}/`) ? routes[path.slice(basePath.length)] : undefined;
    if (!route || !Object.prototype.hasOwnProperty.call(routes, path.slice(basePath.length))) {
      if (next) next();
      else sendProblem(res, { status: 404, title: 'Not found', detail: `no route for ${url.pathname}` });
      return;
    }
    const method = (req.method ?? 'GET').toUpperCase();
    const run = route[method];
    if (!run) {
      req.resume();
      sendProblem(res, { status: 405, title: 'Method not allowed', detail: `${method} is not allowed on ${url.pathname}` }, { allow: Object.keys(route).join(', ') });
      return;
    }
    const fail = (error: unknown) => {
      if (res.headersSent) {
        res.destroy();
        return;
      }
      const problem = statusOf(error);
      // 413/415 leave the request body unread: close the connection rather than let a client reuse a dirty socket.
      const headers: Record<string, string> = problem.status === 503 ? { 'retry-after': '1' } : problem.status === 413 || problem.status === 415 ? { connection: 'close' } : {};
      sendProblem(res, problem, headers);
    };
    try {
      const result = run(req, res, url);
      if (result) result.catch(fail);
    } catch (error) {
      fail(error);
    }
  }) as ImmuneHandler;

  Object.defineProperty(handler, 'sseClients', { get: () => clients.size });
  handler.close = async () => {
    closed = true;
    for (const end of [...clients]) end();
  };
  handler[Symbol.asyncDispose] = handler.close;
  return handler;
}
