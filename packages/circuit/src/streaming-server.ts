import { GuardError, assertNumberOption, silentLogger } from '@guard/core';
import type { Logger } from '@guard/core';
import type { RawData, WebSocket, WebSocketServer } from 'ws';
import { NON_TERMINAL_TYPES, parseStreamMessage } from './stream-message.js';
import type { StreamMessage } from './stream-message.js';

/** What a {@link StreamingHandler} gets besides the request. */
export interface StreamingContext {
  /** The request's `taskId`, when it had one. */
  readonly taskId: string | undefined;
  /** Aborted when the client sends `{ type: 'cancel' }` for this request or disconnects, or the helper closes. */
  readonly signal: AbortSignal;
  /** Sends `{ type: 'progress_update', taskId, ...update }`; the connection stays open. */
  progress(update?: Record<string, unknown>): void;
  /** Sends a non-terminal message (ping, health_check, progress_update, ack). */
  send(message: StreamMessage): void;
}

/**
 * Handles one request. Its return value is the terminal message (`{ type: 'result', ... }` is added when it has
 * no `type`); a throw becomes `{ type: 'error', status: 'error' | 'cancelled', error }`.
 */
export type StreamingHandler = (request: StreamMessage, context: StreamingContext) => unknown;

/**
 * Options of {@link attachStreamingServer}.
 *
 * @example
 * attachStreamingServer(wss, handler, { heartbeatMs: 15_000 });
 */
export interface StreamingServerOptions {
  /** Close the connection with 1000 after the terminal message (when no other request runs on it); default true. */
  readonly closeAfterTerminal?: boolean;
  /** Sends `{ type: 'ping' }` this often while a request runs, so proxies keep the socket; 0 (default) = off. */
  readonly heartbeatMs?: number;
  readonly logger?: Logger;
}

/** A streaming helper attached to a `ws` server. */
export interface StreamingServer extends AsyncDisposable {
  /** Requests running now. */
  readonly running: number;
  /** Stops taking connections, aborts running handlers and closes their connections (1001). Safe to call twice. */
  close(): Promise<void>;
}

function errorText(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}

/**
 * The server side of the streaming protocol for a `ws` server: answers `ping` (with `pong`) and `health_check`,
 * streams `progress_update`s while the handler runs, and closes the connection (1000) only after the terminal
 * message. A `{ type: 'cancel', taskId }` aborts that request's signal.
 *
 * @example
 * const wss = new WebSocketServer({ port: 8080 });
 * await using streaming = attachStreamingServer(wss, async (request, { progress, signal }) => {
 *   for (let step = 1; step <= 3; step++) { await work(step, signal); progress({ step }); }
 *   return { type: 'result', data: 'done' };
 * });
 */
export function attachStreamingServer(
  wss: WebSocketServer,
  handler: StreamingHandler,
  options: StreamingServerOptions = {},
): StreamingServer {
  const { closeAfterTerminal = true, heartbeatMs = 0, logger = silentLogger } = options;
  if (typeof handler !== 'function') throw new GuardError('INVALID_OPTION', 'handler must be a function', { details: { field: 'handler' } });
  assertNumberOption('heartbeatMs', heartbeatMs, { min: 0, max: 2_147_483_647 });
  const connections = new Set<WebSocket>();
  const requests = new Set<AbortController>();
  let closed = false;

  const send = (ws: WebSocket, message: unknown, then?: () => void) => {
    if (ws.readyState !== ws.OPEN) return;
    ws.send(JSON.stringify(message), (error) => {
      if (error) logger.warn({ err: error }, 'streaming send failed');
      then?.();
    });
  };

  const onConnection = (ws: WebSocket) => {
    if (closed) {
      ws.close(1001, 'server closing');
      return;
    }
    connections.add(ws);
    const running = new Map<string | undefined, AbortController>();
    let inflight = 0;
    const finish = () => {
      if (closeAfterTerminal && inflight === 0 && ws.readyState === ws.OPEN) ws.close(1000, 'done');
    };

    ws.on('error', (error) => logger.warn({ err: error }, 'streaming connection error'));
    ws.on('close', () => {
      connections.delete(ws);
      for (const controller of running.values()) controller.abort(new GuardError('ABORTED', 'client disconnected'));
    });
    ws.on('message', (data: RawData) => {
      if (ws.readyState !== ws.OPEN) return; // closing after a terminal message: the client retries elsewhere
      const message = parseStreamMessage(data);
      if (message === undefined) {
        send(ws, { type: 'error', status: 'error', error: 'expected a JSON object with a string "type"' }, () => {
          if (inflight === 0) ws.close(1007, 'invalid message');
        });
        return;
      }
      if (message.type === 'ping') return send(ws, { type: 'pong', taskId: message.taskId });
      if (message.type === 'health_check') return send(ws, { type: 'health_check', status: 'ok', running: inflight });
      if (message.type === 'cancel') {
        running.get(message.taskId)?.abort(new GuardError('ABORTED', 'cancelled by the client'));
        return;
      }
      if (NON_TERMINAL_TYPES.has(message.type)) return; // pong, ack, stray progress: nothing to do
      void run(message);
    });

    const run = async (request: StreamMessage) => {
      const taskId = typeof request.taskId === 'string' ? request.taskId : undefined;
      const controller = new AbortController();
      running.set(taskId, controller);
      requests.add(controller);
      inflight++;
      const heartbeat = heartbeatMs > 0 ? setInterval(() => send(ws, { type: 'ping', taskId }), heartbeatMs) : undefined;
      heartbeat?.unref();
      const context: StreamingContext = {
        taskId,
        signal: controller.signal,
        progress: (update = {}) => send(ws, { ...update, type: 'progress_update', taskId }),
        send: (message) => {
          if (!NON_TERMINAL_TYPES.has(message.type)) {
            throw new GuardError('INVALID_INPUT', `send() takes non-terminal messages; return "${message.type}" from the handler instead`, {
              details: { field: 'type' },
            });
          }
          send(ws, message);
        },
      };
      let terminal: Record<string, unknown>;
      try {
        const result = await handler(request, context);
        const body = typeof result === 'object' && result !== null && !Array.isArray(result) ? (result as Record<string, unknown>) : { data: result };
        terminal = typeof body.type === 'string' && !NON_TERMINAL_TYPES.has(body.type) ? body : { ...body, type: 'result' };
      } catch (error) {
        terminal = { type: 'error', status: controller.signal.aborted ? 'cancelled' : 'error', error: errorText(error) };
      } finally {
        if (heartbeat !== undefined) clearInterval(heartbeat);
        if (running.get(taskId) === controller) running.delete(taskId);
        requests.delete(controller);
        inflight--;
      }
      if (taskId !== undefined && terminal.taskId === undefined) terminal = { ...terminal, taskId };
      send(ws, terminal, finish);
    };
  };

  wss.on('connection', onConnection);
  let closing: Promise<void> | undefined;
  return {
    get running() {
      return requests.size;
    },
    close() {
      closing ??= (async () => {
        closed = true;
        wss.off('connection', onConnection);
        for (const controller of requests) controller.abort(new GuardError('CLOSED', 'streaming server closed'));
        await Promise.all(
          Array.from(connections, (ws) => {
            if (ws.readyState === ws.CLOSED) return undefined;
            return new Promise<void>((resolve) => {
              ws.once('close', () => resolve());
              ws.close(1001, 'server closing');
              setTimeout(() => {
                ws.terminate();
              }, 1_000).unref();
            });
          }),
        );
      })();
      return closing;
    },
    [Symbol.asyncDispose]() {
      return this.close();
    },
  };
}
