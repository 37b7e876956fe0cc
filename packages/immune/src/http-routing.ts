import type { IncomingMessage, ServerResponse } from 'node:http';
import { sendProblem } from '@guard/core';

/**
 * Claims a request for one of this package's handlers: its URL when `owns(path)` (the path without trailing
 * slashes), else undefined once the request was passed on, to `next()` when the handler is mounted as middleware,
 * or answered 400 (malformed target) / 404 (no route) when it stands alone.
 *
 * @example
 * const url = claimRequest(req, res, next, (path) => path === '/api/fleet');
 * if (!url) return;
 */
export function claimRequest(req: IncomingMessage, res: ServerResponse, next: ((error?: unknown) => void) | undefined, owns: (path: string) => boolean): URL | undefined {
  let url: URL;
  try {
    url = new URL(req.url ?? '/', 'http://localhost');
  } catch {
    if (next) next();
    else sendProblem(res, { status: 400, title: 'Bad request', detail: 'malformed request target' });
    return undefined;
  }
  if (owns(url.pathname.replace(/\/+$/, ''))) return url;
  if (next) next();
  else sendProblem(res, { status: 404, title: 'Not found', detail: `no route for ${url.pathname}` });
  return undefined;
}

/**
 * Answers 405 with `Allow`, discarding the unread request body.
 *
 * @example
 * if (req.method !== 'GET') return methodNotAllowed(req, res, url, ['GET']);
 */
export function methodNotAllowed(req: IncomingMessage, res: ServerResponse, url: URL, allow: readonly string[]): void {
  req.resume();
  sendProblem(res, { status: 405, title: 'Method not allowed', detail: `${req.method ?? 'GET'} is not allowed on ${url.pathname}` }, { allow: allow.join(', ') });
}
