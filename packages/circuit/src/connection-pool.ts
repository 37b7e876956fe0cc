import { GuardError, assertNumberOption, isGuardError, silentLogger } from '@guard/core';
import type { CircuitState, GuardBus, Logger } from '@guard/core';
import { WebSocket } from 'ws';
import type { ClientOptions, RawData } from 'ws';
import { BreakerRegistry } from './breaker-registry.js';
import { CircuitBreaker } from './circuit-breaker.js';
import type { CircuitBreakerOptions } from './circuit-breaker.js';
import { ConnectionLease } from './connection-lease.js';
import { circuitMetrics } from './metrics.js';
import type { CircuitMetrics, CircuitMetricsOptions, PoolMetricsSource } from './metrics.js';
import { SingleFlight } from './single-flight.js';
import { NON_TERMINAL_TYPES, parseStreamMessage } from './stream-message.js';
import type { StreamMessage } from './stream-message.js';
import { TaskRegistry } from './task-registry.js';

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

/**
 * A request that did not get a terminal message from the server.
 *
 * @example
 * if (reply.type === 'error' && reply.status === 'circuit_open') return cached;
 */
export interface PoolErrorResult {
  readonly type: 'error';
  readonly status: 'circuit_open' | 'timeout' | 'cancelled' | 'error';
  readonly error: string;
  readonly taskId?: string;
  /** The breaker's name, for `circuit_open`. */
  readonly circuit?: string;
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
  /** Executions running under `deduplicate()`. */
  readonly pendingDeduplicated: number;
  /** Breakers that are open or half-open. */
  readonly openCircuits: ReadonlyArray<{ readonly circuit: string; readonly state: CircuitState }>;
}

interface Exchange {
  message(message: StreamMessage): void;
  closed(code: number): void;
  failed(error: Error): void;
}

class Connection {
  readonly ws: WebSocket;
  readonly url: string;
  exchange: Exchange | undefined;
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
  resolve(connection: Connection | undefined): void;
  reject(error: unknown): void;
  done: boolean;
}

/** The socket closed before the terminal message. */
class ConnectionClosed extends Error {
  readonly beforeAnyMessage: boolean;
  constructor(code: number, beforeAnyMessage: boolean) {
    super(`connection closed (${code}) before the terminal message`);
    this.beforeAnyMessage = beforeAnyMessage;
  }
}

function errorText(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
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
 * structured error (`circuit_open`, `timeout`, `cancelled`, `error`) instead of throwing.
 *
 * @example
 * await using pool = new ConnectionPool({ maxConcurrentConnections: 20 });
 * const reply = await pool.request('ws://analyzer:8080', { type: 'analyze', file }, {
 *   timeoutMs: 30_000, taskId: 'job-7', onProgress: (p) => console.log(p.percent),
 * });
 * if (reply.type === 'error') console.warn(reply.status, reply.error);
 */
export class ConnectionPool implements PoolMetricsSource, AsyncDisposable {
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
  readonly #clientOptions: ClientOptions | undefined;
  readonly #logger: Logger;
  readonly #idle = new Map<string, Connection[]>();
  readonly #all = new Set<Connection>();
  readonly #waiters: Waiter[] = [];
  readonly #requests = new Set<AbortController>();
  readonly #taskIds = new Set<string>();
  readonly #flights = new SingleFlight<string, unknown>();
  readonly #metrics: CircuitMetrics | undefined;
  readonly #metricsRef: WeakRef<PoolMetricsSource> | undefined;
  #open = 0;
  #active = 0;
  #leased = 0;
  #connecting = 0;
  #evicting = 0;
  #closing: Promise<void> | undefined;

  constructor(options: ConnectionPoolOptions = {}) {
    const { maxConcurrentConnections = 50, connectionTimeoutMs = 10_000, idleTimeoutMs = 300_000, requestTimeoutMs = 60_000 } = options;
    assertNumberOption('maxConcurrentConnections', maxConcurrentConnections, { min: 1, integer: true });
    assertNumberOption('connectionTimeoutMs', connectionTimeoutMs, { min: 1, max: 2_147_483_647 });
    assertNumberOption('idleTimeoutMs', idleTimeoutMs, { min: 0, max: 2_147_483_647 });
    assertNumberOption('requestTimeoutMs', requestTimeoutMs, { min: 0, max: 2_147_483_647 });
    if (options.breakerName !== undefined && typeof options.breakerName !== 'function') {
      throw new GuardError('INVALID_OPTION', 'breakerName must be a function', { details: { field: 'breakerName' } });
    }
    this.maxConcurrentConnections = maxConcurrentConnections;
    this.connectionTimeoutMs = connectionTimeoutMs;
    this.idleTimeoutMs = idleTimeoutMs;
    this.requestTimeoutMs = requestTimeoutMs;
    this.#breakerName = options.breakerName ?? defaultBreakerName;
    this.#clientOptions = options.clientOptions;
    this.#logger = options.logger ?? silentLogger;
    this.breakers = new BreakerRegistry({
      defaults: {
        ...options.breaker,
        bus: options.bus,
        registry: options.registry,
        metricsPrefix: options.metricsPrefix,
        metrics: options.metrics,
        logger: options.logger,
      },
    });
    // Validate breaker options now rather than on the first request.
    if (options.breaker !== undefined) void new CircuitBreaker({ ...options.breaker, metrics: false }).close();
    this.#ownTasks = options.tasks === undefined;
    this.tasks = options.tasks ?? new TaskRegistry();
    this.#metrics = circuitMetrics(options);
    this.#metricsRef = this.#metrics?.addPool(this);
  }

  /** The breaker that guards `url`. */
  breakerFor(url: string): CircuitBreaker {
    return this.breakers.getOrCreate(this.#breakerName(url));
  }

  /**
   * Sends `message` (JSON) to `url` on a pooled socket, streams `progress_update`s to `onProgress`, and resolves with
   * the terminal message, or with `{ type: 'error', status, error }` when the circuit is open, the request timed out,
   * was cancelled (signal, `cancel(taskId)`, `close()`), or failed. Rejects only for misuse: `CLOSED` after `close()`,
   * `TASK_EXISTS` for a running `taskId`, `INVALID_INPUT`/`INVALID_OPTION` for bad arguments.
   *
   * @example
   * const reply = await pool.request(url, { type: 'ping_db' }, { timeoutMs: 2_000 });
   */
  async request(url: string, message: StreamMessage | string, options: PoolRequestOptions = {}): Promise<StreamMessage | PoolErrorResult> {
    this.#checkUrl(url);
    const { taskId, onProgress, signal } = options;
    const timeoutMs = options.timeoutMs ?? this.requestTimeoutMs;
    assertNumberOption('timeoutMs', timeoutMs, { min: 0, max: 2_147_483_647 });
    let payload: string;
    if (typeof message === 'string') payload = message;
    else if (typeof message === 'object' && message !== null) payload = JSON.stringify(taskId !== undefined && message.taskId === undefined ? { ...message, taskId } : message);
    else throw new GuardError('INVALID_INPUT', 'message must be an object or a string', { details: { field: 'message' } });

    const breaker = this.breakerFor(url);
    if (signal?.aborted) return this.#error('cancelled', `request aborted: ${errorText(signal.reason)}`, taskId);
    const controller = new AbortController();
    const task = taskId === undefined ? undefined : this.tasks.register<StreamMessage>({ taskId, signal: controller.signal });
    const onAbort = () => controller.abort(signal!.reason);
    signal?.addEventListener('abort', onAbort, { once: true });
    const onCancel = () => controller.abort(task!.signal.reason);
    if (task !== undefined) {
      this.#taskIds.add(taskId!);
      task.signal.addEventListener('abort', onCancel, { once: true });
    }
    this.#requests.add(controller);
    try {
      const reply = await breaker.execute((callSignal) => this.#attempt(url, payload, callSignal ?? controller.signal, onProgress, taskId), {
        signal: controller.signal,
        timeoutMs: timeoutMs > 0 ? timeoutMs : undefined,
      });
      task?.complete(reply);
      return reply;
    } catch (error) {
      const result = this.#classify(error, controller.signal, taskId, breaker);
      if (task !== undefined && task.status === 'running') task.fail(error);
      return result;
    } finally {
      signal?.removeEventListener('abort', onAbort);
      task?.signal.removeEventListener('abort', onCancel);
      if (taskId !== undefined) this.#taskIds.delete(taskId);
      this.#requests.delete(controller);
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
    assertNumberOption('timeoutMs', timeoutMs, { min: 0, max: 2_147_483_647 });
    const aborted = (reason: unknown) => new GuardError('ABORTED', `acquire aborted: ${errorText(reason)}`, { cause: reason });
    if (signal?.aborted) throw aborted(signal.reason);
    const breaker = this.breakerFor(url);
    const controller = new AbortController();
    const onAbort = () => controller.abort(signal!.reason);
    signal?.addEventListener('abort', onAbort, { once: true });
    this.#requests.add(controller);
    try {
      const connection = await breaker.execute(
        async (callSignal) => {
          const attemptSignal = callSignal ?? controller.signal;
          const got = await this.#acquire(url, attemptSignal);
          const reused = got.state === 'idle';
          got.state = 'active';
          this.#active++;
          if (attemptSignal.aborted) {
            // Granted just as the caller gave up: hand it straight back.
            this.#release(got);
            throw attemptSignal.reason;
          }
          return { got, reused };
        },
        { signal: controller.signal, timeoutMs: timeoutMs > 0 ? timeoutMs : undefined },
      );
      this.#leased++;
      return new ConnectionLease(connection.got.ws, url, connection.reused, (destroy, reason) => this.#giveBack(connection.got, destroy, reason));
    } catch (error) {
      if (isGuardError(error, 'CIRCUIT_OPEN') || isGuardError(error, 'TIMEOUT') || isGuardError(error, 'CLOSED')) throw error;
      if (controller.signal.aborted) {
        const reason: unknown = controller.signal.reason;
        throw isGuardError(reason, 'CLOSED') ? reason : aborted(reason);
      }
      throw error;
    } finally {
      signal?.removeEventListener('abort', onAbort);
      this.#requests.delete(controller);
    }
  }

  /** Takes a leased socket back: into the pool, or closed (resolves once it is). */
  #giveBack(connection: Connection, destroy: boolean, reason: string): Promise<void> {
    this.#leased--;
    if (!destroy) {
      this.#release(connection);
      return Promise.resolve();
    }
    this.#active--;
    const ws = connection.ws;
    if (ws.readyState === WebSocket.CLOSED) return Promise.resolve();
    const closed = new Promise<void>((resolve) => ws.once('close', () => resolve()));
    this.#closeConnection(connection, 1000, reason);
    return closed;
  }

  #error(status: PoolErrorResult['status'], error: string, taskId: string | undefined, circuit?: string): PoolErrorResult {
    const result: { -readonly [K in keyof PoolErrorResult]: PoolErrorResult[K] } = { type: 'error', status, error };
    if (taskId !== undefined) result.taskId = taskId;
    if (circuit !== undefined) result.circuit = circuit;
    return result;
  }

  #classify(error: unknown, signal: AbortSignal, taskId: string | undefined, breaker: CircuitBreaker): PoolErrorResult {
    if (isGuardError(error, 'CIRCUIT_OPEN')) return this.#error('circuit_open', error.message, taskId, breaker.name);
    if (isGuardError(error, 'TIMEOUT')) return this.#error('timeout', error.message, taskId);
    if (signal.aborted || isGuardError(error, 'TASK_CANCELLED') || isGuardError(error, 'ABORTED')) {
      return this.#error('cancelled', errorText(signal.aborted ? signal.reason : error), taskId);
    }
    return this.#error('error', errorText(error), taskId);
  }

  /** One try on a pooled socket, plus one retry on a fresh socket when a reused one was closed by the server. */
  async #attempt(
    url: string,
    payload: string,
    signal: AbortSignal,
    onProgress: PoolRequestOptions['onProgress'],
    taskId: string | undefined,
  ): Promise<StreamMessage> {
    for (let attempt = 0; ; attempt++) {
      const connection = await this.#acquire(url, signal);
      const reused = connection.state === 'idle';
      connection.state = 'active';
      this.#active++;
      try {
        const reply = await this.#exchange(connection, payload, signal, onProgress, taskId);
        this.#release(connection);
        return reply;
      } catch (error) {
        this.#discard(connection, signal.aborted ? 'cancelled' : 'failed', taskId);
        if (reused && attempt === 0 && error instanceof ConnectionClosed && error.beforeAnyMessage) continue;
        throw error;
      }
    }
  }

  #exchange(
    connection: Connection,
    payload: string,
    signal: AbortSignal,
    onProgress: PoolRequestOptions['onProgress'],
    taskId: string | undefined,
  ): Promise<StreamMessage> {
    return new Promise<StreamMessage>((resolve, reject) => {
      let received = false;
      const done = () => {
        connection.exchange = undefined;
        signal.removeEventListener('abort', onAbort);
      };
      const onAbort = () => {
        done();
        reject(signal.reason);
      };
      signal.addEventListener('abort', onAbort, { once: true });
      connection.exchange = {
        message: (message) => {
          received = true;
          if (message.type === 'progress_update') {
            try {
              onProgress?.(message);
            } catch (error) {
              this.#logger.warn({ err: error }, 'onProgress threw');
            }
          } else if (message.type === 'ping') {
            connection.ws.send(JSON.stringify({ type: 'pong', taskId }));
          } else if (!NON_TERMINAL_TYPES.has(message.type)) {
            done();
            resolve(message);
          }
        },
        closed: (code) => {
          done();
          reject(new ConnectionClosed(code, !received));
        },
        failed: (error) => {
          done();
          reject(error);
        },
      };
      connection.ws.send(payload, (error) => {
        if (error && connection.exchange !== undefined) connection.exchange.failed(error);
      });
    });
  }

  /** A socket for `url`: an idle one, a new one within the limit, or the next one freed (FIFO). */
  async #acquire(url: string, signal: AbortSignal): Promise<Connection> {
    signal.throwIfAborted();
    const idle = this.#takeIdle(url);
    if (idle !== undefined) return idle;
    if (this.#open < this.maxConcurrentConnections && this.#waiters.length === 0) {
      this.#open++;
      return this.#connect(url, signal);
    }
    const granted = await this.#wait(url, signal);
    if (granted !== undefined) return granted;
    this.#open++;
    return this.#connect(url, signal);
  }

  #wait(url: string, signal: AbortSignal): Promise<Connection | undefined> {
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
        resolve: (connection) => {
          waiter.done = true;
          signal.removeEventListener('abort', onAbort);
          resolve(connection);
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
      if (this.#open < this.maxConcurrentConnections) {
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
        this.#closeConnection(victim, 1000, 'evicted');
      }
      if (needed <= 0) break;
    }
  }

  #takeIdle(url: string): Connection | undefined {
    const list = this.#idle.get(url);
    if (list === undefined) return undefined;
    while (list.length > 0) {
      const connection = list.pop()!;
      if (connection.idleTimer !== undefined) clearTimeout(connection.idleTimer);
      connection.idleTimer = undefined;
      if (connection.ws.readyState === WebSocket.OPEN) {
        if (list.length === 0) this.#idle.delete(url);
        return connection;
      }
    }
    this.#idle.delete(url);
    return undefined;
  }

  #connect(url: string, signal: AbortSignal): Promise<Connection> {
    let ws: WebSocket;
    try {
      ws = new WebSocket(url, { ...this.#clientOptions, handshakeTimeout: this.connectionTimeoutMs });
    } catch (error) {
      this.#open--;
      this.#pump();
      return Promise.reject(error);
    }
    const connection = new Connection(ws, url);
    this.#all.add(connection);
    this.#connecting++;
    return new Promise<Connection>((resolve, reject) => {
      let settled = false;
      const settle = (error?: unknown) => {
        if (settled) return;
        settled = true;
        clearTimeout(timer);
        signal.removeEventListener('abort', onAbort);
        this.#connecting--;
        if (error === undefined) {
          resolve(connection);
        } else {
          ws.terminate();
          reject(error);
        }
      };
      const timer = setTimeout(() => {
        settle(
          new GuardError('TIMEOUT', `connecting to ${url} timed out after ${this.connectionTimeoutMs} ms`, {
            details: { connectionTimeoutMs: this.connectionTimeoutMs },
          }),
        );
      }, this.connectionTimeoutMs);
      const onAbort = () => settle(signal.reason);
      signal.addEventListener('abort', onAbort, { once: true });
      ws.on('message', (data: RawData) => {
        const message = parseStreamMessage(data);
        const exchange = connection.exchange;
        if (exchange === undefined) return; // stray frame on an idle socket
        if (message === undefined) exchange.failed(new Error('the server sent a frame that is not a JSON message with a "type"'));
        else exchange.message(message);
      });
      ws.on('error', (error) => {
        if (!settled) settle(error);
        else connection.exchange?.failed(error);
      });
      ws.on('close', (code) => {
        if (!settled) settle(new Error(`connection closed (${code}) while opening`));
        this.#onClosed(connection, code);
      });
      ws.once('open', () => settle());
    });
  }

  #onClosed(connection: Connection, code: number): void {
    const previous = connection.state;
    if (previous === 'closed') return;
    connection.state = 'closed';
    if (connection.idleTimer !== undefined) clearTimeout(connection.idleTimer);
    this.#all.delete(connection);
    if (previous === 'idle') {
      const list = this.#idle.get(connection.url);
      const at = list?.indexOf(connection) ?? -1;
      if (at >= 0) list!.splice(at, 1);
      if (list?.length === 0) this.#idle.delete(connection.url);
    }
    if (connection.exchange !== undefined) connection.exchange.closed(code);
    if (connection.evicted) this.#evicting--;
    this.#open--;
    this.#pump();
  }

  #release(connection: Connection): void {
    this.#active--;
    if (connection.ws.readyState !== WebSocket.OPEN || this.#closing !== undefined) {
      this.#closeConnection(connection, 1000, 'released');
      return;
    }
    const waiter = this.#waiters.find((w) => w.url === connection.url);
    if (waiter !== undefined) {
      this.#waiters.splice(this.#waiters.indexOf(waiter), 1);
      connection.state = 'idle';
      waiter.resolve(connection);
      return;
    }
    connection.state = 'idle';
    let list = this.#idle.get(connection.url);
    if (list === undefined) this.#idle.set(connection.url, (list = []));
    list.push(connection);
    if (this.idleTimeoutMs > 0) {
      connection.idleTimer = setTimeout(() => this.#closeConnection(connection, 1000, 'idle timeout'), this.idleTimeoutMs);
      connection.idleTimer.unref();
    }
    this.#pump();
  }

  #discard(connection: Connection, why: 'cancelled' | 'failed', taskId: string | undefined): void {
    this.#active--;
    if (connection.ws.readyState === WebSocket.OPEN && why === 'cancelled') {
      try {
        connection.ws.send(JSON.stringify({ type: 'cancel', taskId }));
      } catch {}
    }
    this.#closeConnection(connection, 1000, why);
  }

  /** Closes a socket; the slot frees when its `close` event arrives. */
  #closeConnection(connection: Connection, code: number, reason: string): void {
    if (connection.idleTimer !== undefined) clearTimeout(connection.idleTimer);
    connection.idleTimer = undefined;
    if (reason === 'evicted') connection.evicted = true;
    const ws = connection.ws;
    if (ws.readyState === WebSocket.CLOSED) return;
    if (ws.readyState === WebSocket.CONNECTING) {
      ws.terminate();
      return;
    }
    ws.close(code, reason);
    // Do not wait for a slow peer's close frame for long.
    setTimeout(() => ws.terminate(), 1_000).unref();
  }

  /**
   * Coalesces concurrent identical work: callers with the same key share one execution and its result.
   *
   * @example
   * const reply = await pool.deduplicate(`price:${sku}`, () => pool.request(url, { type: 'price', sku }));
   */
  deduplicate<T>(key: string, fn: () => T | PromiseLike<T>): Promise<T> {
    if (this.#closing !== undefined) return Promise.reject(new GuardError('CLOSED', 'ConnectionPool is closed'));
    return this.#flights.deduplicate(key, fn) as Promise<T>;
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
    let pooled = 0;
    for (const list of this.#idle.values()) pooled += list.length;
    const openCircuits: Array<{ circuit: string; state: CircuitState }> = [];
    for (const breaker of this.breakers.list()) if (breaker.state !== 'closed') openCircuits.push({ circuit: breaker.name, state: breaker.state });
    return {
      activeConnections: this.#active,
      pooledConnections: pooled,
      connectingConnections: this.#connecting,
      leasedConnections: this.#leased,
      openConnections: this.#open,
      waitingRequests: this.#waiters.length,
      activeTasks: this.#taskIds.size,
      pendingDeduplicated: this.#flights.size,
      openCircuits,
    };
  }

  /** @internal */
  connectionCounts(): { active: number; idle: number; connecting: number } {
    const stats = this.stats();
    return { active: stats.activeConnections, idle: stats.pooledConnections, connecting: stats.connectingConnections };
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
    for (const waiter of this.#waiters.splice(0)) waiter.reject(closed);
    for (const controller of this.#requests) controller.abort(closed);
    const sockets = Array.from(this.#all, (connection) =>
      connection.state === 'closed'
        ? undefined
        : new Promise<void>((resolve) => {
            connection.ws.once('close', () => resolve());
            this.#closeConnection(connection, 1001, 'pool closing');
          }),
    );
    await Promise.all(sockets);
    await this.breakers.close();
    if (this.#ownTasks) await this.tasks.close();
    if (this.#metricsRef !== undefined) this.#metrics!.removePool(this.#metricsRef);
  }

  [Symbol.asyncDispose](): Promise<void> {
    return this.close();
  }
}
