import type { IncomingMessage, ServerResponse } from 'node:http';
import { createId, httpError, problemFromError, readJsonBody, sendJson, sendProblem, isGuardError } from '@guard/core';
import type { WebSocket } from 'ws';
import type { Guard } from './guard.js';

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

const MAX_TEXT = 10_000;

function validText(body: unknown): string {
  if (typeof body !== 'object' || body === null || Array.isArray(body)) throw httpError(400, 'Invalid body', 'body must be a JSON object', 'body');
  const { text, ...rest } = body as Record<string, unknown>;
  const unknown = Object.keys(rest)[0];
  if (unknown !== undefined) throw httpError(400, 'Unknown field', `unknown field "${unknown}"`, unknown);
  if (typeof text !== 'string' || text.length === 0 || text.length > MAX_TEXT) {
    throw httpError(400, 'Invalid field', `text must be a string of 1 to ${MAX_TEXT} characters`, 'text');
  }
  return text;
}

/** Creates the service over the guard's database, breaker, bulkhead, batch writer, contexts and app bus. */
export function createAnalysisService(guard: Guard, downstreamPort: () => number): AnalysisService {
  const policy = { breaker: guard.downstreamBreaker, bulkhead: guard.bulkhead };

  async function score(text: string, options: { timeoutMs?: number } = {}): Promise<number> {
    return policy.breaker.execute(
      (signal) =>
        policy.bulkhead.execute(async () => {
          const res = await fetch(`http://127.0.0.1:${downstreamPort()}/score?text=${encodeURIComponent(text.slice(0, 200))}`, { signal });
          if (!res.ok) throw new Error(`downstream answered ${res.status}`);
          return ((await res.json()) as { score: number }).score;
        }),
      { timeoutMs: options.timeoutMs ?? 1_000 },
    );
  }

  async function analyze(text: string): Promise<{ id: string; score: number }> {
    return guard.contexts.run('analysis', async (span) => {
      const id = createId('an');
      const now = Date.now();
      await guard.db.insertInto('analyses').values({ id, text, status: 'running', score: null, created_at: now, finished_at: null }).execute();
      try {
        const value = await score(text);
        await guard.db.updateTable('analyses').set({ status: 'done', score: value, finished_at: Date.now() }).where('id', '=', id).execute();
        guard.batch.add({ analysisId: id, score: value, at: Date.now() });
        guard.appBus.emit('analysis.finished', { id, score: value });
        span.close('ok');
        return { id, score: value };
      } catch (error) {
        await guard.db.updateTable('analyses').set({ status: 'failed', finished_at: Date.now() }).where('id', '=', id).execute();
        span.close('error');
        throw error;
      }
    });
  }

  function fail(res: ServerResponse, error: unknown): void {
    if (isGuardError(error, 'CIRCUIT_OPEN') || isGuardError(error, 'BULKHEAD_REJECTED')) {
      return sendProblem(res, { status: 503, title: 'Downstream unavailable', detail: error.message, code: error.code }, { 'retry-after': '2' });
    }
    if (isGuardError(error, 'TIMEOUT')) return sendProblem(res, { status: 504, title: 'Downstream timed out', detail: error.message, code: error.code });
    sendProblem(res, problemFromError(error));
  }

  function handle(req: IncomingMessage, res: ServerResponse, next: () => void): void {
    const url = new URL(req.url ?? '/', 'http://demo');
    if (url.pathname === '/api/analyses') {
      if (req.method === 'POST') {
        readJsonBody(req, { limitBytes: 16 * 1024 })
          .then((body) => analyze(validText(body)))
          .then((result) => sendJson(res, 201, result), (error) => fail(res, error));
        return;
      }
      if (req.method === 'GET') {
        const raw = url.searchParams.get('limit') ?? '20';
        const limit = Number(raw);
        if (!Number.isInteger(limit) || limit < 1 || limit > 100) {
          return sendProblem(res, { status: 400, title: 'Invalid query', detail: 'limit must be an integer from 1 to 100', field: 'limit' });
        }
        guard.db.selectFrom('analyses').selectAll().orderBy('created_at', 'desc').limit(limit).execute()
          .then((rows) => sendJson(res, 200, { analyses: rows }), (error) => fail(res, error));
        return;
      }
      return sendProblem(res, { status: 405, title: 'Method not allowed', detail: 'use GET or POST' }, { allow: 'GET, POST' });
    }
    const match = /^\/api\/analyses\/([\w-]{1,64})$/.exec(url.pathname);
    if (match) {
      if (req.method !== 'GET') return sendProblem(res, { status: 405, title: 'Method not allowed', detail: 'use GET' }, { allow: 'GET' });
      guard.db.selectFrom('analyses').selectAll().where('id', '=', match[1]!).executeTakeFirst().then(
        (row) => (row ? sendJson(res, 200, row) : sendProblem(res, { status: 404, title: 'Not found', detail: `no analysis ${match[1]}`, field: 'id' })),
        (error) => fail(res, error),
      );
      return;
    }
    next();
  }

  function serve(ws: WebSocket): void {
    // Notify this client of every finished analysis while it is connected; the listener leaves with the socket.
    const off = guard.emitters.on(guard.appBus, 'analysis.finished', (event: unknown) => {
      if (ws.readyState === ws.OPEN) guard.sockets.send(ws, { type: 'analysis_finished', event });
    });
    ws.once('close', off);
    guard.sockets.send(ws, { type: 'welcome', protocol: 'ack each message with {"type":"ack","id":...}' });
    ws.on('message', (data) => {
      let message: { type?: unknown; text?: unknown };
      try {
        message = JSON.parse(String(data)) as typeof message;
      } catch {
        return guard.sockets.send(ws, { type: 'error', status: 'error', error: 'malformed JSON' });
      }
      if (message.type !== 'analyze') return;
      if (typeof message.text !== 'string' || message.text.length === 0 || message.text.length > MAX_TEXT) {
        return guard.sockets.send(ws, { type: 'error', status: 'error', error: 'text must be a non-empty string' });
      }
      const text = message.text;
      void (async () => {
        for (const percent of [25, 50, 75]) guard.sockets.send(ws, { type: 'progress_update', percent });
        try {
          const result = await analyze(text);
          guard.sockets.send(ws, { type: 'result', ...result });
        } catch (error) {
          const status = isGuardError(error, 'CIRCUIT_OPEN') ? 'circuit_open' : isGuardError(error, 'TIMEOUT') ? 'timeout' : 'error';
          guard.sockets.send(ws, { type: 'error', status, error: (error as Error).message });
        }
        ws.close(1000, 'done');
      })();
    });
  }

  return { analyze, score, handle, serve };
}
