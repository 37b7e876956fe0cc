import type { IncomingMessage, ServerResponse } from 'node:http';
import { isGuardMode, problemFromError, readJsonBody, requireAdminToken, sendJson, sendProblem } from '@guard/core';
import type { ComponentName } from '@guard/core';
import type { DetectorChain } from '@guard/detectors';

/**
 * `GET /guard/mode` reads the global and per-component modes; `POST /guard/mode` `{ "mode": "full", "component"?: "db" }`
 * changes them at run time. POST needs the admin bearer token (constant-time check); with no token configured
 * it is off (403 problem+json), whoever calls. Switching a component without a sanitizer to `full` is refused (409).
 *
 * @example
 * const mode = modeSwitch(chain, { adminToken: process.env.GUARD_ADMIN_TOKEN, components: () => ['db'], healable: () => true });
 */
export function modeSwitch(
  chain: DetectorChain,
  options: { readonly adminToken: string | undefined; readonly components: () => readonly ComponentName[]; readonly healable: (component: ComponentName) => boolean },
): (req: IncomingMessage, res: ServerResponse) => void {
  const view = () => ({ mode: chain.mode, components: Object.fromEntries(options.components().map((c) => [c, chain.modeOf(c)])) });
  return (req, res) => {
    if (req.method === 'GET' || req.method === 'HEAD') return sendJson(res, 200, view(), { 'cache-control': 'no-store' });
    if (req.method !== 'POST') {
      req.resume();
      return sendProblem(res, { status: 405, title: 'Method not allowed', detail: 'use GET or POST' }, { allow: 'GET, HEAD, POST' });
    }
    if (!requireAdminToken(req, res, options.adminToken)) return;
    readJsonBody(req, { limitBytes: 1024 }).then(
      (body) => {
        const { mode, component } = (typeof body === 'object' && body !== null ? body : {}) as { mode?: unknown; component?: unknown };
        if (!isGuardMode(mode)) return sendProblem(res, { status: 400, title: 'Invalid field', detail: 'mode must be disabled, dry_run, detect or full', field: 'mode' });
        const components = options.components();
        if (component !== undefined && (typeof component !== 'string' || !components.includes(component))) {
          return sendProblem(res, { status: 400, title: 'Invalid field', detail: `component must be one of ${components.join(', ')}`, field: 'component' });
        }
        const affected = component === undefined ? components : [component];
        const unhealable = mode === 'full' ? affected.filter((c) => !options.healable(c)) : [];
        if (unhealable.length > 0) {
          return sendProblem(res, { status: 409, title: 'No sanitizer', detail: `full mode needs a sanitizer for ${unhealable.join(', ')}`, code: 'SANITIZER_MISSING', field: 'mode' });
        }
        chain.setMode(mode, component);
        sendJson(res, 200, view());
      },
      (error: unknown) => sendProblem(res, problemFromError(error)),
    );
  };
}
