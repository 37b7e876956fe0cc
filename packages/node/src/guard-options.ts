import type { Server } from 'node:http';
import type { Env, GuardMode, Logger, Registry } from '@guard/core';
import type { ComponentConfig, ParasiteRoute } from '@guard/detectors';
import type { DeferredSanitizerOptions } from '@guard/sanitizer';
import type { BulkheadOptions, CircuitBreaker, CircuitBreakerOptions } from '@guard/circuit';
import type { CacheProbe, MemoryGuardrailOptions } from '@guard/memory';
import type { ResourcePressureMonitorOptions } from '@guard/playbooks';
import type { FleetOptions } from './fleet.js';
import type { GuardEndpoints } from './guard-handler.js';
import type { ImmuneStoreOptions } from './immune-store.js';
import type { PlaybooksOptions } from './self-healing.js';
import type { ShutdownOptions } from './shutdown.js';
import type { TrackedResources } from './trackers.js';

/**
 * Options of {@link createGuard}. Everything is optional: with none, the guard watches handles and async
 * contexts, memory, and keeps an immune log. Code options win over the environment.
 *
 * @example
 * const guard = await createGuard({ wss, db: { main: pool }, routes: [{ prefix: '/api', component: 'db' }], handleSignals: true });
 */
export interface GuardOptions extends TrackedResources {
  /** The environment, read once (default `process.env`). */
  readonly env?: Env;
  /** Global mode. Default `PARASITE_GUARD_MODE`, else `detect`. */
  readonly mode?: GuardMode;
  /** Per-component modes and sanitization switches (over `PARASITE_GUARD_<C>`). */
  readonly components?: Readonly<Record<string, ComponentConfig>>;
  /** Track AsyncLocalStorage spans (C6): `guard.contexts.run(name, fn)`. Default true. */
  readonly contexts?: boolean;
  /** Watch active handles by type (C7, report only). Default true. */
  readonly handles?: boolean;
  /** Service name: `agentId` of immune events. Default `guard`. */
  readonly name?: string;
  /** pino-compatible logger. Default: JSON lines on stdout at `PARASITE_LOG_LEVEL` (info). */
  readonly logger?: Logger;
  /** prom-client registry. Default: prom-client's global registry (the app's own `/metrics` shows Guard's). */
  readonly registry?: Registry;
  /** Breakers to watch for half-open orphans (C4); more can be made with `guard.breakers.getOrCreate()`. */
  readonly breakers?: readonly CircuitBreaker[];
  /** Defaults of breakers made by `guard.breakers.getOrCreate()`. */
  readonly breakerDefaults?: Omit<CircuitBreakerOptions, 'name' | 'initialState'>;
  /** A bulkhead (max concurrent + bounded queue) as `guard.bulkhead`. Default none. */
  readonly bulkhead?: BulkheadOptions;
  /** Memory guardrail options over `MEMORY_*`, or false. `caches` are cache-size probes. Default on. */
  readonly memory?: false | (MemoryGuardrailOptions & { readonly caches?: Readonly<Record<string, CacheProbe>> });
  /** Immune event log store, or false. Default: SQLite file (needs better-sqlite3), Postgres when a URL is set. */
  readonly immune?: false | ImmuneStoreOptions;
  /** Resource pressure monitor (CPU, memory, disk, event loop) over `GUARD_PRESSURE_*`; drives load shedding. Default off (on with `playbooks`). */
  readonly pressure?: boolean | ResourcePressureMonitorOptions;
  /** Playbooks and their monitors (ACL message bus, heartbeat watchdog). Default off. */
  readonly playbooks?: boolean | PlaybooksOptions;
  /**
   * Fleet mode: replicas of this service share membership (`GET /api/fleet`), the immune stream, blacklists, rate
   * limits and mode switches, and a restart budget, through the Postgres they already have (see `createFleet`).
   * `true` uses `GUARD_FLEET_DATABASE_URL`, else `DATABASE_URL`. Default: on when `GUARD_FLEET` is true.
   */
  readonly fleet?: boolean | FleetOptions;
  /** Deferred sanitizer options over `PARASITE_GUARD_*_ASYNC_DELAY` etc., or false for none (then full mode is refused). */
  readonly sanitizer?: false | Partial<Omit<DeferredSanitizerOptions, 'sanitizers' | 'bus' | 'registry' | 'logger'>>;
  /** `guard.middleware`: which request paths depend on which component. */
  readonly routes?: readonly ParasiteRoute[];
  /** Endpoint paths; `false` turns a group off. */
  readonly endpoints?: GuardEndpoints;
  /** Admin bearer token (mode switch, self-check POSTs). Default `GUARD_ADMIN_TOKEN`; none = admin endpoints off. */
  readonly adminToken?: string;
  /** Bearer token for `POST /api/immune/event`. Default `GUARD_IMMUNE_WRITE_TOKEN`. */
  readonly immuneWriteToken?: string;
  /** Per-check timeout of the probes. Default `GUARD_HEALTH_TIMEOUT`, else 1000 ms. */
  readonly healthCheckTimeoutMs?: number;
  /** HTTP servers to stop and drain on shutdown (more with `guard.attach(server)`). */
  readonly server?: Server | readonly Server[];
  /** Graceful shutdown settings. */
  readonly shutdown?: ShutdownOptions;
  /** Shorthand for `shutdown.handleSignals`. */
  readonly handleSignals?: boolean;
  /** Load shedding in `guard.middleware` and the adapters while under pressure: `Retry-After` seconds. Default 5. */
  readonly retryAfterSeconds?: number;
}

/**
 * The options bag of an optional part: `true` turns it on with its defaults, `false` or `undefined` leaves it off.
 *
 * @example
 * partOptions(options.pressure ?? Boolean(options.playbooks)); // {} | ResourcePressureMonitorOptions | undefined
 */
export function partOptions<T extends object>(value: boolean | T | undefined): T | undefined {
  if (value === true) return {} as T;
  return value || undefined;
}
