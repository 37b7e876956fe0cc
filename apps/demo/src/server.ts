import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { fileURLToPath } from 'node:url';
import { Registry, collectDefaultMetrics } from 'prom-client';
import { WebSocketServer } from 'ws';
import { checkAdminToken, closeOnce, envReader, problemFromError, readJsonBody, sendJson, sendProblem, silentLogger, type Env, type HttpHandler, type Logger } from '@guard/core';
import { createAnalysisService, type AnalysisService, type WorkRefusal } from './analysis-service.js';
import { ChaosLab, type SessionCache } from './chaos-lab.js';
import { Dashboard } from './dashboard.js';
import { databaseConfigFromEnv, type DatabaseConfig } from './database.js';
import { WebSocketGate, webSocketLimitsFromEnv } from './ws-gate.js';
import { demoEnv } from './demo-env.js';
import { startDownstream } from './downstream.js';
import { startFaultProxy } from './fault-proxy.js';
import { createDemoGuard, type Guard } from './guard.js';
import { createHealing, servicePressureSampler, type Healing } from './healing.js';
import { createHttpMetrics } from './http-metrics.js';
import { demoRouteTemplate, isStreamingRoute } from './route-template.js';
import { WorkerPool } from './worker-pool.js';

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
  /** Shut down gracefully on SIGTERM/SIGINT and exit 0 (the guard's signal handling). Default false. */
  readonly handleSignals?: boolean;
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
const DEFAULT_PLAYBOOKS_DIR = fileURLToPath(new URL('../playbooks/', import.meta.url));

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
  const pool = new WorkerPool({ size: 3 });
  const sampler = servicePressureSampler();
  let guard: Guard;
  try {
    guard = await createDemoGuard({
      env,
      registry,
      logger,
      wss,
      database,
      caches: { sessions: () => sessions.entries.size },
      workers: pool,
      sampler: sampler.sample,
      playbooksDir: env.GUARD_PLAYBOOKS_DIR ?? DEFAULT_PLAYBOOKS_DIR,
      handleSignals: options.handleSignals ?? false,
    });
  } catch (error) {
    // A failed start (a bad playbook folder, an unreachable database) leaves no worker process or server behind.
    await Promise.allSettled([pool.close(), proxy.close(), downstream.close()]);
    sampler.close();
    wss.close();
    throw error;
  }
  const node = guard.node;
  const healing = createHealing(node, pool);
  // WebSocket work passes the same load shedding and API rate limit as HTTP requests.
  const admitWork = (): WorkRefusal | undefined => {
    if (node.isUnderPressure()) return { status: 'overloaded', detail: 'load shedding: the service is under pressure', retryAfterSec: 2 };
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

  let url = '';
  const http = createHttpMetrics({ registry, route: demoRouteTemplate, streaming: isStreamingRoute });
  const dashboard = new Dashboard(guard, healing, { http, logger, maxStreams: envReader(env).number('DASHBOARD_MAX_STREAMS', 100, { min: 1, integer: true }), fleet: node.fleet });
  const lab = new ChaosLab({ guard, healing, service, proxy, wss, sessions, wsUrl: () => `${url.replace('http', 'ws')}/ws` });
  const labAllowed = labAccess(env.GUARD_ADMIN_TOKEN);
  const apiLimit = healing.limiter.httpHandler('api');

  // Lab: publish on the message bus as an actor (shows a fleet blacklist refusing it on every replica).
  const busLab: HttpHandler = (req, res, next) => {
    if (req.url !== '/lab/bus/publish') return next?.();
    if (req.method !== 'POST') return sendProblem(res, { status: 405, title: 'Method not allowed', detail: 'use POST' }, { allow: 'POST' });
    if (!labAllowed(req, res)) return req.resume();
    readJsonBody(req, { limitBytes: 1024 }).then(
      (body) => {
        const { actor, topic } = (body ?? {}) as { actor?: unknown; topic?: unknown };
        if (typeof actor !== 'string' || actor === '') return sendProblem(res, { status: 400, title: 'Invalid field', detail: 'actor must be a non-empty string', field: 'actor' });
        if (typeof topic !== 'string' || topic === '') return sendProblem(res, { status: 400, title: 'Invalid field', detail: 'topic must be a non-empty string', field: 'topic' });
        sendJson(res, 200, { actor, topic, outcome: healing.messageBus.publish(actor, topic, { lab: true }) });
      },
      (error: unknown) => sendProblem(res, problemFromError(error)),
    );
  };
  const chaos: HttpHandler = (req, res, next) => {
    if (!req.url?.startsWith('/chaos/')) return next?.();
    if (!labAllowed(req, res)) return req.resume();
    lab.handle(req, res, () => next?.());
  };
  // The API: load shedding and the parasite middleware (the guard's), then the rate limit, then the service.
  const api: HttpHandler = (req, res, next) => {
    if (!req.url?.startsWith('/api/analyses')) return next?.();
    node.middleware(req, res, () => apiLimit(req, res, () => service.handle(req, res, () => next?.())));
  };
  const badTarget: HttpHandler = (req, res, next) => {
    if (validTarget(req.url)) return next?.();
    sendProblem(res, { status: 400, title: 'Invalid request target', detail: 'the request target must be a path starting with a single /', field: 'url' });
  };
  const notFound: HttpHandler = (req, res) => sendProblem(res, { status: 404, title: 'Not found', detail: `no route for ${req.method} ${(req.url ?? '').split('?')[0]}` });

  const handler = chain([http.middleware, badTarget, node.handler, (req, res, next) => dashboard.handle(req, res, () => next?.()), busLab, chaos, api], notFound, logger);
  // Slow clients cannot hold a connection open forever while sending their request (slowloris); responses such as
  // the SSE streams are not bounded by these.
  const server = node.attach(createServer({ headersTimeout: 10_000, requestTimeout: 30_000 }, handler));
  server.on('upgrade', (req, socket, head) => {
    if (!gate.admitUpgrade(req, socket, '/ws')) return;
    wss.handleUpgrade(req, socket, head, (ws) => wss.emit('connection', ws, req));
  });

  // Shutdown is the guard's: readiness fails, the dashboard and lab streams end, requests and sanitizations drain,
  // then the demo's own parts close (last added first), then the guard's.
  node.onShutdown(
    () => {
      lab.close();
      dashboard.close();
    },
    { phase: 'drain' },
  );
  node.onShutdown(async () => {
    await Promise.allSettled([proxy.close(), downstream.close()]);
    wss.close();
    sampler.close();
  });
  node.onShutdown(async () => {
    offAlarm();
    await healing.close();
  });

  try {
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(options.port ?? 8080, options.host ?? '0.0.0.0', () => resolve());
    });
  } catch (error) {
    await node.shutdown();
    throw error;
  }
  url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  logger.info({ url, mode: guard.chain.mode, database: database.kind }, 'demo listening');

  const close = closeOnce(async () => {
    await node.shutdown();
  });
  return { server, url, registry, guard, healing, service, database, gate, close, [Symbol.asyncDispose]: close };
}
