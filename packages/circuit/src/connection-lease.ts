import { WebSocket } from 'ws';

/** How a lease hands its socket back: to the pool for reuse, or to be closed (`destroy`). */
export type LeaseReturn = (destroy: boolean, reason: string) => Promise<void>;

/**
 * A pooled WebSocket lent to the caller by {@link ConnectionPool.acquire}, for a protocol of the caller's own. The
 * lease holds one of the pool's connection slots until it is released; `await using` releases it at the end of the
 * block. Release returns the socket to the pool, or closes it when it is broken (closed, or an `error` event during
 * the lease) or when the caller asked for `destroy()`. Listeners the caller added to the socket during the lease are
 * removed on release, so the next lease of the same socket does not receive this one's frames.
 *
 * @example
 * await using lease = await pool.acquire('ws://analyzer:8080', { signal });
 * lease.socket.send(JSON.stringify({ type: 'subscribe', topic: 'jobs' }));
 * const [frame] = await once(lease.socket, 'message', { signal });
 */
export class ConnectionLease implements AsyncDisposable {
  /** The URL the socket is connected to. */
  readonly url: string;
  /** The open socket; use it only until the lease is released. */
  readonly socket: WebSocket;
  /** True when the socket was idle in the pool (used before), false when it was opened for this lease. */
  readonly reused: boolean;
  readonly #giveBack: LeaseReturn;
  readonly #listenersBefore = new Map<string | symbol, Set<unknown>>();
  readonly #onError = () => {
    this.#errored = true;
  };
  #errored = false;
  #returning: Promise<void> | undefined;

  /** @internal Created by the pool. */
  constructor(socket: WebSocket, url: string, reused: boolean, giveBack: LeaseReturn) {
    this.socket = socket;
    this.url = url;
    this.reused = reused;
    this.#giveBack = giveBack;
    for (const event of socket.eventNames()) this.#listenersBefore.set(event, new Set(socket.rawListeners(event)));
    socket.on('error', this.#onError);
  }

  /** True once released or destroyed. */
  get released(): boolean {
    return this.#returning !== undefined;
  }

  /** True when the socket can no longer be reused: it is not open, or it emitted `error` during the lease. */
  get broken(): boolean {
    return this.#errored || this.socket.readyState !== WebSocket.OPEN;
  }

  /**
   * Gives the socket back: to the pool when it is healthy, else it is closed. Frees the slot either way. Idempotent.
   *
   * @example
   * const lease = await pool.acquire(url);
   * try { lease.socket.send('hello'); } finally { await lease.release(); }
   */
  release(): Promise<void> {
    return this.#return(false, 'released');
  }

  /**
   * Closes the socket instead of returning it, e.g. when the caller's protocol is left in an unknown state
   * (a reply still due). Frees the slot. Idempotent; after `release()` it does nothing.
   *
   * @example
   * if (timedOut) await lease.destroy('no reply');
   */
  destroy(reason = 'destroyed'): Promise<void> {
    return this.#return(true, reason);
  }

  [Symbol.asyncDispose](): Promise<void> {
    return this.release();
  }

  #return(destroy: boolean, reason: string): Promise<void> {
    this.#returning ??= (() => {
      this.#detachCallerListeners();
      const broken = this.broken;
      if (!broken && this.socket.isPaused) this.socket.resume();
      return this.#giveBack(destroy || broken, broken && !destroy ? 'broken' : reason);
    })();
    return this.#returning;
  }

  /** Removes every listener added since the lease began (the caller's and our own `error` flag). */
  #detachCallerListeners(): void {
    const socket = this.socket;
    for (const event of socket.eventNames()) {
      const before = this.#listenersBefore.get(event);
      for (const listener of socket.rawListeners(event)) {
        if (before === undefined || !before.has(listener)) socket.removeListener(event, listener as (...args: unknown[]) => void);
      }
    }
  }
}
