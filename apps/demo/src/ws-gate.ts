import { STATUS_CODES, type IncomingMessage } from 'node:http';
import type { Duplex } from 'node:stream';
import { envReader, type Env, type Logger } from '@guard/core';
import type { WebSocket, WebSocketServer } from 'ws';

/** Bounds on the demo's WebSocket server. */
export interface WebSocketLimits {
  /** Open sockets at most; the next upgrade is refused with 503 + Retry-After (`WS_MAX_CONNECTIONS`, default 5000). */
  readonly maxConnections: number;
  /** Sustained messages per second per socket; a socket over its budget is closed with 1008 (`WS_MAX_MESSAGES_PER_SEC`, default 20). */
  readonly maxMessagesPerSec: number;
  /** Messages a socket may send at once before the rate applies (`WS_MESSAGE_BURST`, default 40). */
  readonly messageBurst: number;
  /** Largest frame; a bigger one closes the socket with 1009 (`WS_MAX_PAYLOAD_BYTES`, default 64 KiB). */
  readonly maxPayloadBytes: number;
}

/** Reads {@link WebSocketLimits} from the environment. */
export function webSocketLimitsFromEnv(env: Env): WebSocketLimits {
  const read = envReader(env);
  return {
    maxConnections: read.number('WS_MAX_CONNECTIONS', 5_000, { min: 1, integer: true }),
    maxMessagesPerSec: read.number('WS_MAX_MESSAGES_PER_SEC', 20, { min: 0.1 }),
    messageBurst: read.number('WS_MESSAGE_BURST', 40, { min: 1, integer: true }),
    maxPayloadBytes: read.number('WS_MAX_PAYLOAD_BYTES', 64 * 1024, { min: 1_024, integer: true }),
  };
}

/** Answers an upgrade request with a problem+json status and closes the connection (no WebSocket was made). */
export function refuseUpgrade(socket: Duplex, status: number, title: string, detail: string, headers: Record<string, string> = {}): void {
  const body = JSON.stringify({ type: 'about:blank', status, title, detail });
  const extra = Object.entries(headers).map(([name, value]) => `${name}: ${value}\r\n`).join('');
  socket.end(
    `HTTP/1.1 ${status} ${STATUS_CODES[status] ?? ''}\r\nConnection: close\r\n${extra}Content-Type: application/problem+json\r\nContent-Length: ${Buffer.byteLength(body)}\r\n\r\n${body}`,
  );
}

/** A token bucket: `take()` is false once the socket has spent its burst faster than the rate refills it. */
export class MessageBudget {
  #tokens: number;
  #last: number;
  readonly #ratePerMs: number;
  readonly #burst: number;

  constructor(ratePerSec: number, burst: number, now = Date.now()) {
    this.#ratePerMs = ratePerSec / 1_000;
    this.#burst = burst;
    this.#tokens = burst;
    this.#last = now;
  }

  take(now = Date.now()): boolean {
    this.#tokens = Math.min(this.#burst, this.#tokens + (now - this.#last) * this.#ratePerMs);
    this.#last = now;
    if (this.#tokens < 1) return false;
    this.#tokens -= 1;
    return true;
  }
}

/**
 * The door of the WebSocket server: refuses upgrades past the connection cap, and gives every accepted socket an
 * 'error' listener before any frame is read, so an oversized frame (1009), invalid UTF-8 (1007) or a protocol
 * violation (1002) closes that one socket (ws sends the close code itself) instead of ending the process.
 */
export class WebSocketGate {
  readonly limits: WebSocketLimits;
  readonly #wss: WebSocketServer;
  readonly #logger: Logger;
  #refused = 0;
  #errors = 0;

  constructor(wss: WebSocketServer, limits: WebSocketLimits, logger: Logger) {
    this.#wss = wss;
    this.limits = limits;
    this.#logger = logger;
  }

  /** Upgrades refused at the cap, and sockets closed on an error, since start. */
  get stats(): { refused: number; errors: number; open: number } {
    return { refused: this.#refused, errors: this.#errors, open: this.#wss.clients.size };
  }

  /**
   * Call first in the server's 'upgrade' handler. Node removes its own error listener from an upgraded socket, so
   * one is added here; returns false after answering 404 (not `path`) or 503 (the server is full).
   */
  admitUpgrade(req: IncomingMessage, socket: Duplex, path: string): boolean {
    socket.on('error', () => socket.destroy());
    if ((req.url ?? '').split('?')[0] !== path) {
      refuseUpgrade(socket, 404, 'Not found', `WebSocket connections are served at ${path}`);
      return false;
    }
    if (this.#wss.clients.size < this.limits.maxConnections) return true;
    this.#refused++;
    refuseUpgrade(socket, 503, 'Too many connections', `at most ${this.limits.maxConnections} WebSocket connections are served`, { 'Retry-After': '5' });
    return false;
  }

  /** Call first in the 'connection' handler: logs the socket's first error and makes sure it ends. */
  watch(ws: WebSocket): void {
    ws.once('error', (error: Error & { code?: string }) => {
      this.#errors++;
      this.#logger.warn({ err: error, code: error.code }, 'websocket error; closing that socket');
      // ws already started the close with the matching code (1009, 1007, 1002); a socket error needs terminate.
      if (ws.readyState === ws.OPEN) ws.close(1011, 'error');
      else if (ws.readyState !== ws.CLOSED) setTimeout(() => ws.terminate(), 1_000).unref();
      ws.on('error', () => {}); // later errors of a closing socket are expected: logged once above
    });
  }

  /** A fresh message budget for one socket. */
  budget(): MessageBudget {
    return new MessageBudget(this.limits.maxMessagesPerSec, this.limits.messageBurst);
  }
}
