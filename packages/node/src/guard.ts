import type { IncomingMessage, Server, ServerResponse } from 'node:http';
import type { GuardBus, HttpHandler, Logger, Registry } from '@guard/core';
import type { ContextTracker, DetectorChain, EventBusTracker, HandleTracker, TrackedDialect, WebSocketTracker } from '@guard/detectors';
import type { DeferredSanitizer } from '@guard/sanitizer';
import type { BreakerRegistry, Bulkhead, CircuitBreaker, ExecuteOptions, Operation } from '@guard/circuit';
import type { MemoryGuardrail } from '@guard/memory';
import type { ImmuneService } from '@guard/immune';
import type { ResourcePressureMonitor } from '@guard/playbooks';
import type { Rejection } from './admission.js';
import type { Fleet } from './fleet.js';
import type { ResolvedEndpoints } from './guard-handler.js';
import type { HealthCheck, HealthCheckOptions } from './health-checks.js';
import type { SelfHealing } from './self-healing.js';
import type { ShutdownReport } from './shutdown.js';
import type { TrackedResources } from './trackers.js';

/**
 * A running guard: every part it built, one handler for its endpoints, the parasite middleware, probes and a
 * graceful shutdown.
 *
 * @example
 * await using guard = await createGuard({ wss });
 * http.createServer((req, res) => guard.handler(req, res, () => app(req, res)));
 */
export interface Guard extends AsyncDisposable {
  readonly bus: GuardBus;
  readonly registry: Registry;
  readonly logger: Logger;
  readonly chain: DetectorChain;
  readonly sanitizer: DeferredSanitizer | undefined;
  /** WebSocket trackers by name (`ws`, `ws_2`, ... or your keys). `guard.sockets.ws.send(ws, msg)` adds ack tracking. */
  readonly sockets: Readonly<Record<string, WebSocketTracker>>;
  /** Tracked kysely dialects by name: `new Kysely({ dialect: guard.dialects.db })`. */
  readonly dialects: Readonly<Record<string, TrackedDialect>>;
  /** The emitter tracker (C2): `guard.emitters.track(emitter, { name })`, or `on(emitter, event, fn, { owner })`. */
  readonly emitters: EventBusTracker;
  readonly contexts: ContextTracker | undefined;
  readonly handles: HandleTracker | undefined;
  readonly breakers: BreakerRegistry;
  readonly bulkhead: Bulkhead | undefined;
  readonly memory: MemoryGuardrail | undefined;
  readonly immune: ImmuneService | undefined;
  readonly pressure: ResourcePressureMonitor | undefined;
  readonly healing: SelfHealing | undefined;
  /** Fleet mode's parts (membership, stream, decisions, restart lease), when on. */
  readonly fleet: Fleet | undefined;
  /** Where each endpoint group is served (`undefined` = off). */
  readonly endpoints: ResolvedEndpoints;
  /** Every Guard endpoint; connect-style (node:http, Express, Connect). */
  readonly handler: HttpHandler;
  /** Load shedding under pressure, then the parasite middleware for `routes`. */
  readonly middleware: HttpHandler;
  /**
   * Counts the request for the graceful shutdown and decides whether to answer it early (load shedding, or a
   * route whose component is being healed in full mode). What `guard.middleware` and the adapters use.
   */
  admit(req: IncomingMessage, res: ServerResponse): Rejection | undefined;
  /** True while the guard sheds load (a pressure alarm, or memory critical against a threshold you set). */
  isUnderPressure(): boolean;
  /**
   * Tracks resources made after the guard (e.g. a `BatchWriter` that writes through `guard.dialects.db`): each
   * gets its tracker and sanitizer and joins the chain; closed before the parts created earlier.
   */
  track(resources: TrackedResources): void;
  /**
   * Calls `op` through `breaker` following the guard's mode for `circuit`: in `full` an open breaker refuses
   * (`CIRCUIT_OPEN`); outside `full` it counts and opens but the call runs anyway (detect never changes behaviour).
   */
  protect<T>(breaker: CircuitBreaker, op: Operation<T>, options?: ExecuteOptions): Promise<T>;
  /** Adds a readiness (default) or liveness check; returns a function that removes it. */
  addCheck(name: string, check: HealthCheck, options?: HealthCheckOptions): () => void;
  /** Registers an HTTP server to drain on shutdown; returns it. */
  attach<S extends Server>(server: S): S;
  /**
   * Cleanup of your own (e.g. `() => db.destroy()`), run after draining, before Guard's parts close. With
   * `{ phase: 'drain' }` it runs as draining starts: end your long-lived responses (SSE) there.
   */
  onShutdown(hook: () => unknown, options?: { readonly phase?: 'drain' | 'close' }): void;
  /** Fails readiness, drains, closes everything in reverse order. Idempotent. */
  shutdown(): Promise<ShutdownReport>;
  /** True from the start of `shutdown()`. */
  readonly shuttingDown: boolean;
  /** Same as `shutdown()`, for `await using`. */
  close(): Promise<void>;
}
