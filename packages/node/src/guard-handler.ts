import type { IncomingMessage, ServerResponse } from 'node:http';
import { GuardError, sendProblem } from '@guard/core';
import type { HttpHandler, Logger, Registry } from '@guard/core';
import type { RequestTracker } from './request-tracker.js';

/**
 * Where each endpoint group lives; `false` turns a group off (its paths fall through to `next()`).
 *
 * @example
 * createGuard({ endpoints: { metrics: '/internal/metrics', immune: false } });
 */
export interface GuardEndpoints {
  /** Prometheus text of the registry. Default `/metrics`. */
  readonly metrics?: string | false;
  /** Liveness probe. Default `/livez`. */
  readonly livez?: string | false;
  /** Readiness probe. Default `/readyz`. */
  readonly readyz?: string | false;
  /** Memory self-check endpoints (`/self-check`, `/self-check/memory`, ...). Default `/self-check`. */
  readonly selfCheck?: string | false;
  /** Immune event log REST + SSE. Default `/api/immune`. */
  readonly immune?: string | false;
  /** Mode switch (`GET`, admin `POST`). Default `/guard/mode`. */
  readonly mode?: string | false;
  /** Fleet mode: the replica list, fleet-wide mode switch and blacklist (`GET`, admin `POST`). Default `/api/fleet`. */
  readonly fleet?: string | false;
}

/**
 * The resolved paths (`undefined` = off).
 *
 * @example
 * if (guard.endpoints.metrics) console.log(`scrape ${guard.endpoints.metrics}`);
 */
export type ResolvedEndpoints = { readonly [K in keyof GuardEndpoints]-?: string | undefined };

/**
 * Where each endpoint group lives unless `endpoints` says otherwise.
 *
 * @example
 * DEFAULT_ENDPOINTS.readyz; // '/readyz'
 */
export const DEFAULT_ENDPOINTS: Required<GuardEndpoints> = {
  metrics: '/metrics',
  livez: '/livez',
  readyz: '/readyz',
  selfCheck: '/self-check',
  immune: '/api/immune',
  mode: '/guard/mode',
  fleet: '/api/fleet',
};

/** Validates the endpoint paths (code options over the defaults). */
export function resolveEndpoints(given: GuardEndpoints = {}): ResolvedEndpoints {
  const out: Record<string, string | undefined> = {};
  for (const key of Object.keys(DEFAULT_ENDPOINTS) as (keyof GuardEndpoints)[]) {
    const value = given[key] === undefined ? DEFAULT_ENDPOINTS[key] : given[key];
    if (value === false) {
      out[key] = undefined;
      continue;
    }
    if (typeof value !== 'string' || !value.startsWith('/')) {
      throw new GuardError('INVALID_OPTION', `endpoints.${key} must be a path starting with / or false, got ${JSON.stringify(value)}`, { details: { field: `endpoints.${key}` } });
    }
    out[key] = value.length > 1 ? value.replace(/\/+$/, '') : value;
  }
  return out as ResolvedEndpoints;
}

type Route = (req: IncomingMessage, res: ServerResponse, next: (error?: unknown) => void) => void;

/** The handlers behind each group; a missing one means the group is off. */
export interface EndpointHandlers {
  readonly metrics?: Route;
  readonly livez?: Route;
  readonly readyz?: Route;
  readonly selfCheck?: HttpHandler;
  readonly immune?: HttpHandler;
  readonly mode?: Route;
  readonly fleet?: HttpHandler;
}

/** Serves the registry's metrics in Prometheus text format. */
export function metricsRoute(registry: Registry, logger: Logger): Route {
  return (req, res) => {
    if (req.method !== 'GET' && req.method !== 'HEAD') {
      req.resume();
      return sendProblem(res, { status: 405, title: 'Method not allowed', detail: 'use GET' }, { allow: 'GET, HEAD' });
    }
    registry.metrics().then(
      (text) => {
        res.writeHead(200, { 'content-type': registry.contentType, 'cache-control': 'no-store' });
        res.end(req.method === 'HEAD' ? undefined : text);
      },
      (error: unknown) => {
        logger.error({ err: error }, 'guard: collecting metrics failed');
        sendProblem(res, { status: 500, title: 'Metrics unavailable' });
      },
    );
  };
}

/**
 * One connect-style handler for every Guard endpoint. Paths are matched exactly (prefix for the self-check
 * and immune groups); anything else goes to `next()`, or gets a 404 problem when there is no `next`.
 * Every request it sees is counted for the graceful shutdown.
 */
export function createGuardHandler(endpoints: ResolvedEndpoints, handlers: EndpointHandlers, requests: RequestTracker): HttpHandler {
  const exact = new Map<string, Route>();
  const add = (path: string | undefined, route: Route | undefined) => {
    if (path !== undefined && route) exact.set(path, route);
  };
  add(endpoints.metrics, handlers.metrics);
  add(endpoints.livez, handlers.livez);
  add(endpoints.readyz, handlers.readyz);
  add(endpoints.mode, handlers.mode);
  const prefixes: [string, HttpHandler][] = [];
  if (endpoints.selfCheck !== undefined && handlers.selfCheck) prefixes.push([endpoints.selfCheck, handlers.selfCheck]);
  if (endpoints.immune !== undefined && handlers.immune) prefixes.push([endpoints.immune, handlers.immune]);
  if (endpoints.fleet !== undefined && handlers.fleet) prefixes.push([endpoints.fleet, handlers.fleet]);

  return function guardHandler(req, res, next) {
    requests.track(req, res);
    const path = (req.url ?? '/').split('?', 1)[0]!;
    const pass = (error?: unknown) => {
      if (next) return next(error);
      req.resume();
      sendProblem(res, { status: 404, title: 'Not found', detail: `no route for ${req.method} ${path}` });
    };
    const route = exact.get(path.length > 1 ? path.replace(/\/+$/, '') : path);
    if (route) return route(req, res, pass);
    for (const [prefix, handler] of prefixes) {
      if (path === prefix || path.startsWith(`${prefix}/`)) return handler(req, res, pass);
    }
    pass();
  };
}
