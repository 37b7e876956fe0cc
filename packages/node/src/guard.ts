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
  /** Every part's events (detections, sanitizations, memory alarms, breaker changes, playbook runs). */
  readonly bus: GuardBus;
  /** Where every part's metrics are (`/metrics` serves it). */
  readonly registry: Registry;
  readonly logger: Logger;
  /** The detector chain: mode per component (`chain.setMode()`), active detections. */
  readonly chain: DetectorChain;
  /** Heals what the chain detects in full mode; `undefined` with `sanitizer: false`. */
  readonly sanitizer: DeferredSanitizer | undefined;
  /** WebSocket trackers by name (`ws`, `ws_2`, ... or your keys). `guard.sockets.ws.send(ws, msg)` adds ack tracking. */
  readonly sockets: Readonly<Record<string, WebSocketTracker>>;
  /** Tracked kysely dialects by name: `new Kysely({ dialect: guard.dialects.db })`. */
  readonly dialects: Readonly<Record<string, TrackedDialect>>;
  /** The emitter tracker (C2): `guard.emitters.track(emitter, { name })`, or `on(emitter, event, fn, { owner })`. */
  readonly emitters: EventBusTracker;
  /** Async context spans (C6): `guard.contexts.run(name, fn)`; `undefined` with `contexts: false`. */
  readonly contexts: ContextTracker | undefined;
  /** Active handles by type (C7); `undefined` with `handles: false`. */
  readonly handles: HandleTracker | undefined;
  /** Breakers watched for half-open orphans (C4): `guard.breakers.getOrCreate(name)`. */
  readonly breakers: BreakerRegistry;
  /** The `bulkhead` option's bulkhead. */
  readonly bulkhead: Bulkhead | undefined;
  /** The memory guardrail; `undefined` with `memory: false`. */
  readonly memory: MemoryGuardrail | undefined;
  /** The immune event log; `undefined` with `immune: false`. */
  readonly immune: ImmuneService | undefined;
  /** The resource pressure monitor, when on (`pressure`, or `playbooks`). */
  readonly pressure: ResourcePressureMonitor | undefined;
  /** With `playbooks`: the message bus, monitors, playbook engine and registries. */
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
