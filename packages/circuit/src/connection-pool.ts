import { GuardError, assertNumberOption, errorMessage, isGuardError, linkSignal, silentLogger } from '@guard/core';
import type { CircuitState, Env, GuardBus, Logger } from '@guard/core';
import type { ClientOptions } from 'ws';
import { BreakerRegistry } from './breaker-registry.js';
import type { CircuitBreaker } from './circuit-breaker.js';
import { breakerSettings } from './circuit-breaker-options.js';
import type { CircuitBreakerOptions } from './circuit-breaker-options.js';
import { ConnectionLease } from './connection-lease.js';
import { MAX_TIMER_MS } from './deadline-timers.js';
import { connectionPoolOptionsFromEnv } from './from-env.js';
import { circuitGauge } from './metrics.js';
import type { CircuitMetricsOptions } from './metrics.js';
import { classifyRequestFailure, poolErrorResult } from './pool-error-result.js';
import type { PoolErrorResult } from './pool-error-result.js';
import { PoolRequest } from './pool-request.js';
import { SocketPool } from './socket-pool.js';
import type { PooledSocket } from './socket-pool.js';
import { streamExchange } from './stream-exchange.js';
import type { StreamMessage } from './stream-message.js';
import { TaskRegistry } from './task-registry.js';

export type { PoolErrorResult } from './pool-error-result.js';

/**
 * Options of {@link ConnectionPool}.
 *
 * @example
 * const options: ConnectionPoolOptions = { maxConcurrentConnections: 20, breaker: { failureThreshold: 3 } };
 */
export interface ConnectionPoolOptions extends CircuitMetricsOptions {
  /** Open sockets at most (connecting, busy and idle together), across URLs; default 50. */
  readonly maxConcurrentConnections?: number;
  /** How long opening a socket (TCP + upgrade) may take; default 10 000 ms. */
  readonly connectionTimeoutMs?: number;
  /** An idle socket is closed after this long; default 300 000 ms. */
  readonly idleTimeoutMs?: number;
  /** Default per-request timeout (wait for a socket included); 0 = none; default 60 000 ms. */
  readonly requestTimeoutMs?: number;
  /** Options of the per-URL breakers (their `name` comes from `breakerName`). */
  readonly breaker?: Omit<CircuitBreakerOptions, 'name' | 'initialState' | 'bus' | 'registry' | 'metricsPrefix' | 'metrics'>;
  /** Names the breaker of a URL (a metric label, so keep it low-cardinality); default the URL's host. URLs with one name share a breaker. */
  readonly breakerName?: (url: string) => string;
  /** Receives the breakers' `breakerStateChange` events. */
  readonly bus?: GuardBus;
  /** Where requests with a `taskId` are registered (so `tasks.cancel(id)` cancels them); default a registry of the pool's own. */
  readonly tasks?: TaskRegistry;
  /** Extra `ws` client options (headers, TLS, ...). */
  readonly clientOptions?: ClientOptions;
  readonly logger?: Logger;
}

/** Per-request options of {@link ConnectionPool.request}. */
export interface PoolRequestOptions {
  /** Overrides `requestTimeoutMs` for this request. */
  readonly timeoutMs?: number;
  /** Registers the request as a task (cancellable by id) and adds `taskId` to the message. */
  readonly taskId?: string;
  /** Receives every `progress_update` message. */
  readonly onProgress?: (message: StreamMessage) => void;
  readonly signal?: AbortSignal;
}

/** Options of {@link ConnectionPool.acquire}. */
export interface PoolAcquireOptions {
  /** Gives up waiting for a slot or a socket: `acquire` rejects with `ABORTED` (the reason is the `cause`). */
  readonly signal?: AbortSignal;
  /** Bound on the wait for a slot plus the connect, counted as a breaker failure (`TIMEOUT`); 0 = none. Default `requestTimeoutMs`. */
  readonly timeoutMs?: number;
}

/** What {@link ConnectionPool.stats} returns. */
export interface ConnectionPoolStats {
  /** Sockets busy with a request. */
  readonly activeConnections: number;
  /** Idle sockets kept for reuse. */
  readonly pooledConnections: number;
  /** Sockets being opened. */
  readonly connectingConnections: number;
  /** Sockets lent out by `acquire()` (included in `activeConnections`). */
  readonly leasedConnections: number;
  /** Every open socket (the number the semaphore limits). */
  readonly openConnections: number;
  /** Requests waiting for a socket. */
  readonly waitingRequests: number;
  /** Requests with a `taskId` in flight. */
  readonly activeTasks: number;
  /** Breakers that are open or half-open. */
  readonly openCircuits: ReadonlyArray<{ readonly circuit: string; readonly state: CircuitState }>;
}

function defaultBreakerName(url: string): string {
  try {
    return new URL(url).host || url;
  } catch {
    return url;
  }
}

/**
 * A client pool of `ws` connections: a semaphore on open sockets, connection and idle timeouts, reuse per URL, a
 * circuit breaker per URL, and `request()` that streams `progress_update`s and returns the terminal message or a
 * structured error (`circuit_open`, `timeout`, `cancelled`, `error`) instead of throwing. The sockets live in a
 * {@link SocketPool}, the protocol of a request in `stream-exchange.ts`.
 *
 * @example
 * await using pool = new ConnectionPool({ maxConcurrentConnections: 20 });
 * const reply = await pool.request('ws://analyzer:8080', { type: 'analyze', file }, {
 *   timeoutMs: 30_000, taskId: 'job-7', onProgress: (p) => console.log(p.percent),
 * });
 * if (reply.type === 'error') console.warn(reply.status, reply.error);
 */
export class ConnectionPool implements AsyncDisposable {
  readonly maxConcurrentConnections: number;
  readonly connectionTimeoutMs: number;
  readonly idleTimeoutMs: number;
  readonly requestTimeoutMs: number;
  /** The per-URL breakers (a C4 `CircuitTarget`). */
  readonly breakers: BreakerRegistry;
  /** Where requests with a `taskId` are registered. */
  readonly tasks: TaskRegistry;
  readonly #ownTasks: boolean;
  readonly #breakerName: (url: string) => string;
  readonly #logger: Logger;
  readonly #sockets: SocketPool;
  /** Requests and acquires in flight: `close()` aborts them. */
  readonly #inFlight = new Set<{ abort(reason: unknown): void }>();
  /** Aborted once closed: the metrics stop reading this pool. */
  readonly #closed = new AbortController();
  #activeTasks = 0;
  #leased = 0;
  #closing: Promise<void> | undefined;

  /**
   * A pool configured from the environment ({@link connectionPoolOptionsFromEnv}); `overrides` win over it.
   *
   * @example
   * await using pool = ConnectionPool.fromEnv(process.env, { requestTimeoutMs: 5_000 });
   */
  static fromEnv(env: Env = process.env, overrides: ConnectionPoolOptions = {}): ConnectionPool {
    const fromEnv = connectionPoolOptionsFromEnv(env);
    return new ConnectionPool({ ...fromEnv, ...overrides, breaker: { ...fromEnv.breaker, ...overrides.breaker } });
  }

  constructor(options: ConnectionPoolOptions = {}) {
    const { maxConcurrentConnections = 50, connectionTimeoutMs = 10_000, idleTimeoutMs = 300_000, requestTimeoutMs = 60_000 } = options;
    assertNumberOption('maxConcurrentConnections', maxConcurrentConnections, { min: 1, integer: true });
    assertNumberOption('connectionTimeoutMs', connectionTimeoutMs, { min: 1, max: MAX_TIMER_MS });
    assertNumberOption('idleTimeoutMs', idleTimeoutMs, { min: 0, max: MAX_TIMER_MS });
    assertNumberOption('requestTimeoutMs', requestTimeoutMs, { min: 0, max: MAX_TIMER_MS });
    if (options.breakerName !== undefined && typeof options.breakerName !== 'function') {
      throw new GuardError('INVALID_OPTION', 'breakerName must be a function', { details: { field: 'breakerName' } });
    }
    // Validate breaker options now rather than on the first request.
    if (options.breaker !== undefined) breakerSettings(options.breaker);
    this.maxConcurrentConnections = maxConcurrentConnections;
    this.connectionTimeoutMs = connectionTimeoutMs;
    this.idleTimeoutMs = idleTimeoutMs;
    this.requestTimeoutMs = requestTimeoutMs;
    this.#breakerName = options.breakerName ?? defaultBreakerName;
    this.#logger = options.logger ?? silentLogger;
    this.#sockets = new SocketPool({ maxConcurrentConnections, connectionTimeoutMs, idleTimeoutMs, clientOptions: options.clientOptions });
    this.breakers = new BreakerRegistry({
      defaults: {
        ...options.breaker,
        bus: options.bus,
        registry: options.registry,
        metricsPrefix: options.metricsPrefix ?? options.prefix,
        metrics: options.metrics,
        logger: options.logger,
      },
    });
    this.#ownTasks = options.tasks === undefined;
    this.tasks = options.tasks ?? new TaskRegistry();
    circuitGauge(
      options,
      { name: 'pool_connections', help: 'WebSocket connections of connection pools by state (active, idle, connecting)', labelNames: ['state'] },
      this.#closed.signal,
      () => {
        const { active, idle, connecting } = this.#sockets.counts();
        return [
          [{ state: 'active' }, active],
          [{ state: 'idle' }, idle],
          [{ state: 'connecting' }, connecting],
        ];
      },
    );
  }

  /** The breaker that guards `url`. */
  breakerFor(url: string): CircuitBreaker {
    return this.breakers.getOrCreate(this.#breakerName(url));
  }

  /**
   * Sends `message` (JSON) to `url` on a pooled socket, streams `progress_update`s to `onProgress`, and resolves with
   * the terminal message, or with `{ type: 'error', status, error }` when the circuit is open, the request timed out,
   * was cancelled (signal, `cancel(taskId)`, `close()`), or failed. Rejects only for misuse: `CLOSED` after `close()`,
   * `INVALID_INPUT` for a running `taskId` (`details.reason: 'exists'`) or bad arguments, `INVALID_OPTION`.
   *
   * @example
   * const reply = await pool.request(url, { type: 'ping_db' }, { timeoutMs: 2_000 });
   */
  async request(url: string, message: StreamMessage | string, options: PoolRequestOptions = {}): Promise<StreamMessage | PoolErrorResult> {
    this.#checkUrl(url);
    const { taskId, onProgress, signal } = options;
    const timeoutMs = options.timeoutMs ?? this.requestTimeoutMs;
    assertNumberOption('timeoutMs', timeoutMs, { min: 0, max: MAX_TIMER_MS });
    let payload: string;
    if (typeof message === 'string') payload = message;
    else if (typeof message === 'object' && message !== null) payload = JSON.stringify(taskId !== undefined && message.taskId === undefined ? { ...message, taskId } : message);
    else throw new GuardError('INVALID_INPUT', 'message must be an object or a string', { details: { field: 'message' } });

    const breaker = this.breakerFor(url);
    if (signal?.aborted) return poolErrorResult('cancelled', `request aborted: ${errorMessage(signal.reason)}`, taskId);
    using request = new PoolRequest(this.tasks, taskId, signal);
    if (taskId !== undefined) this.#activeTasks++;
    this.#inFlight.add(request);
    try {
      const reply = await breaker.execute(
        (callSignal) => streamExchange(this.#sockets, url, { payload, signal: callSignal ?? request.signal, taskId, onProgress, logger: this.#logger }),
        { signal: request.signal, timeoutMs: timeoutMs > 0 ? timeoutMs : undefined },
      );
      request.succeeded(reply);
      return reply;
    } catch (error) {
      request.failed(error);
      return classifyRequestFailure(error, request.abortedBy, taskId, breaker.name);
    } finally {
      if (taskId !== undefined) this.#activeTasks--;
      this.#inFlight.delete(request);
    }
  }

  #checkUrl(url: unknown): void {
    if (this.#closing !== undefined) throw new GuardError('CLOSED', 'ConnectionPool is closed');
    if (typeof url !== 'string' || !/^wss?:\/\//i.test(url)) {
      throw new GuardError('INVALID_INPUT', `url must be a ws:// or wss:// URL, got ${String(url)}`, { details: { field: 'url' } });
    }
  }

  /**
   * Lends a pooled socket to `url` for a protocol of the caller's own (the seed's `async with await
   * pool.get_connection(url) as ws`). The lease holds a connection slot until it is released (`await using`, or
   * `release()`), which returns the socket to the pool, or closes it when it is broken (closed or errored) or was
   * `destroy()`ed. Getting the socket (an idle one, or a connect) runs through the URL's breaker: connect failures and
   * timeouts count towards opening it, and an open breaker fails fast.
   *
   * Rejects with `CIRCUIT_OPEN` (breaker open), `TIMEOUT` (slot wait plus connect over `timeoutMs`), `ABORTED`
   * (`signal`), `CLOSED` (pool closed, also while waiting), `INVALID_INPUT` (not a ws/wss URL), or the connect error.
   *
   * @example
   * await using lease = await pool.acquire('ws://analyzer:8080', { signal: AbortSignal.timeout(5_000) });
   * lease.socket.send(JSON.stringify({ type: 'subscribe', topic: 'jobs' }));
   * for await (const [frame] of on(lease.socket, 'message', { signal })) handle(frame);
   */
  async acquire(url: string, options: PoolAcquireOptions = {}): Promise<ConnectionLease> {
    this.#checkUrl(url);
    const { signal } = options;
    const timeoutMs = options.timeoutMs ?? this.requestTimeoutMs;
    assertNumberOption('timeoutMs', timeoutMs, { min: 0, max: MAX_TIMER_MS });
    const aborted = (reason: unknown) => new GuardError('ABORTED', `acquire aborted: ${errorMessage(reason)}`, { cause: reason });
    if (signal?.aborted) throw aborted(signal.reason);
    const breaker = this.breakerFor(url);
    using linked = linkSignal(signal);
    this.#inFlight.add(linked);
    try {
      const { socket, reused } = await breaker.execute(
        async (callSignal) => {
          const attemptSignal = callSignal ?? linked.signal;
          const got = await this.#sockets.acquire(url, attemptSignal);
          if (attemptSignal.aborted) {
            // Granted just as the caller gave up: hand it straight back.
            this.#sockets.release(got.socket);
            throw attemptSignal.reason;
          }
          return got;
        },
        { signal: linked.signal, timeoutMs: timeoutMs > 0 ? timeoutMs : undefined },
      );
      this.#leased++;
      return new ConnectionLease(socket.ws, url, reused, (destroy, reason) => this.#giveBack(socket, destroy, reason));
    } catch (error) {
      if (isGuardError(error, 'CIRCUIT_OPEN') || isGuardError(error, 'TIMEOUT') || isGuardError(error, 'CLOSED')) throw error;
      if (linked.signal.aborted) {
        const reason: unknown = linked.signal.reason;
        throw isGuardError(reason, 'CLOSED') ? reason : aborted(reason);
      }
      throw error;
    } finally {
      this.#inFlight.delete(linked);
    }
  }

  /** Takes a leased socket back: into the pool, or closed (resolves once it is). */
  #giveBack(socket: PooledSocket, destroy: boolean, reason: string): Promise<void> {
    this.#leased--;
    if (destroy) return this.#sockets.destroy(socket, reason);
    this.#sockets.release(socket);
    return Promise.resolve();
  }

  /**
   * Cancels the request registered under `taskId`: it resolves with `status: 'cancelled'` and the server gets
   * `{ type: 'cancel', taskId }`. False when no such task runs.
   *
   * @example
   * await pool.cancel('job-7', 'user pressed stop');
   */
  cancel(taskId: string, reason = 'cancelled'): Promise<boolean> {
    return this.tasks.cancel(taskId, reason);
  }

  /** Counts for dashboards and health checks. */
  stats(): ConnectionPoolStats {
    const sockets = this.#sockets.counts();
    const openCircuits: Array<{ circuit: string; state: CircuitState }> = [];
    for (const breaker of this.breakers.list()) if (breaker.state !== 'closed') openCircuits.push({ circuit: breaker.name, state: breaker.state });
    return {
      activeConnections: sockets.active,
      pooledConnections: sockets.idle,
      connectingConnections: sockets.connecting,
      leasedConnections: this.#leased,
      openConnections: sockets.open,
      waitingRequests: sockets.waiting,
      activeTasks: this.#activeTasks,
      openCircuits,
    };
  }

  /**
   * Cancels in-flight requests (they resolve `cancelled`), rejects waiting ones, closes every socket and waits for
   * them to go. Later calls reject with `CLOSED`. Safe to call twice.
   *
   * @example
   * await pool.close();
   */
  close(): Promise<void> {
    this.#closing ??= this.#shutdown();
    return this.#closing;
  }

  async #shutdown(): Promise<void> {
    const closed = new GuardError('CLOSED', 'ConnectionPool is closed');
    for (const request of this.#inFlight) request.abort(closed);
    await this.#sockets.close(closed);
    await this.breakers.close();
    if (this.#ownTasks) await this.tasks.close();
    this.#closed.abort();
  }

  [Symbol.asyncDispose](): Promise<void> {
    return this.close();
  }
}
