import type { Server } from 'node:http';
import { CloseStack, GuardBus, createJsonLogger, envReader, resolveRegistry, silentLogger } from '@guard/core';
import type { Env, Logger, LogLevel } from '@guard/core';
import { DetectorChain, HalfOpenDetector, parasiteConfigFromEnv, type ComponentConfig } from '@guard/detectors';
import { DeferredSanitizer, createCircuitSanitizer, deferredSanitizerOptionsFromEnv } from '@guard/sanitizer';
import { BreakerRegistry, Bulkhead } from '@guard/circuit';
import { MemoryGuardrail, memoryOptionsFromEnv } from '@guard/memory';
import { ImmuneService, bridgeGuardBus, immuneConfigFromEnv } from '@guard/immune';
import type {} from './errors.js';
import { createFleet, type Fleet } from './fleet.js';
import { assertFullModeHealable, healability, healableMode } from './full-mode.js';
import type { Guard } from './guard.js';
import { addGuardChecks } from './guard-checks.js';
import { resolveEndpoints } from './guard-handler.js';
import { createGuardHttp } from './guard-http.js';
import { partOptions, type GuardOptions } from './guard-options.js';
import { HealthChecks } from './health-checks.js';
import { openImmuneStore } from './immune-store.js';
import { appPoolTimeouts, nodeEnv } from './node-env.js';
import { protect } from './protect.js';
import { RequestTracker } from './request-tracker.js';
import { startPressureMonitor, startSelfHealing } from './self-healing.js';
import { createGuardShutdown, handleShutdownSignals } from './guard-shutdown.js';
import { TrackerSet } from './trackers.js';

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
  const stack = new CloseStack();
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
      immune = stack.use(new ImmuneService({ store, closeStore: true, bus, registry, logger, ...immuneConfig.service }));
      const bridge = bridgeGuardBus(bus, immune, { agentId: options.name ?? 'guard', logger });
      stack.defer(async () => {
        await bridge.settled();
        bridge();
      });
    }

    // Before the memory guardrail, which asks its restart lease; closed before the immune service (its stream reads it).
    const fleetOptions = partOptions(options.fleet ?? envReader(env).boolean('GUARD_FLEET', false));
    const fleet: Fleet | undefined = fleetOptions
      ? stack.use(await createFleet({ env, logger, ...(endpoints.fleet ? { basePath: endpoints.fleet } : {}), ...fleetOptions }))
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
      memory = stack.use(
        new MemoryGuardrail({ ...fromEnv, ...(fleet?.restartGate ? { restartGate: fleet.restartGate } : {}), ...memoryOptions, ...(caches ? { cacheProbes: caches } : {}), bus, registry, logger }),
      );
    }

    const t = parasite.thresholds;
    // A breaker abandons a hung probe itself at twice the C4 threshold: the backstop, so the detector and its
    // sanitizer (which record the orphan in the immune log) get to it first.
    const breakers = stack.use(new BreakerRegistry({ defaults: { bus, registry, probeTimeoutMs: 2 * t.circuit.probeTimeoutMs, ...options.breakerDefaults } }));
    for (const breaker of options.breakers ?? []) breakers.add(breaker);
    const bulkhead = options.bulkhead ? stack.use(new Bulkhead({ registry, ...options.bulkhead })) : undefined;

    const trackers = new TrackerSet(t, stack, { contexts: options.contexts ?? true, handles: options.handles ?? true, logger, pgTimeouts: appPoolTimeouts(env) });
    trackers.add(options);
    const halfOpen = stack.use(new HalfOpenDetector({ bus, ...t.circuit, probesInFlight: (name) => breakers.get(name)?.probesInFlight }));

    let sanitizer: DeferredSanitizer | undefined;
    if (options.sanitizer !== false) {
      // One sanitizer per component whose members are the trackers' own sanitizers (routed by their owns()),
      // so trackers added later by guard.track() are healed too.
      const sanitizers = [...trackers.sanitizers.values(), createCircuitSanitizer(breakers)];
      // The shutdown already waited for running sanitizations (within its deadline); close aborts what is left.
      sanitizer = stack.use(new DeferredSanitizer({ ...deferredSanitizerOptionsFromEnv(env), ...options.sanitizer, sanitizers, bus, registry, logger }));
    }
    const heal = healability(trackers, sanitizer !== undefined);
    const mode = options.mode ?? parasite.mode;
    const componentConfigs: Readonly<Record<string, ComponentConfig>> = { ...parasite.components, ...options.components };
    assertFullModeHealable(mode, componentConfigs, heal);
    const chain = stack.use(
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
    );
    trackers.attachChain(chain);
    const shutdown = createGuardShutdown({ requests, stack, trackers, sanitizer, logger }, options, own);
    const servers = options.server === undefined ? [] : Array.isArray(options.server) ? options.server : [options.server as Server];
    for (const server of servers) {
      shutdown.attach(server);
      readyOnListen(server);
    }

    // The built-in playbooks read pressure probes, so playbooks turn the monitor on unless pressure is false.
    const pressureOptions = partOptions(options.pressure ?? Boolean(options.playbooks));
    const pressure = pressureOptions ? startPressureMonitor(pressureOptions, { env, bus, registry, logger, stack }) : undefined;
    const playbookOptions = partOptions(options.playbooks);
    const probePath = endpoints.livez ?? endpoints.readyz;
    // The CPU playbook verifies the service still answers: by default, the first attached server's probe.
    const healthUrl = playbookOptions?.healthUrl ?? (() => (probePath ? shutdown.localUrl(probePath) : undefined));
    const healing = playbookOptions ? await startSelfHealing({ ...playbookOptions, healthUrl }, pressure, { env, bus, registry, logger, stack, modeOf: (c) => chain.modeOf(c), ...(immune ? { immune } : {}), fleet: fleet?.sink }) : undefined;

    const adminToken = options.adminToken ?? own.adminToken;
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
          set: (wanted) => chain.setMode(healableMode(wanted ?? mode, heal, logger)),
        },
        status: () => (shutdown.shuttingDown ? 'stopping' : (memory?.status ?? 'running')),
        ...(adminToken ? { adminToken } : {}),
      });
    }
    addGuardChecks(checks, { shuttingDown: () => shutdown.shuttingDown, immune, memory, memoryBudgetSet, fleet, env });
    const { handler, middleware, admit, isUnderPressure } = createGuardHttp({
      endpoints,
      registry,
      logger,
      checks,
      chain,
      heal,
      requests,
      stack,
      shutdown,
      memory,
      memoryBudgetSet,
      pressure,
      immune,
      immuneHttp: immuneConfig.http,
      fleet,
      adminToken,
      immuneWriteToken: options.immuneWriteToken ?? own.immuneWriteToken,
      routes: options.routes ?? [],
      retryAfterSeconds: options.retryAfterSeconds ?? 5,
    });

    handleShutdownSignals(shutdown, options);

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
    await stack.close().catch((closeError: unknown) => logger.error({ err: closeError }, 'guard: closing a part failed'));
    throw error;
  }
}
