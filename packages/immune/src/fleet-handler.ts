import type { IncomingMessage, ServerResponse } from 'node:http';
import type { HttpHandler, Logger } from '@guard/core';
import { GuardError, isGuardError, sendJson, sendProblem, silentLogger } from '@guard/core';
import type { FleetInstance, FleetMembership } from './fleet-membership.js';
import { claimRequest, methodNotAllowed } from './http-routing.js';

/**
 * Options for {@link createFleetHandler}.
 *
 * @example
 * createFleetHandler(membership, { path: '/api/fleet' });
 */
export interface FleetHandlerOptions {
  /** Default `/api/fleet`. */
  readonly path?: string;
  readonly logger?: Logger;
}

function wire(instance: FleetInstance, self: string) {
  return {
    id: instance.id,
    host: instance.host,
    pid: instance.pid,
    version: instance.version,
    mode: instance.mode,
    status: instance.status,
    started_at: new Date(instance.startedAt).toISOString(),
    last_seen_at: new Date(instance.lastSeenAt).toISOString(),
    age_ms: instance.ageMs,
    self: instance.id === self,
  };
}

/**
 * `GET /api/fleet`: the replicas that heartbeated recently (`?stale=1` adds the ones that aged out but are still
 * remembered). While the database is unreachable it answers 200 with this replica alone and `degraded: true`: the
 * per-instance view, not an error, since this replica still serves.
 *
 * @example
 * const fleet = createFleetHandler(membership);
 * http.createServer((req, res) => fleet(req, res, () => immune(req, res))).listen(3000);
 */
export function createFleetHandler(membership: FleetMembership, options: FleetHandlerOptions = {}): HttpHandler {
  const path = (options.path ?? '/api/fleet').replace(/\/+$/, '');
  if (!path.startsWith('/')) throw new GuardError('INVALID_OPTION', `path must start with /, got ${JSON.stringify(path)}`, { details: { field: 'path' } });
  const logger = options.logger ?? silentLogger;
  return ((req: IncomingMessage, res: ServerResponse, next?: (error?: unknown) => void) => {
    const url = claimRequest(req, res, next, (requested) => requested === path);
    if (!url) return;
    if ((req.method ?? 'GET').toUpperCase() !== 'GET') {
      methodNotAllowed(req, res, url, ['GET']);
      return;
    }
    const staleRaw = url.searchParams.get('stale');
    if (staleRaw !== null && !['0', '1', 'true', 'false'].includes(staleRaw)) {
      sendProblem(res, { status: 400, title: 'Invalid query parameter', detail: 'stale must be 0, 1, true or false', field: 'stale' });
      return;
    }
    const includeStale = staleRaw === '1' || staleRaw === 'true';
    const self = membership.instanceId;
    membership.list({ includeStale }).then(
      (instances) =>
        sendJson(res, 200, {
          self,
          degraded: false,
          stale_after_ms: membership.staleAfterMs,
          count: instances.length,
          instances: instances.map((i) => wire(i, self)),
        }),
      (error: unknown) => {
        if (isGuardError(error, 'CLOSED')) {
          sendProblem(res, { status: 503, title: 'Unavailable', detail: 'the fleet membership is closed', code: 'CLOSED' }, { 'retry-after': '5' });
          return;
        }
        logger.warn({ err: error }, 'GET /api/fleet: fleet database unreachable; answering with this replica only');
        sendJson(res, 200, {
          self,
          degraded: true,
          reason: isGuardError(error) ? error.code : 'STORE_ERROR',
          stale_after_ms: membership.staleAfterMs,
          count: 1,
          instances: [wire(membership.localInstance(), self)],
        });
      },
    );
  }) as HttpHandler;
}
