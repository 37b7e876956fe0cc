import { GuardError } from '@guard/core';
import { WebSocket } from 'ws';
import type { ClientOptions, RawData } from 'ws';

/** What a socket's frames and end go to while one exchange runs on it (none while idle or leased). */
export interface SocketExchange {
  frame(data: RawData): void;
  closed(code: number): void;
  failed(error: Error): void;
}

/** One pooled socket. */
export class PooledSocket {
  readonly ws: WebSocket;
  readonly url: string;
  exchange: SocketExchange | undefined;
  idleTimer: NodeJS.Timeout | undefined;
  state: 'connecting' | 'active' | 'idle' | 'closed' = 'connecting';
  evicted = false;

  constructor(ws: WebSocket, url: string) {
    this.ws = ws;
    this.url = url;
  }
}

interface Waiter {
  readonly url: string;
  resolve(socket: PooledSocket | undefined): void;
  reject(error: unknown): void;
  done: boolean;
}

/** Options of {@link SocketPool} (validated by the `ConnectionPool`). */
export interface SocketPoolOptions {
  readonly maxConcurrentConnections: number;
  readonly connectionTimeoutMs: number;
  readonly idleTimeoutMs: number;
  readonly clientOptions: ClientOptions | undefined;
}

/** Socket counts by state. */
export interface SocketCounts {
  readonly active: number;
  readonly idle: number;
  readonly connecting: number;
  readonly open: number;
  readonly waiting: number;
}

/**
 * WebSocket clients by URL under one limit: a semaphore on open sockets (connecting, busy and idle together), reuse
 * per URL (LIFO), a FIFO queue of waiters, eviction of other URLs' idle sockets when only that frees a slot, and
 * connection and idle timeouts. It knows no protocol: frames go to the socket's current {@link SocketExchange}.
 *
 * @example
 * const sockets = new SocketPool({ maxConcurrentConnections: 8, connectionTimeoutMs: 5_000, idleTimeoutMs: 60_000, clientOptions: undefined });
 * const { socket } = await sockets.acquire('ws://127.0.0.1:8080', signal);
 * sockets.release(socket);
 */
export class SocketPool {
  readonly #options: SocketPoolOptions;
  readonly #idle = new Map<string, PooledSocket[]>();
  readonly #all = new Set<PooledSocket>();
  readonly #waiters: Waiter[] = [];
  #open = 0;
  #active = 0;
  #connecting = 0;
  #evicting = 0;
  #closing = false;

  constructor(options: SocketPoolOptions) {
    this.#options = options;
  }

  counts(): SocketCounts {
    let idle = 0;
    for (const list of this.#idle.values()) idle += list.length;
    return { active: this.#active, idle, connecting: this.#connecting, open: this.#open, waiting: this.#waiters.length };
  }

  /** A socket for `url`, marked active: an idle one (`reused`), a new one within the limit, or the next one freed (FIFO). */
  async acquire(url: string, signal: AbortSignal): Promise<{ socket: PooledSocket; reused: boolean }> {
    const socket = await this.#take(url, signal);
    const reused = socket.state === 'idle';
    socket.state = 'active';
    this.#active++;
    return { socket, reused };
  }

  async #take(url: string, signal: AbortSignal): Promise<PooledSocket> {
    signal.throwIfAborted();
    const idle = this.#takeIdle(url);
    if (idle !== undefined) return idle;
    if (this.#open < this.#options.maxConcurrentConnections && this.#waiters.length === 0) {
      this.#open++;
      return this.#connect(url, signal);
    }
    const granted = await this.#wait(url, signal);
    if (granted !== undefined) return granted;
    this.#open++;
    return this.#connect(url, signal);
  }

  #wait(url: string, signal: AbortSignal): Promise<PooledSocket | undefined> {
    return new Promise((resolve, reject) => {
      const onAbort = () => {
        if (waiter.done) return;
        waiter.done = true;
        const at = this.#waiters.indexOf(waiter);
        if (at >= 0) this.#waiters.splice(at, 1);
        reject(signal.reason);
      };
      const waiter: Waiter = {
        url,
        done: false,
        resolve: (socket) => {
          waiter.done = true;
          signal.removeEventListener('abort', onAbort);
          resolve(socket);
        },
        reject: (error) => {
          waiter.done = true;
          signal.removeEventListener('abort', onAbort);
          reject(error);
        },
      };
      signal.addEventListener('abort', onAbort, { once: true });
      this.#waiters.push(waiter);
      this.#pump();
    });
  }

  /** Hands freed sockets and slots to waiters, in order; evicts idle sockets of other URLs when that is the only way. */
  #pump(): void {
    const waiters = this.#waiters;
    while (waiters.length > 0) {
      const waiter = waiters[0]!;
      const idle = this.#takeIdle(waiter.url);
      if (idle !== undefined) {
        waiters.shift();
        waiter.resolve(idle);
        continue;
      }
      if (this.#open < this.#options.maxConcurrentConnections) {
        waiters.shift();
        waiter.resolve(undefined); // a slot: the waiter opens its own socket
        continue;
      }
      break;
    }
    // Make room: close idle sockets (of any URL) for waiters that no idle socket can serve.
    let needed = waiters.length - this.#evicting;
    if (needed <= 0) return;
    for (const list of this.#idle.values()) {
      while (needed > 0 && list.length > 0) {
        const victim = list.pop()!;
        this.#evicting++;
        needed--;
        this.#close(victim, 1000, 'evicted');
      }
      if (needed <= 0) break;
    }
  }

  #takeIdle(url: string): PooledSocket | undefined {
    const list = this.#idle.get(url);
    if (list === undefined) return undefined;
    while (list.length > 0) {
      const socket = list.pop()!;
      if (socket.idleTimer !== undefined) clearTimeout(socket.idleTimer);
      socket.idleTimer = undefined;
      if (socket.ws.readyState === WebSocket.OPEN) {
        if (list.length === 0) this.#idle.delete(url);
        return socket;
      }
    }
    this.#idle.delete(url);
    return undefined;
  }

  #connect(url: string, signal: AbortSignal): Promise<PooledSocket> {
    const { connectionTimeoutMs, clientOptions } = this.#options;
    let ws: WebSocket;
    try {
      ws = new WebSocket(url, { ...clientOptions, handshakeTimeout: connectionTimeoutMs });
    } catch (error) {
      this.#open--;
      this.#pump();
      return Promise.reject(error);
    }
    const socket = new PooledSocket(ws, url);
    this.#all.add(socket);
    this.#connecting++;
    return new Promise<PooledSocket>((resolve, reject) => {
      let settled = false;
      const settle = (error?: unknown) => {
        if (settled) return;
        settled = true;
        clearTimeout(timer);
        signal.removeEventListener('abort', onAbort);
        this.#connecting--;
        if (error === undefined) {
          resolve(socket);
        } else {
          ws.terminate();
          reject(error);
        }
      };
      const timer = setTimeout(() => {
        settle(
          new GuardError('TIMEOUT', `connecting to ${url} timed out after ${connectionTimeoutMs} ms`, {
            details: { connectionTimeoutMs },
          }),
        );
      }, connectionTimeoutMs);
      const onAbort = () => settle(signal.reason);
      signal.addEventListener('abort', onAbort, { once: true });
      ws.on('message', (data: RawData) => socket.exchange?.frame(data)); // none: a stray frame on an idle socket
      ws.on('error', (error) => {
        if (!settled) settle(error);
        else socket.exchange?.failed(error);
      });
      ws.on('close', (code) => {
        if (!settled) settle(new Error(`connection closed (${code}) while opening`));
        this.#onClosed(socket, code);
      });
      ws.once('open', () => settle());
    });
  }

  #onClosed(socket: PooledSocket, code: number): void {
    const previous = socket.state;
    if (previous === 'closed') return;
    socket.state = 'closed';
    if (socket.idleTimer !== undefined) clearTimeout(socket.idleTimer);
    this.#all.delete(socket);
    if (previous === 'idle') {
      const list = this.#idle.get(socket.url);
      const at = list?.indexOf(socket) ?? -1;
      if (at >= 0) list!.splice(at, 1);
      if (list?.length === 0) this.#idle.delete(socket.url);
    }
    if (socket.exchange !== undefined) socket.exchange.closed(code);
    if (socket.evicted) this.#evicting--;
    this.#open--;
    this.#pump();
  }

  /** Returns an active socket: to a waiter of its URL, to the idle list, or closed when it is not open (or the pool closes). */
  release(socket: PooledSocket): void {
    this.#active--;
    if (socket.ws.readyState !== WebSocket.OPEN || this.#closing) {
      this.#close(socket, 1000, 'released');
      return;
    }
    const waiter = this.#waiters.find((w) => w.url === socket.url);
    if (waiter !== undefined) {
      this.#waiters.splice(this.#waiters.indexOf(waiter), 1);
      socket.state = 'idle';
      waiter.resolve(socket);
      return;
    }
    socket.state = 'idle';
    let list = this.#idle.get(socket.url);
    if (list === undefined) this.#idle.set(socket.url, (list = []));
    list.push(socket);
    const { idleTimeoutMs } = this.#options;
    if (idleTimeoutMs > 0) {
      socket.idleTimer = setTimeout(() => this.#close(socket, 1000, 'idle timeout'), idleTimeoutMs);
      socket.idleTimer.unref();
    }
    this.#pump();
  }

  /** Closes an active socket instead of returning it; resolves once it is closed. */
  destroy(socket: PooledSocket, reason: string): Promise<void> {
    this.#active--;
    const ws = socket.ws;
    if (ws.readyState === WebSocket.CLOSED) return Promise.resolve();
    const closed = new Promise<void>((resolve) => ws.once('close', () => resolve()));
    this.#close(socket, 1000, reason);
    return closed;
  }

  /** Closes a socket; the slot frees when its `close` event arrives. */
  #close(socket: PooledSocket, code: number, reason: string): void {
    if (socket.idleTimer !== undefined) clearTimeout(socket.idleTimer);
    socket.idleTimer = undefined;
    if (reason === 'evicted') socket.evicted = true;
    const ws = socket.ws;
    if (ws.readyState === WebSocket.CLOSED) return;
    if (ws.readyState === WebSocket.CONNECTING) {
      ws.terminate();
      return;
    }
    ws.close(code, reason);
    // Do not wait for a slow peer's close frame for long.
    setTimeout(() => ws.terminate(), 1_000).unref();
  }

  /** Rejects waiters with `closed`, closes every socket (1001) and resolves once all are gone. */
  async close(closed: unknown): Promise<void> {
    this.#closing = true;
    for (const waiter of this.#waiters.splice(0)) waiter.reject(closed);
    const sockets = Array.from(this.#all, (socket) =>
      socket.state === 'closed'
        ? undefined
        : new Promise<void>((resolve) => {
            socket.ws.once('close', () => resolve());
            this.#close(socket, 1001, 'pool closing');
          }),
    );
    await Promise.all(sockets);
  }
}
