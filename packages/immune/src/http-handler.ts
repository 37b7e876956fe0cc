import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Env, HttpHandler, Logger, MetricsOptions, Problem } from '@guard/core';
import {
  assertNumberOption,
  checkAdminToken,
  envReader,
  errorMessage,
  GuardError,
  isGuardError,
  parseDuration,
  problemFromError,
  readJsonBody,
  scrapeGauge,
  sendJson,
  sendProblem,
  silentLogger,
} from '@guard/core';
import type { ImmuneEvent, ImmuneEventType, ImmuneSeverity } from './event.js';
import { IMMUNE_EVENT_TYPES, IMMUNE_SEVERITIES, parseWireEventInput, toWireEvent } from './event.js';
import type { ImmuneService, ImmuneStreamEnvelope, ImmuneStreamEventName } from './immune-service.js';
import { toStreamEnvelope } from './immune-service.js';
import { claimRequest, methodNotAllowed } from './http-routing.js';
import { IMMUNE_METRICS_PREFIX, immuneCounter } from './metrics.js';

/**
 * Options for {@link createImmuneHandler}.
 *
 * @example
 * createImmuneHandler(service, { basePath: '/immune', limitBytes: 16 * 1024, heartbeatMs: 10_000 });
 */
export interface ImmuneHandlerOptions extends MetricsOptions {
  /** Where the routes live. Default `/api/immune`. */
  readonly basePath?: string;
  /** Largest accepted `POST /event` body. Default 64 KiB. */
  readonly limitBytes?: number;
  /** Interval of SSE heartbeat comments. Default 15 s. */
  readonly heartbeatMs?: number;
  /** Most concurrent SSE clients; more get 503 + `Retry-After`. Default `GUARD_IMMUNE_SSE_MAX_CLIENTS`, else 100. */
  readonly maxSseClients?: number;
  /** An SSE client whose unsent backlog exceeds this is disconnected (it stopped reading). Default 1 MiB. */
  readonly maxSseBufferedBytes?: number;
  /**
   * Bearer token required by `POST /event` (compared in constant time); missing or wrong: 401 problem+json with
   * `WWW-Authenticate: Bearer`. Default `GUARD_IMMUNE_WRITE_TOKEN`; unset: writes are open. Reads stay open.
   */
  readonly writeToken?: string;
  /** `Retry-After` (seconds) of the 503 answers while the store is unavailable or the stream is full. Default 5. */
  readonly retryAfterSeconds?: number;
  /** Where 5xx answers are logged with their cause (503: warn, 500: error). Default silent. */
  readonly logger?: Logger;
  /** Environment read for the defaults above. Default `process.env`. */
  readonly env?: Env;
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

function bad(field: string, detail: string): GuardError {
  return new GuardError('INVALID_INPUT', detail, { details: { status: 400, title: 'Invalid query parameter', field } });
}

/** A window query parameter (`900000`, `30s`, `15m`, `1h`, `7d`), at most the service's `maxWindowMs`. */
function parseWindow(field: string, raw: string, maxWindowMs: number): number {
  let ms: number;
  try {
    if (raw.length > 64) throw new Error(`${field} must be a duration like 900000, 30s, 15m, 1h or 7d`);
    ms = parseDuration(raw, { field });
  } catch (error) {
    throw bad(field, errorMessage(error));
  }
  if (!(ms > 0)) throw bad(field, `${field} must be greater than 0`);
  if (ms > maxWindowMs) throw bad(field, `${field} must be at most ${maxWindowMs} ms`);
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
  if (isGuardError(error, 'STORE_UNAVAILABLE')) return { status: 503, title: 'Event store unavailable', detail: 'the event store cannot be reached; retry later', code: error.code };
  if (isGuardError(error, 'STORE_ERROR')) return { status: 500, title: 'Event store error', detail: 'the event store failed', code: error.code };
  if (isGuardError(error, 'CLOSED')) return { status: 503, title: 'Unavailable', detail: 'the immune service is shutting down', code: error.code };
  if (isGuardError(error, 'INVALID_INPUT') && typeof error.details.status !== 'number') {
    return { ...error.details, status: 400, title: 'Invalid input', detail: error.message, code: error.code };
  }
  return problemFromError(error);
}

const STREAM_NAMES: Record<string, ImmuneStreamEventName> = {
  published: 'immune.event_published',
  'immune.event_published': 'immune.event_published',
  critical: 'immune.critical_event',
  'immune.critical_event': 'immune.critical_event',
};

/** `?events=critical` / `published,critical` / full envelope names; default: every event as `immune.event_published`. */
function parseStreamNames(raw: string | null): ImmuneStreamEventName[] {
  if (raw === null || raw.trim() === '') return ['immune.event_published'];
  const names = new Set<ImmuneStreamEventName>();
  for (const part of raw.split(',')) {
    const name = STREAM_NAMES[part.trim().toLowerCase()];
    if (!name) throw bad('events', 'events must be a comma-separated list of published, critical, immune.event_published or immune.critical_event');
    names.add(name);
  }
  return [...names];
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
  const env = envReader(options.env ?? process.env);
  const limitBytes = options.limitBytes ?? 64 * 1024;
  const heartbeatMs = options.heartbeatMs ?? 15_000;
  const maxSseClients = options.maxSseClients ?? env.number('GUARD_IMMUNE_SSE_MAX_CLIENTS', 100, { min: 0, integer: true });
  const maxSseBufferedBytes = options.maxSseBufferedBytes ?? 1024 * 1024;
  const writeToken = options.writeToken ?? env.string('GUARD_IMMUNE_WRITE_TOKEN');
  const retryAfterSeconds = options.retryAfterSeconds ?? 5;
  const logger = options.logger ?? silentLogger;
  if (writeToken !== undefined && (typeof writeToken !== 'string' || writeToken.trim() === '')) {
    throw new GuardError('INVALID_OPTION', 'writeToken must be a non-empty string', { details: { field: 'writeToken' } });
  }
  assertNumberOption('retryAfterSeconds', retryAfterSeconds, { min: 1, max: 86_400, integer: true });
  assertNumberOption('limitBytes', limitBytes, { min: 1, integer: true });
  assertNumberOption('heartbeatMs', heartbeatMs, { min: 10, max: 2 ** 31 - 1 });
  assertNumberOption('maxSseClients', maxSseClients, { min: 0, integer: true });
  assertNumberOption('maxSseBufferedBytes', maxSseBufferedBytes, { min: 1_024, integer: true });
  const closing = new AbortController();
  scrapeGauge(options, { name: 'sse_clients', help: 'Open server-sent-event streams', defaultPrefix: IMMUNE_METRICS_PREFIX, signal: closing.signal }, () => clients.size);
  const refused = immuneCounter(options, {
    name: 'http_refused_total',
    help: 'Requests answered 401 or 5xx, by reason (unauthorized, store_unavailable, store_error, overloaded, closed, sse_full, sse_slow_client, internal)',
    labelNames: ['reason'],
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
    if (writeToken !== undefined) {
      const denied = checkAdminToken(req, writeToken);
      if (denied) {
        refused?.inc({ reason: 'unauthorized' });
        req.resume();
        // The body is left unread: close rather than let a keep-alive client reuse a dirty socket.
        sendProblem(res, { ...denied, status: 401, title: 'Unauthorized', field: 'authorization' }, { 'www-authenticate': 'Bearer realm="guard-immune"', connection: 'close' });
        return;
      }
    }
    const body = await readJsonBody(req, { limitBytes });
    const input = parseWireEventInput(body);
    const id = await service.publishEvent(input);
    sendJson(res, 201, { id });
  }

  async function getHealth(_req: IncomingMessage, res: ServerResponse, url: URL): Promise<void> {
    const raw = url.searchParams.get('window') ?? url.searchParams.get('window_ms');
    const field = url.searchParams.has('window') ? 'window' : 'window_ms';
    const windowMs = raw === null ? undefined : parseWindow(field, raw, service.maxWindowMs);
    sendJson(res, 200, wireSummary(await service.healthSummary(windowMs === undefined ? {} : { windowMs })));
  }

  async function getEvents(_req: IncomingMessage, res: ServerResponse, url: URL): Promise<void> {
    const q = url.searchParams;
    const since = q.get('since') === null ? undefined : parseSince(q.get('since')!);
    const windowRaw = q.get('window');
    const windowMs = windowRaw === null ? undefined : parseWindow('window', windowRaw, service.maxWindowMs);
    const severity = parseEnum<ImmuneSeverity>('severity', q.get('severity'), IMMUNE_SEVERITIES);
    const type = parseEnum<ImmuneEventType>('type', q.get('type'), IMMUNE_EVENT_TYPES);
    const limitRaw = q.get('limit');
    let limit = service.defaultLimit;
    if (limitRaw !== null) {
      if (!/^\d{1,9}$/.test(limitRaw.trim()) || Number(limitRaw) < 1) throw bad('limit', 'limit must be an integer >= 1');
      // Said, not silently capped: a client asking for more than it can get learns it at once.
      if (Number(limitRaw) > service.maxLimit) throw bad('limit', `limit must be at most ${service.maxLimit} (the service's maxLimit)`);
      limit = Number(limitRaw);
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
    const names = parseStreamNames(url.searchParams.get('events'));
    if (closed || service.closed) throw new GuardError('CLOSED', 'the immune handler is closed');
    if (clients.size >= maxSseClients) {
      refused?.inc({ reason: 'sse_full' });
      logger.warn({ status: 503, clients: clients.size, maxSseClients }, 'immune SSE stream refused: too many clients');
      sendProblem(res, { status: 503, title: 'Too many stream clients', detail: `at most ${maxSseClients} streams are served`, code: 'SSE_FULL' }, { 'retry-after': String(retryAfterSeconds) });
      return;
    }
    res.writeHead(200, {
      'content-type': 'text/event-stream; charset=utf-8',
      'cache-control': 'no-cache, no-transform',
      connection: 'keep-alive',
      'x-accel-buffering': 'no',
    });
    res.write('retry: 3000\n: connected\n\n');
    let done = false;
    // A client that stopped reading is disconnected, never buffered without bound. destroy(), not end(): ending
    // would wait (forever) for the backlog to drain.
    const writeOrDrop = (chunk: string) => {
      if (done) return;
      if (res.writableLength + chunk.length > maxSseBufferedBytes) {
        refused?.inc({ reason: 'sse_slow_client' });
        logger.warn({ backlogBytes: res.writableLength, maxSseBufferedBytes }, 'immune SSE client dropped: it stopped reading');
        cleanup();
        res.destroy();
        return;
      }
      res.write(chunk);
    };
    const send = (envelope: ImmuneStreamEnvelope) => writeOrDrop(`id: ${envelope.payload.event_id}\nevent: ${envelope.type}\ndata: ${JSON.stringify(envelope)}\n\n`);
    const keyOf = (envelope: ImmuneStreamEnvelope) => `${envelope.type}:${envelope.payload.event_id}`;
    // A reconnecting EventSource sends Last-Event-ID: replay what it missed from the store, holding live events
    // back until the replay is written (then skipping any the replay already sent).
    const lastId = String(req.headers['last-event-id'] ?? '').trim().toLowerCase();
    let held: ImmuneStreamEnvelope[] | undefined = UUID_V7.test(lastId) ? [] : undefined;
    const onEnvelope = (envelope: ImmuneStreamEnvelope) => {
      if (severity !== undefined && envelope.payload.severity !== severity) return;
      if (type !== undefined && envelope.payload.type !== type) return;
      if (held) held.push(envelope);
      else send(envelope);
    };
    if (held) {
      const since = parseInt(lastId.slice(0, 8) + lastId.slice(9, 13), 16);
      const onlyCritical = !names.includes('immune.event_published');
      const replaySeverity = onlyCritical ? 'CRITICAL' : severity;
      service
        .getRecentEvents({ since, limit: service.maxLimit, ...(replaySeverity ? { severity: replaySeverity } : {}), ...(type ? { type } : {}) })
        .then(
          (events) => {
            const sent = new Set<string>();
            for (const event of events.reverse()) {
              if (event.id <= lastId) continue;
              if (severity !== undefined && event.severity !== severity) continue;
              for (const name of names) {
                if (name === 'immune.critical_event' && event.severity !== 'CRITICAL') continue;
                const envelope = toStreamEnvelope(event, name, service.target);
                sent.add(keyOf(envelope));
                send(envelope);
              }
            }
            return sent;
          },
          () => new Set<string>(), // replay is best effort; the live stream goes on
        )
        .then((sent) => {
          const live = held ?? [];
          held = undefined;
          for (const envelope of live) if (!sent.has(keyOf(envelope))) send(envelope);
        })
        .catch((error: unknown) => {
          logger.warn({ err: error }, 'immune SSE replay failed; stream ended');
          end();
        });
    }
    const heartbeat = setInterval(() => writeOrDrop(`: heartbeat ${Date.now()}\n\n`), heartbeatMs);
    heartbeat.unref();
    const cleanup = () => {
      if (done) return;
      done = true;
      clearInterval(heartbeat);
      for (const name of names) service.off(name, onEnvelope);
      clients.delete(end);
    };
    function end() {
      cleanup();
      // A client with an unsent backlog may never read it: do not wait for it.
      if (res.writableLength > 0) {
        res.destroy();
        return;
      }
      res.end();
      res.socket?.destroySoon?.();
    }
    for (const name of names) service.on(name, onEnvelope);
    clients.add(end);
    req.on('close', cleanup);
    res.on('close', cleanup);
    res.on('error', cleanup);
  }

  const handler = ((req: IncomingMessage, res: ServerResponse, next?: (error?: unknown) => void) => {
    const routeOf = (path: string) => (path.startsWith(`${basePath}/`) && Object.hasOwn(routes, path.slice(basePath.length)) ? routes[path.slice(basePath.length)] : undefined);
    const url = claimRequest(req, res, next, (path) => routeOf(path) !== undefined);
    if (!url) return;
    const route = routeOf(url.pathname.replace(/\/+$/, ''))!;
    const method = (req.method ?? 'GET').toUpperCase();
    const run = route[method];
    if (!run) {
      methodNotAllowed(req, res, url, Object.keys(route));
      return;
    }
    const fail = (error: unknown) => {
      if (res.headersSent) {
        res.destroy();
        return;
      }
      const problem = statusOf(error);
      if (problem.status >= 500) {
        const reason = String(problem.code ?? 'internal').toLowerCase().replace(/^queue_full$/, 'overloaded');
        refused?.inc({ reason });
        const log = problem.status === 503 ? logger.warn : logger.error;
        log.call(logger, { err: error, status: problem.status, method, path: url.pathname }, `immune ${method} ${url.pathname} answered ${problem.status}`);
      }
      // 413/415 leave the request body unread: close the connection rather than let a client reuse a dirty socket.
      const retryAfter = isGuardError(error, 'STORE_UNAVAILABLE') ? String(retryAfterSeconds) : '1';
      const headers: Record<string, string> = problem.status === 503 ? { 'retry-after': retryAfter } : problem.status === 413 || problem.status === 415 ? { connection: 'close' } : {};
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
    closing.abort();
    for (const end of [...clients]) end();
  };
  handler[Symbol.asyncDispose] = handler.close;
  return handler;
}
