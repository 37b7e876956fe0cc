import { dirname, join } from 'node:path';
import { EventEmitter } from 'eventemitter3';
import { Kysely } from 'kysely';
import type { Registry } from 'prom-client';
import type { WebSocketServer } from 'ws';
import { envReader, type Env, type Logger } from '@guard/core';
import type { CircuitBreaker } from '@guard/circuit';
import { BatchWriter } from '@guard/detectors';
import { createGuard, type Guard as NodeGuard } from '@guard/node';
import type { PressureSampler } from '@guard/playbooks';
import type { WorkerPool } from './worker-pool.js';
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

/** The guard (from `@guard/node`) and the demo's own parts it watches, under the names the service and the lab use. */
export interface Guard {
  /** The one `createGuard` result: handler, middleware, playbooks, shutdown. */
  readonly node: NodeGuard;
  readonly bus: NodeGuard['bus'];
  readonly chain: NodeGuard['chain'];
  readonly sockets: NodeGuard['sockets'][string];
  readonly emitters: NodeGuard['emitters'];
  readonly dialect: NodeGuard['dialects'][string];
  readonly contexts: NonNullable<NodeGuard['contexts']>;
  readonly breakers: NodeGuard['breakers'];
  readonly memory: NonNullable<NodeGuard['memory']>;
  readonly immune: NonNullable<NodeGuard['immune']>;
  readonly bulkhead: NonNullable<NodeGuard['bulkhead']>;
  readonly downstreamBreaker: CircuitBreaker;
  /** The demo's database, queried through the tracked dialect. */
  readonly db: Kysely<DemoTables>;
  readonly batch: BatchWriter<AnalysisResult>;
  /** The app's own event bus (eventemitter3), tracked for subscription leaks. */
  readonly appBus: EventEmitter;
  /** Where batch results go; chaos `batch-loss` makes it fail. */
  readonly sink: { failing: boolean; written: number };
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
  /** The worker replicas the CPU playbook scales down. */
  readonly workers: WorkerPool;
  /** CPU, memory, disk and event-loop readings of the service (see `servicePressureSampler`). */
  readonly sampler: PressureSampler;
  /** Folder of playbook YAML files. Default `GUARD_PLAYBOOKS_DIR`, else `apps/demo/playbooks`. */
  readonly playbooksDir: string;
  /** SIGTERM/SIGINT shut the guard down gracefully, then the process exits 0. */
  readonly handleSignals: boolean;
}

/** The guard around the demo: one `createGuard` call, then the demo's own database, batch writer and breaker. */
export async function createDemoGuard(deps: GuardDeps): Promise<Guard> {
  const { env, registry, logger, database } = deps;
  const startup = { logger, deadlineMs: envReader(env).durationMs('DATABASE_STARTUP_TIMEOUT_MS', 30_000, 'ms', { min: 0 }) };
  const appBus = new EventEmitter();
  const dialect = await createDialect(database, logger);
  // A database that is not up yet is retried (the guard's immune log lives in it too); other errors end startup.
  const node = await retryWhileUnavailable(
    'guard',
    () =>
      createGuard({
        env,
        registry,
        logger,
        name: 'guard-demo',
        wss: deps.wss,
        db: { 'app-db': dialect },
        emitters: { 'app-bus': appBus },
        bulkhead: { name: 'downstream', maxConcurrent: 20, maxQueued: 100, queueTimeoutMs: 2_000 },
        memory: { caches: deps.caches },
        immune: database.kind === 'postgres' ? { store: 'postgres', url: database.url } : { store: 'sqlite', path: join(dirname(database.file), 'immune.db') },
        pressure: { sampler: deps.sampler },
        playbooks: {
          dir: deps.playbooksDir,
          acl: { api: ['analysis.*', 'notifications.*'], scheduler: ['analysis.*', 'control.*'], dashboard: ['notifications.*'] },
          followMode: true,
          workers: deps.workers,
        },
        routes: [{ prefix: '/api/analyses', component: 'db' }],
        retryAfterSeconds: 2,
        handleSignals: deps.handleSignals,
        // Fleet mode with Postgres (unless GUARD_FLEET=false): replicas on one database list each other, share the
        // immune stream, blacklists, rate limits and mode switches, and restart one at a time.
        ...(database.kind === 'postgres' && envReader(env).boolean('GUARD_FLEET', true) ? { fleet: { url: database.url } } : {}),
      }),
    startup,
  );

  try {
    const db = new Kysely<DemoTables>({ dialect: node.dialects['app-db']! });
    await retryWhileUnavailable('demo tables', () => migrate(db), startup);
    const sink = { failing: false, written: 0 };
    const batch = new BatchWriter<AnalysisResult>({
      name: 'analysis-results',
      db,
      ...node.chain.thresholds.batch,
      retries: 1,
      retryDelayMs: 50,
      write: async (items) => {
        if (sink.failing) throw new Error('results sink unavailable');
        sink.written += items.length;
      },
    });
    await retryWhileUnavailable('dead-letter table', () => batch.ensureSchema(), startup);
    node.track({ batches: { 'analysis-results': batch } });
    // The batch writer flushes through the database: it closes first, then the database.
    node.onShutdown(async () => {
      await batch.close();
      await db.destroy();
    });
    const downstreamBreaker = node.breakers.getOrCreate('downstream', {
      failureThreshold: 5,
      resetTimeoutMs: 2_000,
      halfOpenSuccesses: 3,
      logger,
      // A caller's bad input is not the downstream failing: it must not open the circuit for everyone else.
      shouldCount: (error) => !isCallerFault(error),
    });
    return {
      node,
      bus: node.bus,
      chain: node.chain,
      sockets: node.sockets.ws!,
      emitters: node.emitters,
      dialect: node.dialects['app-db']!,
      contexts: node.contexts!,
      breakers: node.breakers,
      memory: node.memory!,
      immune: node.immune!,
      bulkhead: node.bulkhead!,
      downstreamBreaker,
      db,
      batch,
      appBus,
      sink,
    };
  } catch (error) {
    await node.shutdown();
    throw error;
  }
}
