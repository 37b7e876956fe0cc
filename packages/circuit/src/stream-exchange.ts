import type { Logger } from '@guard/core';
import { WebSocket } from 'ws';
import type { PooledSocket, SocketPool } from './socket-pool.js';
import { NON_TERMINAL_TYPES, parseStreamMessage } from './stream-message.js';
import type { StreamMessage } from './stream-message.js';

/** The socket closed before the terminal message. */
export class ConnectionClosed extends Error {
  readonly beforeAnyMessage: boolean;
  constructor(code: number, beforeAnyMessage: boolean) {
    super(`connection closed (${code}) before the terminal message`);
    this.beforeAnyMessage = beforeAnyMessage;
  }
}

/** What one request of the streaming protocol needs besides its socket. */
export interface StreamRequest {
  readonly payload: string;
  readonly signal: AbortSignal;
  readonly taskId: string | undefined;
  readonly onProgress: ((message: StreamMessage) => void) | undefined;
  readonly logger: Logger;
}

/**
 * Runs one request of the streaming protocol on a pooled socket of `url`: sends the payload, hands
 * `progress_update`s to `onProgress`, answers `ping` with `pong`, and resolves with the first terminal message.
 * A reused socket that the server closed before answering is retried once on a fresh one (servers using the
 * streaming helper close after every terminal message). A cancelled request sends `{ type: 'cancel', taskId }`;
 * a cancelled or failed socket is closed, never reused.
 *
 * @example
 * const reply = await streamExchange(sockets, 'ws://analyzer:8080', { payload, signal, taskId, onProgress, logger });
 */
export async function streamExchange(sockets: SocketPool, url: string, request: StreamRequest): Promise<StreamMessage> {
  const { signal, taskId } = request;
  for (let attempt = 0; ; attempt++) {
    const { socket, reused } = await sockets.acquire(url, signal);
    try {
      const reply = await exchangeOn(socket, request);
      sockets.release(socket);
      return reply;
    } catch (error) {
      if (signal.aborted && socket.ws.readyState === WebSocket.OPEN) {
        try {
          socket.ws.send(JSON.stringify({ type: 'cancel', taskId }));
        } catch {
          // the socket is being closed anyway
        }
      }
      void sockets.destroy(socket, signal.aborted ? 'cancelled' : 'failed');
      if (reused && attempt === 0 && error instanceof ConnectionClosed && error.beforeAnyMessage) continue;
      throw error;
    }
  }
}

/** Sends the payload and settles on the terminal message, the socket's end, or the signal. */
function exchangeOn(socket: PooledSocket, request: StreamRequest): Promise<StreamMessage> {
  const { payload, signal, taskId, onProgress, logger } = request;
  return new Promise<StreamMessage>((resolve, reject) => {
    let received = false;
    const done = () => {
      socket.exchange = undefined;
      signal.removeEventListener('abort', onAbort);
    };
    const onAbort = () => {
      done();
      reject(signal.reason);
    };
    const failed = (error: Error) => {
      done();
      reject(error);
    };
    signal.addEventListener('abort', onAbort, { once: true });
    socket.exchange = {
      frame: (data) => {
        const message = parseStreamMessage(data);
        if (message === undefined) {
          failed(new Error('the server sent a frame that is not a JSON message with a "type"'));
          return;
        }
        received = true;
        if (message.type === 'progress_update') {
          try {
            onProgress?.(message);
          } catch (error) {
            logger.warn({ err: error }, 'onProgress threw');
          }
        } else if (message.type === 'ping') {
          socket.ws.send(JSON.stringify({ type: 'pong', taskId }));
        } else if (!NON_TERMINAL_TYPES.has(message.type)) {
          done();
          resolve(message);
        }
      },
      closed: (code) => {
        done();
        reject(new ConnectionClosed(code, !received));
      },
      failed,
    };
    socket.ws.send(payload, (error) => {
      if (error && socket.exchange !== undefined) socket.exchange.failed(error);
    });
  });
}
