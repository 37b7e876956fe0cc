import type { IncomingMessage } from 'node:http';
import { GuardError } from '@guard/core';
import type { Problem } from '@guard/core';
import type { DetectorChain, ParasiteRoute } from '@guard/detectors';

/**
 * Why a request is answered early: the problem to send and its headers (`Retry-After`).
 *
 * @example
 * const rejection = guard.admit(req, res);
 * if (rejection) return sendProblem(res, rejection.problem, rejection.headers);
 */
export interface Rejection {
  readonly problem: Problem;
  readonly headers: Readonly<Record<string, string>>;
}

/**
 * Decides, per request and in O(routes), whether to answer early: load shedding while under pressure
 * (like @fastify/under-pressure), then the Parasite Guard's rule (a route whose component has an active
 * critical detection in `full` mode gets 503 and the sanitization is scheduled). Framework-neutral, so the
 * connect middleware and the Fastify `onRequest` hook share it.
 *
 * @example
 * const admit = createAdmission(chain, { routes, retryAfterSeconds: 5, isUnderPressure: () => false });
 */
export function createAdmission(
  chain: DetectorChain,
  options: { readonly routes: readonly ParasiteRoute[]; readonly retryAfterSeconds: number; readonly isUnderPressure: () => boolean },
): (req: IncomingMessage) => Rejection | undefined {
  options.routes.forEach((route, i) => {
    const hasPrefix = typeof route.prefix === 'string';
    if (hasPrefix === route.pattern instanceof RegExp) throw new GuardError('INVALID_OPTION', `routes[${i}] needs exactly one of prefix or pattern`, { details: { field: `routes[${i}]` } });
    if (typeof route.component !== 'string' || route.component === '') {
      throw new GuardError('INVALID_OPTION', `routes[${i}].component must be a non-empty string`, { details: { field: `routes[${i}].component` } });
    }
  });
  if (!Number.isInteger(options.retryAfterSeconds) || options.retryAfterSeconds < 0) {
    throw new GuardError('INVALID_OPTION', `retryAfterSeconds must be an integer >= 0, got ${String(options.retryAfterSeconds)}`, { details: { field: 'retryAfterSeconds' } });
  }
  const headers = { 'retry-after': String(options.retryAfterSeconds) };
  return (req) => {
    if (options.isUnderPressure()) return { problem: { status: 503, title: 'Service under pressure', detail: 'load shedding: retry later' }, headers };
    const url = req.url ?? '/';
    const route = options.routes.find((r) => (r.prefix !== undefined ? url.startsWith(r.prefix) : r.pattern!.test(url)));
    if (!route) return undefined;
    const detection = chain.criticalFor(route.component);
    if (detection === undefined || chain.modeOf(route.component) !== 'full') return undefined;
    chain.requestSanitization(detection);
    return {
      problem: {
        status: 503,
        title: 'Service Unavailable',
        detail: `${route.component} is being healed: ${detection.pattern} on ${detection.resourceId}`,
        component: route.component,
        pattern: detection.pattern,
        detectionId: detection.id,
      },
      headers,
    };
  };
}
