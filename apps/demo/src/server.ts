import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { fileURLToPath } from 'node:url';
import { Registry, collectDefaultMetrics } from 'prom-client';
import { WebSocketServer } from 'ws';
import {
  checkAdminToken,
  closeOnce,
  envReader,
  isGuardMode,
  readJsonBody,
  problemFromError,
  sendJson,
  sendProblem,
  silentLogger,
  type Env,
  type HttpHandler,
  type Logger,
} from '@guard/core';
import { createParasiteMiddleware } from '@guard/detectors';
import { createSelfCheckHandler } from '@guard/memory';
import { createImmuneHandler } from '@guard/immune';
import { createAnalysisService, type AnalysisService, type WorkRefusal } from './analysis-service.js';
import { ChaosLab, type SessionCache } from './chaos-lab.js';
import { Dashboard } from './dashboard.js';
import { databaseConfigFromEnv, type DatabaseConfig } from './database.js';
import { WebSocketGate, webSocketLimitsFromEnv } from './ws-gate.js';
import { demoEnv } from './demo-env.js';
import { startDownstream } from './downstream.js';
import { startFaultProxy } from './fault-proxy.js';
import { createGuard, type Guard } from './guard.js';
import { createHealing, type Healing } from './healing.js';

/** Options for {@link startDemo}. */
export interface DemoOptions {
  /** Port to listen on; 0 picks a free one. Default `PORT` or 8080. */
  readonly port?: number;
  readonly host?: string;
  readonly logger?: Logger;
  /** Environment to read (default `process.env`), under the demo's defaults. */
  readonly env?: Env;
  /** Folder of the SQLite file (default `apps/demo/data`). */
  readonly dataDir?: string;
}

/** A running demo service with the full guard around it. */
export interface Demo extends AsyncDisposable {
  readonly server: Server;
  readonly url: string;
  readonly registry: Registry;
  readonly guard: Guard;
  readonly healing: Healing;
  readonly service: AnalysisService;
  readonly database: DatabaseConfig;
  /** The WebSocket server's door: connection cap, per-socket errors and message budgets. */
  readonly gate: WebSocketGate;
  close(): Promise<void>;
}

const DEFAULT_DATA_DIR = fileURLToPath(new URL('../data/', import.meta.url));

/** Runs handlers in order, each calling `next()` to pass the request on; errors become problems, 5xx logged with the cause. */
function chain(handlers: readonly HttpHandler[], last: HttpHandler, logger: Logger): HttpHandler {
  return (req, res) => {
    const fail = (error: unknown) => {
      const problem = problemFromError(error);
      if (problem.status >= 500) logger.error({ err: error, method: req.method, path: (req.url ?? '').split('?')[0] }, 'request failed');
      if (res.headersSent) return void res.destroy();
      sendProblem(res, problem);
    };
    const step = (index: number) => (error?: unknown) => {
      if (error) return fail(error);
      const handler = handlers[index];
      if (!handler) return last(req, res);
      try {
        handler(req, res, step(index + 1));
      } catch (thrown) {
        fail(thrown);
      }
    };
    step(0)();
  };
}

/**
 * Lab endpoints (chaos, mode switch): the admin token, compared in constant time. Without `GUARD_ADMIN_TOKEN` they
 * are off (403): "loopback only" is no protection behind a reverse proxy, where every caller is local.
 */
function labAccess(token: string | undefined): (req: IncomingMessage, res: ServerResponse) => boolean {
  return (req, res) => {
    const denied = checkAdminToken(req, token);
    if (denied) sendProblem(res, denied, token ? { 'www-authenticate': 'Bearer' } : {});
    return !denied;
  };
}

/** A request target that is not an origin-form path (or that WHATWG URL cannot parse) is answered 400 here, once. */
function validTarget(url: string | undefined): boolean {
  if (!url?.startsWith('/') || url.startsWith('//')) return false;
  return URL.canParse(url, 'http://demo');
}

/** Starts the demo service: API, WebSocket streaming, downstream calls, and the full guard around them. */
export async function startDemo(options: DemoOptions = {}): Promise<Demo> {
  const env = demoEnv(options.env ?? process.env);
  const logger = options.logger ?? silentLogger;
  const registry = new Registry();
  collectDefaultMetrics({ register: registry });
  const database = databaseConfigFromEnv(env, options.dataDir ?? env.GUARD_DATA_DIR ?? DEFAULT_DATA_DIR);

  const downstream = await startDownstream();
  const proxy = await startFaultProxy(downstream.port);
  const wsLimits = webSocketLimitsFromEnv(env);
  const wss = new WebSocketServer({ noServer: true, maxPayload: wsLimits.maxPayloadBytes });
  const gate = new WebSocketGate(wss, wsLimits, logger);
  const sessions: SessionCache = { entries: new Map() };
  const guard = await createGuard({ env, registry, logger, wss, database, caches: { sessions: () => sessions.entries.size } });
  let url = '';
  const healing = await createHealing({ env, bus: guard.bus, registry, logger, healthUrl: () => `${url}/livez`, modeOf: (component) => guard.chain.modeOf(component), immune: guard.immune });
  // WebSocket work passes the same load shedding and API rate limit as HTTP requests.
  const admitWork = (): WorkRefusal | undefined => {
    if (healing.pressure.isUnderPressure()) return { status: 'overloaded', detail: 'load shedding: the service is under pressure', retryAfterSec: 2 };
    if (!healing.limiter.tryAcquire('api')) return { status: 'rate_limited', detail: 'rate limit "api" is active', retryAfterSec: 1 };
    return undefined;
  };
  const service = createAnalysisService(guard, () => proxy.port, { logger, admitWork, messageBudget: () => gate.budget() });
  wss.on('connection', (ws) => {
    gate.watch(ws);
    service.serve(ws);
  });

  // Self-healing for the session cache: a critical memory alarm caused by it evicts it, and the immune log records why.
  const offAlarm = guard.bus.subscribe('memoryAlarm', (alarm) => {
    if (alarm.status !== 'critical' || !alarm.reasons.some((reason) => reason.startsWith('cache sessions'))) return;
    if (guard.chain.modeOf('memory') !== 'full') return; // detect and dry_run never change behaviour
    const evicted = sessions.entries.size;
    sessions.entries.clear();
    sessions.lastEvictionAt = Date.now();
    guard.immune
      .publishEvent({ severity: 'WARNING', type: 'SELF_HEALING_ACTION', module: 'demo.sessions', message: `evicted ${evicted} session cache entries after a memory alarm`, meta: { evicted, reasons: [...alarm.reasons] } })
      .catch((error: unknown) => logger.error({ err: error }, 'immune publish failed'));
  });

  const dashboard = new Dashboard(guard, healing, { maxStreams: envReader(env).number('DASHBOARD_MAX_STREAMS', 100, { min: 1, integer: true }) });
  const lab = new ChaosLab({ guard, healing, service, proxy, wss, sessions, wsUrl: () => `${url.replace('http', 'ws')}/ws` });
  const adminToken = env.GUARD_ADMIN_TOKEN;
  const labAllowed = labAccess(adminToken);
  const selfCheck = createSelfCheckHandler(guard.memory, { adminToken });
  // Writes need GUARD_IMMUNE_WRITE_TOKEN when it is set (read from env); 5xx answers are logged with their cause.
  const immune = createImmuneHandler(guard.immune, { registry, logger, env });
  const parasite = createParasiteMiddleware(guard.chain, { routes: [{ prefix: '/api/analyses', component: 'db' }] });
  const shedding = healing.pressure.loadShedding({ retryAfterSec: 2 });
  const apiLimit = healing.limiter.httpHandler('api');
  let shuttingDown = false;

  const metrics: HttpHandler = (req, res, next) => {
    if (req.url !== '/metrics') return next?.();
    registry.metrics().then(
      (text) => {
        res.writeHead(200, { 'content-type': registry.contentType });
        res.end(text);
      },
      (error) => {
        logger.error({ err: error }, 'metrics failed');
        sendProblem(res, { status: 500, title: 'Metrics unavailable' });
      },
    );
  };
  const draining: HttpHandler = (req, res, next) => {
    if (shuttingDown && req.url?.startsWith('/readyz')) return sendJson(res, 503, { status: 'shutting_down' });
    next?.();
  };
  const modeSwitch: HttpHandler = (req, res, next) => {
    if (req.url !== '/guard/mode') return next?.();
    if (req.method === 'GET') return sendJson(res, 200, { mode: guard.chain.mode });
    if (req.method !== 'POST') return sendProblem(res, { status: 405, title: 'Method not allowed', detail: 'use GET or POST' }, { allow: 'GET, POST' });
    if (!labAllowed(req, res)) return req.resume();
    readJsonBody(req, { limitBytes: 1024 }).then((body) => {
      const { mode, component } = (body ?? {}) as { mode?: unknown; component?: unknown };
      if (!isGuardMode(mode)) return sendProblem(res, { status: 400, title: 'Invalid field', detail: 'mode must be disabled, dry_run, detect or full', field: 'mode' });
      if (component !== undefined && typeof component !== 'string') return sendProblem(res, { status: 400, title: 'Invalid field', detail: 'component must be a string', field: 'component' });
      guard.chain.setMode(mode, component);
      sendJson(res, 200, { mode: guard.chain.mode, component: component ?? '*', effective: component ? guard.chain.modeOf(component) : mode });
    }, (error) => sendProblem(res, problemFromError(error)));
  };
  const chaos: HttpHandler = (req, res, next) => {
    if (!req.url?.startsWith('/chaos/')) return next?.();
    if (!labAllowed(req, res)) return req.resume();
    lab.handle(req, res, () => next?.());
  };
  const api: HttpHandler = (req, res, next) => {
    if (!req.url?.startsWith('/api/analyses')) return next?.();
    shedding(req, res, () => apiLimit(req, res, () => parasite(req, res, () => service.handle(req, res, () => next?.()))));
  };
  const badTarget: HttpHandler = (req, res, next) => {
    if (validTarget(req.url)) return next?.();
    sendProblem(res, { status: 400, title: 'Invalid request target', detail: 'the request target must be a path starting with a single /', field: 'url' });
  };
  const notFound: HttpHandler = (req, res) => sendProblem(res, { status: 404, title: 'Not found', detail: `no route for ${req.method} ${(req.url ?? '').split('?')[0]}` });

  const handler = chain(
    [badTarget, draining, metrics, selfCheck, (req, res, next) => immune(req, res, next), (req, res, next) => dashboard.handle(req, res, () => next?.()), modeSwitch, chaos, api],
    notFound,
    logger,
  );
  // Slow clients cannot hold a connection open forever while sending their request (slowloris); responses such as
  // the SSE streams are not bounded by these.
  const server = createServer({ headersTimeout: 10_000, requestTimeout: 30_000 }, handler);
  server.on('upgrade', (req, socket, head) => {
    if (!gate.admitUpgrade(req, socket, '/ws')) return;
    wss.handleUpgrade(req, socket, head, (ws) => wss.emit('connection', ws, req));
  });

  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(options.port ?? 8080, options.host ?? '0.0.0.0', () => resolve());
  });
  url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  logger.info({ url, mode: guard.chain.mode, database: database.kind }, 'demo listening');

  const close = closeOnce(async () => {
    shuttingDown = true;
    lab.close();
    dashboard.close();
    offAlarm();
    for (const ws of wss.clients) ws.close(1001, 'shutting down');
    await new Promise<void>((resolve) => {
      server.close(() => resolve());
      server.closeIdleConnections();
      setTimeout(() => server.closeAllConnections(), 2_000).unref();
    });
    await immune.close?.();
    await healing.close();
    await guard.close();
    wss.close();
    await proxy.close();
    await downstream.close();
  });
  return { server, url, registry, guard, healing, service, database, gate, close, [Symbol.asyncDispose]: close };
}
