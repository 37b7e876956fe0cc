import type { Server } from 'node:http';
import { assertNumberOption, linkSignal, silentLogger, sleep } from '@guard/core';
import type { Logger } from '@guard/core';
import type { WebSocketServer } from 'ws';
import type { RequestTracker } from './request-tracker.js';

/**
 * How the guard shuts down.
 *
 * @example
 * createGuard({ shutdown: { timeoutMs: 20_000, delayMs: 5_000, handleSignals: true } });
 */
export interface ShutdownOptions {
  /** Deadline for draining in-flight requests, WebSocket clients and sanitizations, from the first signal. Default 10000 (`GUARD_SHUTDOWN_TIMEOUT`). */
  readonly timeoutMs?: number;
  /**
   * Readiness fails at once, then the servers keep serving this long before they stop accepting, so load
   * balancers see the failed probe first (lightship's `shutdownDelay`). Default 0 (`GUARD_SHUTDOWN_DELAY`).
   */
  readonly delayMs?: number;
  /** Shut down gracefully on SIGTERM and SIGINT (or the given signals), then exit 0. Default false. */
  readonly handleSignals?: boolean | readonly NodeJS.Signals[];
  /**
   * After a signal-triggered shutdown the process should exit by itself (nothing left running); if something
   * still holds it open after this long, the leftover handle types are logged and it exits anyway. Default 1000.
   */
  readonly exitGraceMs?: number;
}

/**
 * What {@link GracefulShutdown.shutdown} did.
 *
 * @example
 * const report = await guard.shutdown();
 * if (!report.drained) console.warn('closed with work in flight', report);
 */
export interface ShutdownReport {
  /** True when everything drained before the deadline. */
  readonly drained: boolean;
  /** Requests still in flight at the deadline (0 when drained). */
  readonly requestsLeft: number;
  readonly durationMs: number;
}

/**
 * What the shutdown drains; given by `createGuard`.
 *
 * @example
 * new GracefulShutdown({ requests: new RequestTracker(), stack: new CloseStack(), webSocketServers: [wss] }); // CloseStack from @guard/core
 */
export interface ShutdownParts {
  readonly requests: RequestTracker;
  /** Every part to close once drained (`createGuard` gives its `CloseStack`); a failure to close is logged. */
  readonly stack: { close(): Promise<void> };
  readonly webSocketServers: readonly WebSocketServer[];
  /** Waits for running sanitizations, up to `ms`; resolves true when none is left. */
  readonly waitForSanitization?: (ms: number) => Promise<boolean>;
  readonly logger?: Logger;
}

const GOING_AWAY = 1001;
/** A repeat of the signal this soon is a relayed copy (a supervisor passing the terminal's Ctrl-C on), not a second press. */
const RELAY_WINDOW_MS = 1_000;

/**
 * Graceful shutdown in the order Kubernetes needs: readiness fails at once; after `delayMs` the servers
 * stop accepting and idle keep-alive connections close; in-flight requests, WebSocket clients (closed with
 * 1001) and sanitizations drain until `timeoutMs`; shutdown hooks run; then every part Guard built closes in
 * reverse order of creation. Idempotent: every call returns the same promise.
 *
 * @example
 * const shutdown = new GracefulShutdown(parts, { timeoutMs: 10_000 });
 * shutdown.attach(server);
 * process.once('SIGTERM', () => void shutdown.shutdown());
 */
export class GracefulShutdown {
  readonly #parts: ShutdownParts;
  readonly #timeoutMs: number;
  readonly #delayMs: number;
  readonly #exitGraceMs: number;
  readonly #logger: Logger;
  readonly #servers = new Set<Server>();
  readonly #hooks: (() => unknown)[] = [];
  readonly #drainHooks: (() => unknown)[] = [];
  readonly #signalHandlers = new Map<NodeJS.Signals, () => void>();
  /** The signal that started the shutdown, if one did, and when. */
  #signalledBy: NodeJS.Signals | undefined;
  #signalledAt: number | undefined;
  #running: Promise<ShutdownReport> | undefined;

  constructor(parts: ShutdownParts, options: ShutdownOptions = {}) {
    this.#parts = parts;
    this.#timeoutMs = options.timeoutMs ?? 10_000;
    this.#delayMs = options.delayMs ?? 0;
    this.#exitGraceMs = options.exitGraceMs ?? 1_000;
    assertNumberOption('shutdown.timeoutMs', this.#timeoutMs, { min: 1 });
    assertNumberOption('shutdown.delayMs', this.#delayMs, { min: 0 });
    assertNumberOption('shutdown.exitGraceMs', this.#exitGraceMs, { min: 0 });
    this.#logger = parts.logger ?? silentLogger;
  }

  /** True from the first `shutdown()` on: readiness fails. */
  get shuttingDown(): boolean {
    return this.#running !== undefined;
  }

  /** An HTTP server to stop and drain on shutdown. */
  attach<S extends Server>(server: S): S {
    this.#servers.add(server);
    return server;
  }

  /** `http://127.0.0.1:<port><path>` of the first attached server that is listening on a port. */
  localUrl(path: string): string | undefined {
    for (const server of this.#servers) {
      const address = server.address();
      if (address && typeof address === 'object') return `http://127.0.0.1:${address.port}${path}`;
    }
    return undefined;
  }

  /**
   * Cleanup of the app's own (e.g. `db.destroy()`), run after draining and before Guard's parts close; last added
   * runs first. `phase: 'drain'` runs it as draining starts instead, in the order added: for long-lived responses
   * (SSE streams, long polls) that would otherwise hold the drain until its deadline.
   */
  onShutdown(hook: () => unknown, options: { readonly phase?: 'drain' | 'close' } = {}): void {
    (options.phase === 'drain' ? this.#drainHooks : this.#hooks).push(hook);
  }

  shutdown(): Promise<ShutdownReport> {
    this.#running ??= this.#run();
    return this.#running;
  }

  /** Installs the signal handlers: the first signal shuts down and exits 0; a second one exits at once with 1. */
  handleSignals(signals: readonly NodeJS.Signals[] = ['SIGTERM', 'SIGINT']): void {
    for (const signal of signals) {
      if (this.#signalHandlers.has(signal)) continue;
      const handler = () => {
        const relayed = this.#signalledAt !== undefined && performance.now() - this.#signalledAt < RELAY_WINDOW_MS;
        if (this.#signalledBy === signal && !relayed) {
          this.#logger.warn({ signal }, 'guard: second signal during shutdown, exiting now');
          process.exit(1);
        }
        if (this.#signalledBy !== undefined || this.shuttingDown) {
          // A supervisor relaying the request (Ctrl-C reaches pnpm and node together, and pnpm passes it on, or
          // sends SIGTERM) must not cut the drain short: only the same signal again, later, forces the exit.
          this.#signalledBy ??= signal;
          this.#signalledAt ??= performance.now();
          this.#logger.info({ signal }, 'guard: already shutting down');
          return;
        }
        this.#signalledBy = signal;
        this.#signalledAt = performance.now();
        this.#logger.info({ signal }, 'guard: shutting down');
        this.shutdown().then(
          () => this.#exitWhenIdle(0),
          (error: unknown) => {
            this.#logger.error({ err: error }, 'guard: shutdown failed');
            this.#exitWhenIdle(1);
          },
        );
      };
      this.#signalHandlers.set(signal, handler);
      process.on(signal, handler);
    }
  }

  /** Removes the signal handlers (done at the end of every shutdown). */
  releaseSignals(): void {
    for (const [signal, handler] of this.#signalHandlers) process.removeListener(signal, handler);
    this.#signalHandlers.clear();
  }

  async #run(): Promise<ShutdownReport> {
    const started = performance.now();
    const { requests, stack, webSocketServers } = this.#parts;
    requests.draining = true;
    const deadline = linkSignal(undefined, { timeoutMs: this.#timeoutMs });
    try {
      // The deadline ends the delay early.
      if (this.#delayMs > 0) await sleep(Math.min(this.#delayMs, this.#timeoutMs), { signal: deadline.signal, unref: true }).catch(() => {});

      // Long-lived responses (SSE streams) never finish on their own: they end as draining starts, or they would
      // hold the drain until its deadline.
      await this.#runHooks(this.#drainHooks);
      const serversClosed = [...this.#servers].map((server) => closeServer(server, deadline.signal));
      for (const wss of webSocketServers) for (const ws of wss.clients ?? []) ws.close(GOING_AWAY, 'server shutting down');
      const wsClosed = webSocketServers.map((wss) => clientsGone(wss, deadline.signal));
      const [requestsDrained, ...rest] = await Promise.all([requests.idle(deadline.signal), ...serversClosed, ...wsClosed]);
      const remainingMs = Math.max(0, this.#timeoutMs - (performance.now() - started));
      const sanitized = this.#parts.waitForSanitization ? await this.#parts.waitForSanitization(Math.max(1, remainingMs)) : true;
      const drained = requestsDrained && rest.every(Boolean) && sanitized;
      const requestsLeft = requests.inFlight;
      if (!drained) {
        this.#logger.warn({ requestsLeft, sanitized, timeoutMs: this.#timeoutMs }, 'guard: shutdown deadline reached, closing the rest');
        for (const server of this.#servers) server.closeAllConnections();
        for (const wss of webSocketServers) for (const ws of wss.clients ?? []) ws.terminate();
      }
      await this.#runHooks([...this.#hooks].reverse());
      await stack.close().catch((error: unknown) => this.#logger.error({ err: error }, 'guard: closing a part failed'));
      return { drained, requestsLeft, durationMs: Math.round(performance.now() - started) };
    } finally {
      deadline.dispose();
      // After a signal the process is about to exit: the handlers stay, so a relayed signal cannot kill it by
      // default action (and end it with a signal instead of 0) in the meantime.
      if (this.#signalledBy === undefined) this.releaseSignals();
    }
  }

  /** Runs `hooks` one after the other; a failing hook is logged and the rest still run. */
  async #runHooks(hooks: readonly (() => unknown)[]): Promise<void> {
    for (const hook of hooks) {
      try {
        await hook();
      } catch (error) {
        this.#logger.error({ err: error }, 'guard: shutdown hook failed');
      }
    }
  }

  /** Lets the process end by itself; if something still holds it open, says what and exits anyway. */
  #exitWhenIdle(code: number): void {
    process.exitCode = code;
    setTimeout(() => {
      const left = process.getActiveResourcesInfo().filter((type) => type !== 'TTYWrap' && type !== 'Timeout');
      this.#logger.warn({ handles: left }, 'guard: handles still open after shutdown, exiting anyway');
      process.exit(code);
    }, this.#exitGraceMs).unref();
  }
}

/** Stops accepting, closes idle keep-alive sockets; resolves true once the server closed, false at the deadline. */
function closeServer(server: Server, signal: AbortSignal): Promise<boolean> {
  if (!server.listening) return Promise.resolve(true);
  return new Promise((resolve) => {
    const onAbort = () => resolve(false);
    signal.addEventListener('abort', onAbort, { once: true });
    server.close(() => {
      signal.removeEventListener('abort', onAbort);
      resolve(true);
    });
    server.closeIdleConnections();
    // Keep-alive sockets that finish their last request become idle later: close them as they do.
    const interval = setInterval(() => server.closeIdleConnections(), 100);
    interval.unref();
    server.once('close', () => clearInterval(interval));
    signal.addEventListener('abort', () => clearInterval(interval), { once: true });
  });
}

/** Resolves true when every client of a WebSocket server has closed, false at the deadline. */
function clientsGone(wss: WebSocketServer, signal: AbortSignal): Promise<boolean> {
  const open = [...(wss.clients ?? [])].filter((ws) => ws.readyState !== ws.CLOSED);
  if (open.length === 0) return Promise.resolve(true);
  const closed = Promise.all(open.map((ws) => new Promise((resolve) => ws.once('close', resolve)))).then(() => true);
  return Promise.race([closed, new Promise<boolean>((resolve) => signal.addEventListener('abort', () => resolve(false), { once: true }))]);
}
