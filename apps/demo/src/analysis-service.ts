import type { IncomingMessage, ServerResponse } from 'node:http';
import { createId, problemFromError, readJsonBody, sendJson, sendProblem, isGuardError, silentLogger, httpError, type Logger } from '@guard/core';
import type { WebSocket } from 'ws';
import { DownstreamStatusError } from './caller-fault.js';
import { isDatabaseUnavailable } from './database-errors.js';
import type { Guard } from './guard.js';
import { truncateText, wellFormedText } from './text-input.js';
import type { MessageBudget } from './ws-gate.js';

/** The demo's business: score a text with the downstream service, store it, and stream progress over WebSocket. */
export interface AnalysisService {
  /** Scores and stores one analysis; rejects with the breaker's or bulkhead's typed error when the downstream is unhealthy. */
  analyze(text: string): Promise<{ id: string; score: number }>;
  /** Calls the downstream service through the bulkhead and the breaker. */
  score(text: string, options?: { timeoutMs?: number }): Promise<number>;
  /** `GET/POST /api/analyses`, `GET /api/analyses/:id`; `next()` for other paths. */
  handle(req: IncomingMessage, res: ServerResponse, next: () => void): void;
  /** Serves one WebSocket: `{type:"analyze",text}` streams progress with the ack protocol, then the result, then closes. */
  serve(ws: WebSocket): void;
}

/** Why new work is refused right now (load shedding, rate limit), or undefined to accept it. */
export type WorkRefusal = { readonly status: 'overloaded' | 'rate_limited'; readonly detail: string; readonly retryAfterSec: number };

/** Options for {@link createAnalysisService}. */
export interface AnalysisServiceOptions {
  readonly logger?: Logger;
  /** Asked before each unit of WebSocket work: the same shedding and rate limit as the HTTP API. */
  readonly admitWork?: () => WorkRefusal | undefined;
  /** A fresh per-socket message budget; a socket that overspends it is closed with 1008. */
  readonly messageBudget?: () => MessageBudget;
}

const MAX_TEXT = 10_000;
/** The downstream gets at most this many UTF-16 units of the text (never half a surrogate pair). */
const DOWNSTREAM_TEXT = 200;

function validText(body: unknown): string {
  if (typeof body !== 'object' || body === null || Array.isArray(body)) throw httpError(400, 'Invalid body', 'body must be a JSON object', 'body');
  const { text, ...rest } = body as Record<string, unknown>;
  const unknown = Object.keys(rest)[0];
  if (unknown !== undefined) throw httpError(400, 'Unknown field', `unknown field "${unknown}"`, unknown);
  return wellFormedText(text, 'text', MAX_TEXT);
}

/** Per-socket state, kept apart from the socket so the app-bus listener does not hold the socket alive. */
interface SocketState {
  /** Messages sent with an id and not acked yet: their acks are free of the message budget. */
  owed: number;
  busy: boolean;
}

/** Creates the service over the guard's database, breaker, bulkhead, batch writer, contexts and app bus. */
export function createAnalysisService(guard: Guard, downstreamPort: () => number, options: AnalysisServiceOptions = {}): AnalysisService {
  const logger = options.logger ?? silentLogger;
  const policy = { breaker: guard.downstreamBreaker, bulkhead: guard.bulkhead };

  async function score(text: string, scoreOptions: { timeoutMs?: number } = {}): Promise<number> {
    const timeoutMs = scoreOptions.timeoutMs ?? 1_000;
    const call = (signal: AbortSignal | undefined) =>
      policy.bulkhead.execute(async () => {
        const res = await fetch(`http://127.0.0.1:${downstreamPort()}/score?text=${encodeURIComponent(truncateText(text, DOWNSTREAM_TEXT))}`, { signal });
        if (!res.ok) {
          await res.body?.cancel();
          throw new DownstreamStatusError(res.status);
        }
        return ((await res.json()) as { score: number }).score;
      });
    // The breaker follows the guard's mode for `circuit`: outside full it counts and opens (the detection) but a call
    // it would refuse still goes to the downstream, so detect and dry_run never change behaviour.
    return guard.node.protect(policy.breaker, call, { timeoutMs });
  }

  async function analyze(text: string): Promise<{ id: string; score: number }> {
    return guard.contexts.run('analysis', async (span) => {
      const id = createId('an');
      let ok = false;
      try {
        await guard.db.insertInto('analyses').values({ id, text, status: 'running', score: null, created_at: Date.now(), finished_at: null }).execute();
        let value: number;
        try {
          value = await score(text);
        } catch (error) {
          // Best effort: the row stays 'running' when the database is gone too; the caller gets the downstream's error.
          await guard.db.updateTable('analyses').set({ status: 'failed', finished_at: Date.now() }).where('id', '=', id).execute()
            .catch((dbError: unknown) => logger.warn({ err: dbError, id }, 'could not mark the analysis failed'));
          throw error;
        }
        await guard.db.updateTable('analyses').set({ status: 'done', score: value, finished_at: Date.now() }).where('id', '=', id).execute();
        guard.batch.add({ analysisId: id, score: value, at: Date.now() });
        guard.appBus.emit('analysis.finished', { id, score: value });
        ok = true;
        return { id, score: value };
      } finally {
        span.close(ok ? 'ok' : 'error');
      }
    });
  }

  /** Answers an error: the caller's mistakes as 4xx, a lost dependency as 503 + Retry-After, anything else as a logged 500. */
  function fail(req: IncomingMessage, res: ServerResponse, error: unknown): void {
    if (res.headersSent) return void res.destroy();
    // Named fields only: a spread object could overwrite the logger's own (level, time, msg, pid, hostname).
    const method = req.method;
    const path = (req.url ?? '').split('?')[0];
    if (isGuardError(error, 'CIRCUIT_OPEN') || isGuardError(error, 'BULKHEAD_REJECTED')) {
      // Deliberate fail-fast: the cause was logged when the breaker opened; warn so floods stay readable.
      logger.warn({ err: error, method, path }, 'downstream refused fast');
      return sendProblem(res, { status: 503, title: 'Downstream unavailable', detail: error.message, code: error.code }, { 'retry-after': '2' });
    }
    if (isGuardError(error, 'TIMEOUT')) {
      logger.error({ err: error, method, path }, 'downstream timed out');
      return sendProblem(res, { status: 503, title: 'Downstream timed out', detail: error.message, code: error.code }, { 'retry-after': '2' });
    }
    if (isDatabaseUnavailable(error)) {
      logger.error({ err: error, method, path }, 'database unavailable');
      return sendProblem(res, { status: 503, title: 'Database unavailable', detail: 'the database is unreachable or too slow; retry shortly', code: 'DATABASE_UNAVAILABLE' }, { 'retry-after': '2' });
    }
    const problem = problemFromError(error);
    if (problem.status >= 500) logger.error({ err: error, method, path }, 'analysis request failed');
    sendProblem(res, problem);
  }

  function handle(req: IncomingMessage, res: ServerResponse, next: () => void): void {
    const url = new URL(req.url ?? '/', 'http://demo');
    if (url.pathname === '/api/analyses') {
      if (req.method === 'POST') {
        readJsonBody(req, { limitBytes: 16 * 1024 })
          .then((body) => analyze(validText(body)))
          .then((result) => sendJson(res, 201, result), (error) => fail(req, res, error));
        return;
      }
      if (req.method === 'GET') {
        const raw = url.searchParams.get('limit') ?? '20';
        const limit = /^\d{1,3}$/.test(raw) ? Number(raw) : NaN;
        if (!Number.isInteger(limit) || limit < 1 || limit > 100) {
          return sendProblem(res, { status: 400, title: 'Invalid query', detail: 'limit must be an integer from 1 to 100', field: 'limit' });
        }
        guard.db.selectFrom('analyses').selectAll().orderBy('created_at', 'desc').limit(limit).execute()
          .then((rows) => sendJson(res, 200, { analyses: rows }), (error) => fail(req, res, error));
        return;
      }
      return sendProblem(res, { status: 405, title: 'Method not allowed', detail: 'use GET or POST' }, { allow: 'GET, POST' });
    }
    const match = /^\/api\/analyses\/([\w-]{1,64})$/.exec(url.pathname);
    if (match) {
      if (req.method !== 'GET') return sendProblem(res, { status: 405, title: 'Method not allowed', detail: 'use GET' }, { allow: 'GET' });
      guard.db.selectFrom('analyses').selectAll().where('id', '=', match[1]!).executeTakeFirst().then(
        (row) => (row ? sendJson(res, 200, row) : sendProblem(res, { status: 404, title: 'Not found', detail: `no analysis ${match[1]}`, field: 'id' })),
        (error) => fail(req, res, error),
      );
      return;
    }
    if (url.pathname.startsWith('/api/analyses/')) return sendProblem(res, { status: 404, title: 'Not found', detail: 'analysis ids are 1 to 64 letters, digits, _ or -', field: 'id' });
    next();
  }

  /** Sends through the C1 tracker (ack protocol); a socket that is not open, or a tracker that closed, drops the message. */
  function sendTo(ws: WebSocket, state: SocketState, message: Readonly<Record<string, unknown>>): void {
    if (ws.readyState !== ws.OPEN) return;
    try {
      guard.sockets.send(ws, message);
      state.owed++;
    } catch (error) {
      logger.warn({ err: error }, 'websocket send failed');
    }
  }

  function serve(ws: WebSocket): void {
    const state: SocketState = { owed: 0, busy: false };
    const budget = options.messageBudget?.();
    // Notify this client of every finished analysis while it is connected. The listener is owned by the socket and
    // holds it only weakly, so C2 knows it is alive while the socket is, and stale if the socket is ever collected.
    const socket = new WeakRef(ws);
    const off = guard.emitters.on(
      guard.appBus,
      'analysis.finished',
      (event: unknown) => {
        const target = socket.deref();
        if (target) sendTo(target, state, { type: 'analysis_finished', event });
      },
      { owner: ws },
    );
    ws.once('close', off);
    const reply = (message: Readonly<Record<string, unknown>>) => sendTo(ws, state, message);
    reply({ type: 'welcome', protocol: 'ack each message with {"type":"ack","id":...}' });
    ws.on('message', (data, isBinary) => {
      let message: unknown;
      try {
        message = isBinary ? undefined : JSON.parse(String(data));
      } catch {
        message = undefined;
      }
      const isObject = typeof message === 'object' && message !== null && !Array.isArray(message);
      const { type, text } = (isObject ? message : {}) as { type?: unknown; text?: unknown };
      if (type === 'ack' && state.owed > 0) {
        state.owed--;
        return;
      }
      if (budget && !budget.take()) return void ws.close(1008, 'message rate exceeded');
      if (!isObject) return reply({ type: 'error', status: 'error', error: isBinary ? 'binary frames are not supported' : 'message must be a JSON object' });
      if (type === 'ack') return;
      if (type !== 'analyze') return reply({ type: 'error', status: 'error', error: 'type must be "analyze" or "ack"', field: 'type' });
      let valid: string;
      try {
        valid = wellFormedText(text, 'text', MAX_TEXT);
      } catch (error) {
        return reply({ type: 'error', status: 'error', error: (error as Error).message, field: 'text' });
      }
      if (state.busy) return reply({ type: 'error', status: 'busy', error: 'one analysis per connection at a time' });
      const refusal = options.admitWork?.();
      if (refusal) return reply({ type: 'error', status: refusal.status, error: refusal.detail, retryAfterSec: refusal.retryAfterSec });
      state.busy = true;
      void (async () => {
        for (const percent of [25, 50, 75]) reply({ type: 'progress_update', percent });
        try {
          const result = await analyze(valid);
          reply({ type: 'result', ...result });
        } catch (error) {
          const status = isGuardError(error, 'CIRCUIT_OPEN') ? 'circuit_open' : isGuardError(error, 'TIMEOUT') ? 'timeout' : isDatabaseUnavailable(error) ? 'unavailable' : 'error';
          if (status === 'error') logger.error({ err: error }, 'websocket analysis failed');
          reply({ type: 'error', status, error: status === 'error' ? 'internal error' : (error as Error).message });
        }
        if (ws.readyState === ws.OPEN) ws.close(1000, 'done');
      })();
    });
  }

  return { analyze, score, handle, serve };
}
