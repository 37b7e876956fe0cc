import type { IncomingMessage, Server, ServerResponse } from 'node:http';
import { GuardBus, GuardError, createJsonLogger, envReader, resolvePgTimeouts, resolveRegistry, silentLogger, sendProblem } from '@guard/core';
import type { ComponentName, Env, GuardMode, HttpHandler, Logger, LogLevel, PgTimeouts, Registry } from '@guard/core';
import {
  DetectorChain,
  HalfOpenDetector,
  parasiteConfigFromEnv,
  type ComponentConfig,
  type ContextTracker,
  type EventBusTracker,
  type HandleTracker,
  type ParasiteRoute,
  type TrackedDialect,
  type WebSocketTracker,
} from '@guard/detectors';
import { DeferredSanitizer, createCircuitSanitizer, deferredSanitizerOptionsFromEnv, type DeferredSanitizerOptions } from '@guard/sanitizer';
import { BreakerRegistry, Bulkhead, type BulkheadOptions, type CircuitBreaker, type CircuitBreakerOptions, type ExecuteOptions, type Operation } from '@guard/circuit';
import { MemoryGuardrail, createSelfCheckHandler, memoryOptionsFromEnv, selfCheckOptionsFromEnv, type CacheProbe, type MemoryGuardrailOptions } from '@guard/memory';
import { ImmuneService, bridgeGuardBus, createImmuneHandler, immuneConfigFromEnv } from '@guard/immune';
import type { ResourcePressureMonitor, ResourcePressureMonitorOptions } from '@guard/playbooks';
import type {} from './errors.js';
import { createAdmission, type Rejection } from './admission.js';
import { CloseStack } from './close-stack.js';
import { createGuardHandler, metricsRoute, resolveEndpoints, type GuardEndpoints, type ResolvedEndpoints } from './guard-handler.js';
import { HealthChecks, type HealthCheck, type HealthCheckOptions } from './health-checks.js';
import { probeHandler } from './health-handler.js';
import { openImmuneStore, type ImmuneStoreOptions } from './immune-store.js';
import { modeSwitch } from './mode-switch.js';
import { createFleet, type Fleet, type FleetOptions } from './fleet.js';
import { nodeEnv } from './node-env.js';
import { protect } from './protect.js';
import { RequestTracker } from './request-tracker.js';
import { startPressureMonitor, startSelfHealing, type PlaybooksOptions, type SelfHealing } from './self-healing.js';
import { GracefulShutdown, type ShutdownOptions, type ShutdownReport } from './shutdown.js';
import { TrackerSet, type TrackedResources } from './trackers.js';

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

const HEALABLE_WITHOUT_TRACKER: readonly ComponentName[] = ['circuit'];

/** The mode a component runs in (the chain's own rule, applied before the chain exists). */
function effectiveMode(global: GuardMode, config: ComponentConfig | undefined): GuardMode {
  if (global === 'disabled') return 'disabled';
  const mode = config?.mode ?? global;
  return mode === 'full' && config?.sanitization === false ? 'detect' : mode;
}

const NEVER_MS = 2 ** 31 - 1;

/**
 * Timeouts for the app's own pg pools: none unless `GUARD_PG_*_TIMEOUT_MS` asks for them (a guard must not
 * start failing an app's legitimately long queries); the error handling applies either way.
 */
function appPoolTimeouts(env: Env): PgTimeouts {
  const read = envReader(env);
  const given = (name: string) => read.nameOf(name) !== undefined;
  return resolvePgTimeouts(
    {
      connectTimeoutMs: given('GUARD_PG_CONNECT_TIMEOUT_MS') ? undefined : NEVER_MS,
      statementTimeoutMs: given('GUARD_PG_STATEMENT_TIMEOUT_MS') ? undefined : NEVER_MS,
      queryTimeoutMs: given('GUARD_PG_QUERY_TIMEOUT_MS') || given('GUARD_PG_STATEMENT_TIMEOUT_MS') ? undefined : NEVER_MS,
    },
    env,
  );
}

function defaultLogger(logLevel: LogLevel): Logger {
  return logLevel === 'silent' ? silentLogger : createJsonLogger({ level: logLevel });
}

/**
 * Guards an existing Node service in one call (the seed's `add_parasite_guard(app)`): reads the environment
 * once, builds a tracker and its own sanitizer for every resource it is given, the detector chain, memory
 * guardrail, immune log, and (when asked) pressure monitor and playbooks.
 *
 * @throws GuardError `SANITIZER_MISSING` when a component would run in `full` mode with nothing to heal it;
 * `INVALID_OPTION`/`INVALID_ENV` naming the bad option or variable; `MISSING_PEER` when the chosen store's driver is not installed.
 * @example
 * import { createGuard } from '@guard/node';
 * const guard = await createGuard({ wss, db: pool, routes: [{ prefix: '/api', component: 'db' }], handleSignals: true });
 * const server = http.createServer((req, res) => guard.handler(req, res, () => guard.middleware(req, res, () => app(req, res))));
 * guard.attach(server.listen(3000));
 */
export async function createGuard(options: GuardOptions = {}): Promise<Guard> {
  const env: Env = { ...(options.env ?? process.env) };
  const parasite = parasiteConfigFromEnv(env);
  const own = nodeEnv(env);
  const logger = options.logger ?? defaultLogger(parasite.logLevel);
  const registry = resolveRegistry(options.registry);
  const stack = new CloseStack(logger);
  const bus = new GuardBus({ logger });
  const requests = new RequestTracker();
  const checks = new HealthChecks({ defaultTimeoutMs: options.healthCheckTimeoutMs ?? own.healthCheckTimeoutMs });
  const endpoints = resolveEndpoints(options.endpoints);

  try {
    // Created first so it closes last: every other part may still publish while it closes.
    let immune: ImmuneService | undefined;
    const immuneConfig = immuneConfigFromEnv(env);
    if (options.immune !== false) {
      const store = await openImmuneStore(options.immune ?? {}, immuneConfig, { registry, logger });
      immune = stack.defer('immune', new ImmuneService({ store, closeStore: true, bus, registry, logger, ...immuneConfig.service }), (s) => s.close());
      const bridge = bridgeGuardBus(bus, immune, { agentId: options.name ?? 'guard', logger });
      stack.defer('immune-bridge', bridge, async (b) => {
        await b.settled();
        b();
      });
    }

    // Before the memory guardrail, which asks its restart lease; closed before the immune service (its stream reads it).
    const fleetOptions = options.fleet === true ? {} : options.fleet || (envReader(env).boolean('GUARD_FLEET', false) ? {} : undefined);
    const fleet: Fleet | undefined = fleetOptions
      ? stack.defer('fleet', await createFleet({ env, logger, ...(endpoints.fleet ? { basePath: endpoints.fleet } : {}), ...fleetOptions }), (f) => f.close())
      : undefined;
    // The replica serves once an attached server listens: then its restart slot (if it just restarted) frees.
    const readyOnListen = (server: Server) => {
      if (!fleet) return;
      if (server.listening) void fleet.markReady();
      else server.once('listening', () => void fleet.markReady());
    };

    let memory: MemoryGuardrail | undefined;
    // Guard does not guess an app's memory budget: only a threshold the app set fails readiness and sheds load.
    let memoryBudgetSet = false;
    if (options.memory !== false) {
      const { caches, ...memoryOptions } = options.memory ?? {};
      const fromEnv = memoryOptionsFromEnv(env);
      memoryBudgetSet = memoryOptions.rssThresholdMb !== undefined || fromEnv.rssThresholdMb !== undefined;
      memory = stack.defer(
        'memory',
        new MemoryGuardrail({ ...fromEnv, ...(fleet?.restartGate ? { restartGate: fleet.restartGate } : {}), ...memoryOptions, ...(caches ? { cacheProbes: caches } : {}), bus, registry, logger }),
        (m) => m.close(),
      );
    }

    const t = parasite.thresholds;
    const breakers = stack.defer(
      'breakers',
      new BreakerRegistry({ defaults: { bus, registry, probeTimeoutMs: t.circuit.probeTimeoutMs, ...options.breakerDefaults } }),
      (b) => b.close(),
    );
    for (const breaker of options.breakers ?? []) breakers.add(breaker);
    const bulkhead = options.bulkhead ? stack.defer('bulkhead', new Bulkhead({ registry, ...options.bulkhead }), (b) => b.close()) : undefined;

    const trackers = new TrackerSet(t, stack, { contexts: options.contexts ?? true, handles: options.handles ?? true, logger, pgTimeouts: appPoolTimeouts(env) });
    trackers.add(options);
    const halfOpen = stack.defer('circuit', new HalfOpenDetector({ bus, ...t.circuit, probesInFlight: (name) => breakers.get(name)?.probesInFlight }), (d) => d.close());

    let sanitizer: DeferredSanitizer | undefined;
    if (options.sanitizer !== false) {
      // One sanitizer per component whose members are the trackers' own sanitizers (routed by their owns()),
      // so trackers added later by guard.track() are healed too.
      const sanitizers = [...trackers.sanitizers.values(), createCircuitSanitizer(breakers)];
      sanitizer = stack.defer(
        'sanitizer',
        new DeferredSanitizer({ ...deferredSanitizerOptionsFromEnv(env), ...options.sanitizer, sanitizers, bus, registry, logger }),
        // The shutdown already waited for running sanitizations (within its deadline); close aborts what is left.
        (s) => s.close(),
      );
    }
    const healable = (component: ComponentName) => sanitizer !== undefined && (component === 'circuit' || trackers.sanitizers.has(component));
    const components = () => [...new Set<ComponentName>([...trackers.components(), ...HEALABLE_WITHOUT_TRACKER])];

    const mode = options.mode ?? parasite.mode;
    const componentConfigs: Readonly<Record<string, ComponentConfig>> = { ...parasite.components, ...options.components };
    const unhealable = components().filter((c) => effectiveMode(mode, componentConfigs[c]) === 'full' && !healable(c));
    if (unhealable.length > 0) {
      throw new GuardError(
        'SANITIZER_MISSING',
        `full mode for ${unhealable.join(', ')} needs a sanitizer (the guard was given sanitizer: false): full mode would answer 503 while nothing heals. Use detect mode or enable the sanitizer.`,
        { details: { components: unhealable } },
      );
    }
    const chain = stack.defer(
      'chain',
      new DetectorChain({
        mode,
        components: componentConfigs,
        thresholds: t,
        metrics: parasite.metrics,
        metricsPrefix: parasite.metricsPrefix,
        registry,
        bus,
        logger,
        ...(sanitizer ? { scheduler: sanitizer } : {}),
        detectors: [...trackers.detectors, halfOpen],
      }),
      (c) => c.close(),
    );
    trackers.attachChain(chain);
    const shutdown = new GracefulShutdown(
      {
        requests,
        stack,
        webSocketServers: trackers.webSocketServers,
        ...(sanitizer ? { waitForSanitization: (ms: number) => sanitizer.waitForSanitization(ms) } : {}),
        logger,
      },
      { timeoutMs: own.shutdownTimeoutMs, delayMs: own.shutdownDelayMs, ...options.shutdown },
    );
    const servers = options.server === undefined ? [] : Array.isArray(options.server) ? options.server : [options.server as Server];
    for (const server of servers) {
      shutdown.attach(server);
      readyOnListen(server);
    }
    // The pools we were given end last, after everything that could still query them.
    for (const [name, { pool, end }] of Object.entries(trackers.pgPools)) {
      shutdown.onShutdown(() => (pool.ended ? undefined : end().catch((error: unknown) => logger.warn({ err: error, pool: name }, 'guard: ending pool failed'))));
    }

    // The built-in playbooks read pressure probes, so playbooks turn the monitor on unless pressure is false.
    const pressureOptions = options.pressure === true || (options.pressure === undefined && options.playbooks) ? {} : options.pressure || undefined;
    const pressure = pressureOptions ? startPressureMonitor(pressureOptions, { env, bus, registry, logger, stack }) : undefined;
    const playbookOptions = options.playbooks === true ? {} : options.playbooks || undefined;
    const probePath = endpoints.livez ?? endpoints.readyz;
    // The CPU playbook verifies the service still answers: by default, the first attached server's probe.
    const healthUrl = playbookOptions?.healthUrl ?? (() => (probePath ? shutdown.localUrl(probePath) : undefined));
    const healing = playbookOptions ? await startSelfHealing({ ...playbookOptions, healthUrl }, pressure, { env, bus, registry, logger, stack, modeOf: (c) => chain.modeOf(c), ...(immune ? { immune } : {}), fleet: fleet?.sink }) : undefined;

    checks.add('shutdown', () => (shutdown.shuttingDown ? Promise.reject(new Error('shutting down')) : true), { critical: true });
    checks.add('ping', () => true, { probe: 'liveness' });
    // Non-critical: a lost immune store shows in /readyz?verbose but does not take the service out of rotation.
    if (immune) checks.add('immune', (signal) => immune.healthSummary({ windowMs: 60_000, signal }), { critical: false });
    if (memory) {
      const failAt = selfCheckOptionsFromEnv(env).readyzFailAt ?? 'critical';
      checks.add(
        'memory',
        () => {
          const status = memory.assess().status;
          if (status === 'critical' || status === failAt) throw new Error(`memory status ${status}`);
        },
        { critical: memoryBudgetSet },
      );
    }

    // Memory sheds load only while RSS is over the budget the app set: fewer requests relieve that. A predicted
    // breach (a growth trend, e.g. pools and JIT warming at startup) or an oversized cache fails readiness and is
    // healed by its own remedy, but refusing traffic for it would turn a forecast into an outage.
    const overMemoryBudget = () => memoryBudgetSet && memory?.status === 'critical' && memory.latest()?.restartReason === 'rss_threshold';
    const isUnderPressure = () => (pressure?.isUnderPressure() ?? false) || overMemoryBudget();
    const adminToken = options.adminToken ?? own.adminToken;
    const immuneWriteToken = options.immuneWriteToken ?? own.immuneWriteToken;
    const immuneHandler = immune
      ? stack.defer(
          'immune-http',
          createImmuneHandler(immune, {
            ...(endpoints.immune ? { basePath: endpoints.immune } : {}),
            limitBytes: immuneConfig.http.limitBytes,
            heartbeatMs: immuneConfig.http.heartbeatMs,
            maxSseClients: immuneConfig.http.maxSseClients,
            registry,
            ...(immuneWriteToken ? { writeToken: immuneWriteToken } : {}),
          }),
          (h) => h.close(),
        )
      : undefined;
    // The immune SSE streams never end on their own: they close as draining starts (the stack closes the rest).
    if (immuneHandler) shutdown.onShutdown(() => immuneHandler.close(), { phase: 'drain' });
    const handler = createGuardHandler(
      endpoints,
      {
        metrics: metricsRoute(registry, logger),
        livez: probeHandler(checks, 'liveness', logger),
        readyz: probeHandler(checks, 'readiness', logger),
        mode: modeSwitch(chain, { adminToken, components, healable }),
        ...(memory && endpoints.selfCheck ? { selfCheck: createSelfCheckHandler(memory, { adminToken, basePath: endpoints.selfCheck }) } : {}),
        ...(immuneHandler ? { immune: immuneHandler } : {}),
        ...(fleet ? { fleet: fleet.handler } : {}),
      },
      requests,
    );
    if (fleet) {
      // The stream needs the shared Postgres table; with another store each replica streams its own events.
      const store = immune?.store as { kind?: string; tableName?: string } | undefined;
      const immuneTable = store?.kind === 'postgres' ? store.tableName : undefined;
      if (immune && !immuneTable) logger.warn({}, 'fleet: the immune store is not Postgres; each replica streams its own events only');
      await fleet.join({
        ...(immune && immuneTable ? { immune, immuneTable } : {}),
        ...(healing ? { messageBus: healing.messageBus } : {}),
        mode: {
          get: () => chain.mode,
          set: (wanted) => {
            const next = wanted ?? mode;
            // Full mode needs a sanitizer for every component; without one the fleet's "full" runs as detect here.
            const unhealableNow = next === 'full' ? components().filter((c) => !healable(c)) : [];
            if (unhealableNow.length > 0) logger.warn({ components: unhealableNow }, 'fleet: full mode asked, but nothing heals these components here; running detect');
            chain.setMode(unhealableNow.length > 0 ? 'detect' : next);
          },
        },
        status: () => (shutdown.shuttingDown ? 'stopping' : (memory?.status ?? 'running')),
        ...(adminToken ? { adminToken } : {}),
      });
      checks.add(
        'fleet',
        () => {
          if (fleet.membership?.reachable === false) throw new Error('fleet database unreachable: this replica runs on its own');
        },
        { critical: false },
      );
    }
    const admission = createAdmission(chain, { routes: options.routes ?? [], retryAfterSeconds: options.retryAfterSeconds ?? 5, isUnderPressure });
    const admit = (req: IncomingMessage, res: ServerResponse) => {
      requests.track(req, res);
      return admission(req);
    };
    const middleware: HttpHandler = (req, res, next) => {
      const rejection = admit(req, res);
      if (!rejection) return next?.();
      req.resume();
      sendProblem(res, rejection.problem, rejection.headers);
    };

    if (options.handleSignals || options.shutdown?.handleSignals) {
      const signals = Array.isArray(options.shutdown?.handleSignals) ? options.shutdown.handleSignals : undefined;
      shutdown.handleSignals(signals);
    }

    const guard: Guard = {
      bus,
      registry,
      logger,
      chain,
      sanitizer,
      sockets: trackers.sockets,
      dialects: trackers.dialects,
      emitters: trackers.emitters,
      contexts: trackers.contexts,
      handles: trackers.handles,
      breakers,
      bulkhead,
      memory,
      immune,
      pressure,
      healing,
      fleet,
      endpoints,
      handler,
      middleware,
      admit,
      isUnderPressure,
      protect: (breaker, op, callOptions) => protect(chain, breaker, op, callOptions),
      track: (resources) => trackers.add(resources),
      addCheck: (name, check, checkOptions) => checks.add(name, check, checkOptions),
      attach: (server) => {
        readyOnListen(server);
        return shutdown.attach(server);
      },
      onShutdown: (hook, hookOptions) => shutdown.onShutdown(hook, hookOptions),
      shutdown: () => shutdown.shutdown(),
      get shuttingDown() {
        return shutdown.shuttingDown;
      },
      close: async () => {
        await shutdown.shutdown();
      },
      [Symbol.asyncDispose]: async () => {
        await shutdown.shutdown();
      },
    };
    return guard;
  } catch (error) {
    await stack.close();
    throw error;
  }
}
