import type { IncomingMessage, ServerResponse } from 'node:http';
import { timingSafeEqual, createHash } from 'node:crypto';
import { GuardError, isGuardError } from './guard-error.js';

/** A connect-style handler: mounts in `node:http`, Express and Connect alike. */
export type HttpHandler = (req: IncomingMessage, res: ServerResponse, next?: (error?: unknown) => void) => void;

/** An RFC 9457 problem body. */
export interface Problem {
  readonly status: number;
  readonly title: string;
  readonly detail?: string;
  readonly type?: string;
  /** The input field at fault, when there is one. */
  readonly field?: string;
  readonly [extension: string]: unknown;
}

/**
 * Writes a JSON response.
 *
 * @example
 * sendJson(res, 201, { id });
 */
export function sendJson(res: ServerResponse, status: number, body: unknown, headers: Record<string, string> = {}): void {
  const payload = JSON.stringify(body);
  res.writeHead(status, { 'content-type': 'application/json; charset=utf-8', 'content-length': Buffer.byteLength(payload), ...headers });
  res.end(payload);
}

/**
 * Writes an `application/problem+json` response.
 *
 * @example
 * sendProblem(res, { status: 400, title: 'Invalid field', detail: 'severity must be INFO, WARNING or CRITICAL', field: 'severity' });
 */
export function sendProblem(res: ServerResponse, problem: Problem, headers: Record<string, string> = {}): void {
  const body = JSON.stringify({ type: 'about:blank', ...problem });
  res.writeHead(problem.status, {
    'content-type': 'application/problem+json; charset=utf-8',
    'content-length': Buffer.byteLength(body),
    // 413/415 answer before the body is read: close, so a keep-alive client never reuses a half-read socket.
    ...(problem.status === 413 || problem.status === 415 ? { connection: 'close' } : {}),
    ...headers,
  });
  res.end(body);
}

/**
 * An input error that knows its HTTP status, so handlers can answer it as problem+json.
 *
 * @example
 * throw httpError(413, 'Payload too large', 'body exceeds 65536 bytes');
 */
export function httpError(status: number, title: string, detail: string, field?: string): GuardError {
  return new GuardError('INVALID_INPUT', detail, { details: { status, title, ...(field ? { field } : {}) } });
}

/**
 * Maps an error to a problem: Guard input errors keep their status and field, anything else is a 500
 * whose message is not leaked.
 */
export function problemFromError(error: unknown): Problem {
  if (isGuardError(error) && typeof error.details.status === 'number') {
    const { status, title, ...rest } = error.details as { status: number; title?: string };
    return { ...rest, status, title: title ?? 'Bad request', detail: error.message, code: error.code };
  }
  if (isGuardError(error, 'INVALID_INPUT')) return { ...error.details, status: 400, title: 'Bad request', detail: error.message, code: error.code };
  return { status: 500, title: 'Internal server error' };
}

/** Options for {@link readJsonBody}. */
export interface ReadJsonBodyOptions {
  /** Largest accepted body. Default 64 KiB. */
  readonly limitBytes?: number;
}

/**
 * Reads and parses a JSON request body with a size limit. When a body parser already ran (`req.body` is set, as
 * `express.json()` or body-parser leave it), that body is used instead of the consumed stream. Rejects with an HTTP-aware `INVALID_INPUT`
 * error: 415 for a non-JSON content type, 413 over the limit (stops reading early), 400 for malformed JSON.
 *
 * @example
 * try { const body = await readJsonBody(req); } catch (e) { sendProblem(res, problemFromError(e)); }
 */
export async function readJsonBody(req: IncomingMessage, options: ReadJsonBodyOptions = {}): Promise<unknown> {
  const limitBytes = options.limitBytes ?? 64 * 1024;
  const type = (req.headers['content-type'] ?? '').split(';')[0]!.trim().toLowerCase();
  if (type !== 'application/json' && !type.endsWith('+json')) {
    req.resume();
    throw httpError(415, 'Unsupported media type', `content-type must be application/json, got "${type || 'none'}"`, 'content-type');
  }
  const parsed = (req as IncomingMessage & { body?: unknown }).body;
  if (parsed !== undefined) return fromParsedBody(parsed, limitBytes);
  const declared = Number(req.headers['content-length']);
  if (Number.isFinite(declared) && declared > limitBytes) {
    req.resume();
    throw httpError(413, 'Payload too large', `body of ${declared} bytes exceeds the limit of ${limitBytes} bytes`);
  }
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of req as AsyncIterable<Buffer>) {
    size += chunk.length;
    if (size > limitBytes) {
      req.resume();
      throw httpError(413, 'Payload too large', `body exceeds the limit of ${limitBytes} bytes`);
    }
    chunks.push(chunk);
  }
  return parseJsonText(Buffer.concat(chunks).toString('utf8'));
}

function parseJsonText(text: string): unknown {
  if (text.trim() === '') throw httpError(400, 'Malformed JSON', 'request body is empty', 'body');
  try {
    return JSON.parse(text);
  } catch (error) {
    throw httpError(400, 'Malformed JSON', `request body is not valid JSON: ${(error as Error).message}`, 'body');
  }
}

/**
 * A body parser (express.json(), body-parser, Fastify) already consumed the stream and left `req.body`:
 * a string or Buffer is parsed here under the same limit; anything else is the parsed value itself.
 */
function fromParsedBody(body: unknown, limitBytes: number): unknown {
  if (typeof body === 'string' || Buffer.isBuffer(body)) {
    const size = typeof body === 'string' ? Buffer.byteLength(body) : body.length;
    if (size > limitBytes) throw httpError(413, 'Payload too large', `body of ${size} bytes exceeds the limit of ${limitBytes} bytes`);
    return parseJsonText(typeof body === 'string' ? body : body.toString('utf8'));
  }
  return body;
}

const digest = (value: string) => createHash('sha256').update(value).digest();

/**
 * Checks an admin bearer token in constant time. Admin endpoints are off (403) when no token is configured.
 *
 * @returns `undefined` when authorized, else the problem to send (401 missing, 403 wrong or disabled).
 * @example
 * const denied = checkAdminToken(req, process.env.GUARD_ADMIN_TOKEN);
 * if (denied) return sendProblem(res, denied, denied.status === 401 ? { 'www-authenticate': 'Bearer' } : {});
 */
export function checkAdminToken(req: IncomingMessage, token: string | undefined): Problem | undefined {
  if (!token) return { status: 403, title: 'Admin endpoints disabled', detail: 'set GUARD_ADMIN_TOKEN to enable admin endpoints' };
  const header = req.headers.authorization;
  const match = header ? /^Bearer\s+(.+)$/i.exec(header) : null;
  if (!match) return { status: 401, title: 'Unauthorized', detail: 'a bearer token is required', field: 'authorization' };
  if (!timingSafeEqual(digest(match[1]!.trim()), digest(token))) {
    return { status: 403, title: 'Forbidden', detail: 'the bearer token is not valid', field: 'authorization' };
  }
  return undefined;
}

/**
 * Guards an admin route with {@link checkAdminToken}: when the request is not authorized it answers it (401 with
 * `WWW-Authenticate: Bearer` for a missing token, 403 for a wrong one or when admin endpoints are off), drains the
 * unread body so the connection stays usable, and returns false.
 *
 * @returns whether the handler may go on.
 * @example
 * if (!requireAdminToken(req, res, options.adminToken)) return;
 */
export function requireAdminToken(req: IncomingMessage, res: ServerResponse, token: string | undefined): boolean {
  const denied = checkAdminToken(req, token);
  if (!denied) return true;
  req.resume();
  sendProblem(res, denied, denied.status === 401 ? { 'www-authenticate': 'Bearer' } : {});
  return false;
}
