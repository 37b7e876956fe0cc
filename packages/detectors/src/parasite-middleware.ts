import { GuardError, sendProblem } from '@guard/core';
import type { HttpHandler } from '@guard/core';
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { DetectorChain } from './detector-chain.js';
import { RouteTable } from './route-table.js';

/**
 * One route → component mapping: a URL path prefix (whole segments: `/live` matches `/live`, `/live/x` and
 * `/live?x`, never `/lively`) or a RegExp tested against the URL.
 *
 * @example
 * const route: ParasiteRoute = { pattern: /^\/orders\b/, component: 'db' };
 */
export interface ParasiteRoute {
  readonly prefix?: string;
  readonly pattern?: RegExp;
  readonly component: string;
}

/**
 * Options for {@link createParasiteMiddleware}.
 *
 * @example
 * createParasiteMiddleware(chain, { routes: [{ prefix: '/live', component: 'websocket' }], retryAfterSeconds: 5 });
 */
export interface ParasiteMiddlewareOptions {
  /** Which requests depend on which component; the first match wins. */
  readonly routes: readonly ParasiteRoute[];
  /** `Retry-After` of the 503, in seconds. Default 5. */
  readonly retryAfterSeconds?: number;
}

/**
 * Connect-style middleware (node:http, Express, Connect). Per request it finds the route in time that does not grow
 * with the number of prefix routes (see `RouteTable`) and does an O(1) read of the chain's current detections,
 * never a scan. In `full` mode, a request routed to a component with an
 * active critical detection gets an immediate 503 with `Retry-After` and a problem+json body carrying the
 * detection id, and the sanitization is scheduled; otherwise `next()` runs unchanged.
 *
 * @example
 * const guard = createParasiteMiddleware(chain, { routes: [{ prefix: '/ws-api', component: 'websocket' }, { pattern: /^\/orders/, component: 'db' }] });
 * app.use(guard); // Express
 * http.createServer((req, res) => guard(req, res, () => app(req, res))); // node:http
 */
export function createParasiteMiddleware(chain: DetectorChain, options: ParasiteMiddlewareOptions): HttpHandler {
  const routes = options?.routes;
  if (!Array.isArray(routes)) throw new GuardError('INVALID_OPTION', 'routes must be an array', { details: { field: 'routes' } });
  routes.forEach((route, i) => {
    const hasPrefix = typeof route.prefix === 'string';
    const hasPattern = route.pattern instanceof RegExp;
    if (hasPrefix === hasPattern) throw new GuardError('INVALID_OPTION', `routes[${i}] needs exactly one of prefix or pattern`, { details: { field: `routes[${i}]` } });
    if (typeof route.component !== 'string' || route.component === '') {
      throw new GuardError('INVALID_OPTION', `routes[${i}].component must be a non-empty string`, { details: { field: `routes[${i}].component` } });
    }
  });
  const retryAfterSeconds = options.retryAfterSeconds ?? 5;
  if (!Number.isInteger(retryAfterSeconds) || retryAfterSeconds < 0) {
    throw new GuardError('INVALID_OPTION', `retryAfterSeconds must be an integer >= 0, got ${String(retryAfterSeconds)}`, { details: { field: 'retryAfterSeconds' } });
  }
  const retryAfter = String(retryAfterSeconds);
  const table = new RouteTable(routes);

  return function parasiteMiddleware(req: IncomingMessage, res: ServerResponse, next?: (error?: unknown) => void): void {
    const component = table.componentOf(req.url ?? '/');
    if (component !== undefined) {
      const detection = chain.criticalFor(component);
      if (detection !== undefined && chain.modeOf(component) === 'full') {
        chain.requestSanitization(detection);
        sendProblem(
          res,
          {
            status: 503,
            title: 'Service Unavailable',
            detail: `${component} is being healed: ${detection.pattern} on ${detection.resourceId}`,
            component,
            pattern: detection.pattern,
            detectionId: detection.id,
          },
          { 'retry-after': retryAfter },
        );
        return;
      }
    }
    next?.();
  };
}
