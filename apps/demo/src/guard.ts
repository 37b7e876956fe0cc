import { EventEmitter } from 'eventemitter3';
import { Kysely } from 'kysely';
import type { Registry } from 'prom-client';
import type { WebSocketServer } from 'ws';
import { GuardBus, envReader, type Env, type Logger } from '@guard/core';
import {
  BatchWriter,
  ContextTracker,
  DetectorChain,
  EventBusTracker,
  HalfOpenDetector,
  HandleTracker,
  WebSocketTracker,
  parasiteConfigFromEnv,
  trackDialect,
  type TrackedDialect,
} from '@guard/detectors';
import {
  DeferredSanitizer,
  createBatchSanitizer,
  createCircuitSanitizer,
  createContextSanitizer,
  createDbSanitizer,
  createEventBusSanitizer,
  createHandleSanitizer,
  createWebSocketSanitizer,
  deferredSanitizerOptionsFromEnv,
} from '@guard/sanitizer';
import { BreakerRegistry, Bulkhead, CircuitBreaker } from '@guard/circuit';
import { MemoryGuardrail, memoryOptionsFromEnv } from '@guard/memory';
import { ImmuneService, bridgeGuardBus, createKyselyEventStore, type GuardBridge } from '@guard/immune';
import type { DatabaseConfig, DemoTables } from './database.js';
import { createDialect, migrate } from './database.js';
import { isCallerFault } from './caller-fault.js';
import { retryWhileUnavailable } from './startup-retry.js';

/** One analysis result, written by the batch writer. */
export interface AnalysisResult {
  readonly analysisId: string;
  readonly score: number;
  readonly at: number;
}

/** Everything the guard holds around the demo service. */
export interface Guard {
  readonly bus: GuardBus;
  readonly chain: DetectorChain;
  readonly sanitizer: DeferredSanitizer;
  readonly sockets: WebSocketTracker;
  readonly emitters: EventBusTracker;
  readonly dialect: TrackedDialect;
  readonly db: Kysely<DemoTables>;
  readonly batch: BatchWriter<AnalysisResult>;
  readonly contexts: ContextTracker;
  readonly handles: HandleTracker;
  readonly breakers: BreakerRegistry;
  readonly downstreamBreaker: CircuitBreaker;
  readonly bulkhead: Bulkhead;
  readonly memory: MemoryGuardrail;
  readonly immune: ImmuneService;
  /** The app's own event bus (eventemitter3), tracked for subscription leaks. */
  readonly appBus: EventEmitter;
  /** Where batch results go; chaos `batch-loss` makes it fail. */
  readonly sink: { failing: boolean; written: number };
  close(): Promise<void>;
}

/** What the guard needs from the service around it. */
export interface GuardDeps {
  readonly env: Env;
  readonly registry: Registry;
  readonly logger: Logger;
  readonly wss: WebSocketServer;
  readonly database: DatabaseConfig;
  /** Cache probes for the memory guardrail (name -> entries). */
  readonly caches: Readonly<Record<string, () => number>>;
}

/** Composes every package around the demo: detectors, sanitizer, breakers, memory guardrail and immune log. */
export async function createGuard(deps: GuardDeps): Promise<Guard> {
  const { env, registry, logger } = deps;
  const bus = new GuardBus({ logger });

  const t = parasiteConfigFromEnv(env).thresholds;
  const sockets = new WebSocketTracker(deps.wss, t.websocket);
  const emitters = new EventBusTracker(t.eventbus);
  const appBus = new EventEmitter();
  emitters.track(appBus, { name: 'app-bus' });

  // C3: the app's database goes through the tracked dialect; the immune log gets its own connection to the same database.
  const dialect = trackDialect(await createDialect(deps.database, logger), { name: 'app-db', ...t.db });
  const db = new Kysely<DemoTables>({ dialect });
  const startup = { logger, deadlineMs: envReader(env).durationMs('DATABASE_STARTUP_TIMEOUT_MS', 30_000, 'ms', { min: 0 }) };
  await retryWhileUnavailable('demo tables', () => migrate(db), startup);

  const sink = { failing: false, written: 0 };
  const batch = new BatchWriter<AnalysisResult>({
    name: 'analysis-results',
    db,
    ...t.batch,
    retries: 1,
    retryDelayMs: 50,
    write: async (items) => {
      if (sink.failing) throw new Error('results sink unavailable');
      sink.written += items.length;
    },
  });
  await retryWhileUnavailable('dead-letter table', () => batch.ensureSchema(), startup);
  const contexts = new ContextTracker(t.context);
  const handles = new HandleTracker(t.handles);

  const breakers = new BreakerRegistry();
  const downstreamBreaker = breakers.add(
    new CircuitBreaker({
      name: 'downstream',
      bus,
      registry,
      logger,
      failureThreshold: 5,
      resetTimeoutMs: 2_000,
      halfOpenSuccesses: 3,
      probeTimeoutMs: t.circuit.probeTimeoutMs,
      // A caller's bad input is not the downstream failing: it must not open the circuit for everyone else.
      shouldCount: (error) => !isCallerFault(error),
    }),
  );
  const bulkhead = new Bulkhead({ name: 'downstream', registry, maxConcurrent: 20, maxQueued: 100, queueTimeoutMs: 2_000 });

  // In full mode the chain hands critical detections to the deferred sanitizer, which acts through the trackers.
  const sanitizer = new DeferredSanitizer({
    ...deferredSanitizerOptionsFromEnv(env),
    bus,
    registry,
    logger,
    sanitizers: [
      createWebSocketSanitizer(sockets, { graceMs: 1_000 }),
      createEventBusSanitizer(emitters),
      createDbSanitizer(dialect.tracker),
      createCircuitSanitizer(breakers),
      createBatchSanitizer(batch),
      createContextSanitizer(contexts),
      createHandleSanitizer(),
    ],
  });
  const chain = DetectorChain.fromEnv(env, {
    bus,
    registry,
    scheduler: sanitizer,
    logger: logger.child?.({ component: 'parasite' }) ?? logger,
    detectors: [sockets, emitters, dialect.tracker, batch, contexts, handles, new HalfOpenDetector({ bus, ...t.circuit, probesInFlight: (name) => breakers.get(name)?.probesInFlight })],
  });

  const memory = new MemoryGuardrail({ ...memoryOptionsFromEnv(env), bus, registry, logger, cacheProbes: deps.caches });

  // A failed store creation closes (and destroys) its connection, so each attempt gets a fresh one.
  const store = await retryWhileUnavailable(
    'immune log',
    async () => {
      const immuneDb = new Kysely<any>({ dialect: await createDialect(deps.database, logger) });
      return createKyselyEventStore({ db: immuneDb, dialect: deps.database.kind, destroyOnClose: true, registry, logger });
    },
    startup,
  );
  const immune = new ImmuneService({ store, closeStore: true, bus, registry, logger });
  const bridge: GuardBridge = bridgeGuardBus(bus, immune, { agentId: 'guard-demo', memoryAlarms: true, breakerOpens: true, logger });

  const close = async () => {
    await chain.close();
    await sanitizer.waitForSanitization(5_000);
    await sanitizer.close();
    await memory.close();
    await batch.close();
    await bridge.settled();
    bridge();
    await immune.close();
    await sockets.close();
    await emitters.close();
    await contexts.close();
    await breakers.close();
    await db.destroy();
  };

  return { bus, chain, sanitizer, sockets, emitters, dialect, db, batch, contexts, handles, breakers, downstreamBreaker, bulkhead, memory, immune, appBus, sink, close };
}
