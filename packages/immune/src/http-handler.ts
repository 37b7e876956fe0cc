import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Env, HttpHandler, Logger, MetricsOptions, Problem } from '@guard/core';
import { assertNumberOption, checkAdminToken, envReader, GuardError, isGuardError, problemFromError, readJsonBody, sendJson, sendProblem, silentLogger } from '@guard/core';
import type { ImmuneEvent, ImmuneEventType, ImmuneSeverity } from './event.js';
import { IMMUNE_EVENT_TYPES, IMMUNE_SEVERITIES, parseWireEventInput, toWireEvent } from './event.js';
import type { ImmuneService } from './immune-service.js';
import { claimRequest, methodNotAllowed } from './http-routing.js';
import { immuneCounter } from './metrics.js';
import { badParam, parseEnum, parseSince, parseWindow } from './query-params.js';
import { createSseStreams } from './sse-stream.js';

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
  const refused = immuneCounter(options, {
    name: 'http_refused_total',
    help: 'Requests answered 401 or 5xx, by reason (unauthorized, store_unavailable, store_error, overloaded, closed, sse_full, sse_slow_client, internal)',
    labelNames: ['reason'],
  });
  const streams = createSseStreams(service, { heartbeatMs, maxSseClients, maxSseBufferedBytes, retryAfterSeconds, logger, refused, metrics: options });

  const routes: Record<string, Partial<Record<string, (req: IncomingMessage, res: ServerResponse, url: URL) => void | Promise<void>>>> = {
    '/event': { POST: postEvent },
    '/health': { GET: getHealth },
    '/events': { GET: getEvents },
    '/stream': { GET: streams.serve },
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
      if (!/^\d{1,9}$/.test(limitRaw.trim()) || Number(limitRaw) < 1) throw badParam('limit', 'limit must be an integer >= 1');
      // Said, not silently capped: a client asking for more than it can get learns it at once.
      if (Number(limitRaw) > service.maxLimit) throw badParam('limit', `limit must be at most ${service.maxLimit} (the service's maxLimit)`);
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

  Object.defineProperty(handler, 'sseClients', { get: () => streams.size });
  handler.close = async () => {
    streams.close();
  };
  handler[Symbol.asyncDispose] = handler.close;
  return handler;
}
