import type { IncomingMessage, ServerResponse } from 'node:http';
import { Worker } from 'node:worker_threads';
import { sql } from 'kysely';
import { WebSocket, type WebSocketServer } from 'ws';
import { sendJson, sendProblem, type Detection } from '@guard/core';
import type { AnalysisService } from './analysis-service.js';
import { isScenarioName, type ScenarioName } from './chaos-scenarios.js';
import type { FaultProxy } from './fault-proxy.js';
import type { Guard } from './guard.js';
import type { Healing } from './healing.js';

/** Where one scenario stands; times are epoch ms. */
export interface ScenarioStatus {
  readonly scenario: ScenarioName;
  readonly injectedAt: number;
  detectedAt?: number;
  remediatedAt?: number;
  recoveredAt?: number;
  detail?: string;
  readonly targets: { readonly detectMs: number; readonly recoverMs: number };
}

interface Fault {
  readonly targets: { readonly detectMs: number; readonly recoverMs: number };
  /** Starts the fault; may keep working in the background. */
  inject(): void | Promise<void>;
  /** First evidence that the guard saw it (epoch ms), if any yet. */
  detected(since: number): number | undefined;
  /** When the guard healed it (sanitization, playbook, restart), if it has. */
  remediated(since: number): number | undefined;
  /** Whether the service is back to normal. */
  recovered(): boolean | Promise<boolean>;
  /** Undo what the fault left behind. */
  cleanup?(): void | Promise<void>;
}

/** The demo's session cache: the memory guardrail probes it, the memory alarm evicts it. */
export interface SessionCache {
  readonly entries: Map<string, Buffer>;
  lastEvictionAt?: number;
}

/** What the lab injects faults into. */
export interface ChaosLabDeps {
  readonly guard: Guard;
  readonly healing: Healing;
  readonly service: AnalysisService;
  readonly proxy: FaultProxy;
  readonly wss: WebSocketServer;
  readonly sessions: SessionCache;
  readonly wsUrl: () => string;
}

/** Events kept per kind: enough for any scenario's window, bounded so a long-running demo never grows. */
const EVENT_HISTORY = 1_000;

function remember<T>(list: T[], item: T): void {
  list.push(item);
  if (list.length > EVENT_HISTORY) list.splice(0, list.length - EVENT_HISTORY);
}

const BUSY_WORKER = `const { workerData } = require('node:worker_threads'); const end = Date.now() + workerData.ms; while (Date.now() < end) {}`;

/** Injects each chaos scenario into the running demo and reports its timeline (`POST/GET /chaos/:scenario`). */
export class ChaosLab {
  readonly #guard: Guard;
  readonly #healing: Healing;
  readonly #service: AnalysisService;
  readonly #proxy: FaultProxy;
  readonly #deps: ChaosLabDeps;
  readonly #runs = new Map<ScenarioName, { status: ScenarioStatus; fault: Fault }>();
  readonly #events = { detections: [] as Detection[], sanitizations: [] as { component: string; outcome: string; at: number }[], breakers: [] as { to: string; at: number }[], playbooks: [] as { playbook: string; status: string; at: number }[], alarms: [] as { status: string; at: number }[] };
  readonly #subscriptions: (() => void)[];
  readonly #cleanups = new Set<() => void>();

  constructor(deps: ChaosLabDeps) {
    this.#deps = deps;
    this.#guard = deps.guard;
    this.#healing = deps.healing;
    this.#service = deps.service;
    this.#proxy = deps.proxy;
    const bus = deps.guard.bus;
    this.#subscriptions = [
      bus.subscribe('detection', (d) => remember(this.#events.detections, d)),
      bus.subscribe('sanitization', (s) => remember(this.#events.sanitizations, { component: String(s.component), outcome: s.outcome, at: s.finishedAt })),
      bus.subscribe('breakerStateChange', (c) => remember(this.#events.breakers, { to: c.to, at: c.at })),
      bus.subscribe('playbookRun', (r) => remember(this.#events.playbooks, { playbook: r.playbook, status: r.status, at: r.finishedAt ?? r.startedAt })),
      bus.subscribe('memoryAlarm', (a) => remember(this.#events.alarms, { status: a.status, at: a.at })),
    ];
  }

  /** `POST /chaos/:scenario` injects, `GET /chaos/:scenario` reports; `next()` for other paths. */
  handle(req: IncomingMessage, res: ServerResponse, next: () => void): void {
    const match = /^\/chaos\/([a-z0-9-]+)$/.exec((req.url ?? '').split('?')[0]!);
    if (!match) return next();
    const name = match[1]!;
    if (!isScenarioName(name)) return sendProblem(res, { status: 404, title: 'Unknown scenario', detail: `no chaos scenario "${name}"`, field: 'scenario' });
    if (req.method === 'POST') {
      req.resume();
      this.inject(name).then((status) => sendJson(res, 202, status), (error) => sendProblem(res, { status: 500, title: 'Injection failed', detail: (error as Error).message }));
      return;
    }
    if (req.method === 'GET') {
      this.status(name).then(
        (status) => (status ? sendJson(res, 200, status) : sendProblem(res, { status: 404, title: 'Not injected', detail: `scenario "${name}" was not injected yet`, field: 'scenario' })),
        (error) => sendProblem(res, { status: 500, title: 'Status failed', detail: (error as Error).message }),
      );
      return;
    }
    sendProblem(res, { status: 405, title: 'Method not allowed', detail: 'use GET or POST' }, { allow: 'GET, POST' });
  }

  /** Starts a scenario (a previous run of it is cleaned up first). */
  async inject(name: ScenarioName): Promise<ScenarioStatus> {
    await this.#runs.get(name)?.fault.cleanup?.();
    const fault = this.#fault(name);
    const status: ScenarioStatus = { scenario: name, injectedAt: Date.now(), targets: fault.targets };
    this.#runs.set(name, { status, fault });
    void Promise.resolve(fault.inject()).catch((error: unknown) => {
      status.detail = `injection failed: ${(error as Error).message}`;
    });
    return status;
  }

  /** The scenario's timeline so far; checks recovery once the fault was detected. */
  async status(name: ScenarioName): Promise<ScenarioStatus | undefined> {
    const run = this.#runs.get(name);
    if (!run) return undefined;
    const { status, fault } = run;
    const since = status.injectedAt;
    status.detectedAt ??= fault.detected(since);
    if (status.detectedAt !== undefined) status.remediatedAt ??= fault.remediated(since);
    if (status.detectedAt !== undefined && status.recoveredAt === undefined && (await fault.recovered())) {
      status.recoveredAt = Date.now();
      await fault.cleanup?.();
    }
    return status;
  }

  close(): void {
    for (const off of this.#subscriptions) off();
    for (const cleanup of this.#cleanups) cleanup();
  }

  #detection(component: string, pattern?: string): (since: number) => number | undefined {
    return (since) => {
      const hit = [...this.#events.detections, ...this.#guard.chain.active(component)].find(
        (d) => d.component === component && (pattern === undefined || d.pattern === pattern) && d.detectedAt >= since,
      );
      return hit?.detectedAt;
    };
  }

  #sanitized(component: string): (since: number) => number | undefined {
    return (since) => this.#events.sanitizations.find((s) => s.component === component && s.at >= since && s.outcome !== 'failed')?.at;
  }

  #playbook(name: string): (since: number) => number | undefined {
    return (since) => this.#events.playbooks.find((p) => p.playbook === name && p.status === 'succeeded' && p.at >= since)?.at;
  }

  #track(cleanup: () => void): () => void {
    this.#cleanups.add(cleanup);
    return () => {
      this.#cleanups.delete(cleanup);
      cleanup();
    };
  }

  #connect(onOpen: (ws: WebSocket) => void, options: { ack: boolean }): Promise<WebSocket> {
    return new Promise((resolve, reject) => {
      const ws = new WebSocket(this.#deps.wsUrl());
      ws.on('message', (data) => {
        const message = JSON.parse(String(data)) as { id?: string };
        if (options.ack && message.id) ws.send(JSON.stringify({ type: 'ack', id: message.id }));
      });
      ws.once('open', () => {
        onOpen(ws);
        resolve(ws);
      });
      ws.once('error', reject);
    });
  }

  #fault(name: ScenarioName): Fault {
    const guard = this.#guard;
    const healing = this.#healing;
    switch (name) {
      case 'ws-no-ack': {
        let client: WebSocket | undefined;
        let closeCode: number | undefined;
        return {
          targets: { detectMs: 6_000, recoverMs: 15_000 },
          inject: async () => {
            // A client that reads but never acks the server's messages.
            client = await this.#connect((ws) => ws.once('close', (code) => (closeCode = code)), { ack: false });
          },
          detected: this.#detection('websocket', 'no_ack'),
          remediated: this.#sanitized('websocket'),
          recovered: () => {
            if (closeCode !== undefined) this.#runs.get(name)!.status.detail = `client closed with ${closeCode}`;
            return closeCode !== undefined;
          },
          cleanup: () => client?.terminate(),
        };
      }
      case 'ws-slow-consumer': {
        let client: WebSocket | undefined;
        let serverSide: WebSocket | undefined;
        return {
          targets: { detectMs: 5_000, recoverMs: 15_000 },
          inject: async () => {
            const before = new Set(guard.sockets.connections().map((c) => c.id));
            client = await this.#connect(() => {}, { ack: true });
            await new Promise((resolve) => setTimeout(resolve, 100));
            client.pause(); // stops reading: the server's buffer grows
            const id = guard.sockets.connections().find((c) => !before.has(c.id))?.id;
            serverSide = [...this.#deps.wss.clients].find((ws) => guard.sockets.connectionId(ws) === id);
            const chunk = 'x'.repeat(256 * 1024);
            for (let i = 0; i < 120 && serverSide && serverSide.readyState === WebSocket.OPEN; i++) {
              guard.sockets.send(serverSide, { type: 'report_chunk', i, chunk });
              if (i % 8 === 7) await new Promise((resolve) => setImmediate(resolve));
            }
          },
          detected: this.#detection('websocket', 'slow_consumer'),
          remediated: this.#sanitized('websocket'),
          recovered: () => serverSide !== undefined && serverSide.readyState === WebSocket.CLOSED,
          cleanup: () => client?.terminate(),
        };
      }
      case 'bus-leak': {
        const event = 'analysis.finished';
        return {
          targets: { detectMs: 3_000, recoverMs: 10_000 },
          inject: () => {
            // The classic leak: a per-request subscription that is never removed.
            const subscribePerRequest = () => guard.appBus.on(event, () => {});
            for (let i = 0; i < 1_200; i++) subscribePerRequest();
          },
          detected: this.#detection('eventbus'),
          remediated: this.#sanitized('eventbus'),
          recovered: () => guard.appBus.listenerCount(event) < guard.emitters.leakThreshold,
          cleanup: () => {
            if (guard.appBus.listenerCount(event) >= guard.emitters.leakThreshold) guard.appBus.removeAllListeners(event);
          },
        };
      }
      case 'db-orphan':
        return {
          targets: { detectMs: 6_000, recoverMs: 15_000 },
          inject: () => {
            // A transaction opened and never finished: it holds its connection forever.
            void guard.db.transaction().execute(async (trx) => {
              await trx.selectFrom('analyses').select('id').limit(1).execute();
              await new Promise(() => {});
            }).catch(() => {});
          },
          detected: this.#detection('db', 'connection_orphan'),
          remediated: this.#sanitized('db'),
          recovered: async () => {
            if (guard.dialect.tracker.activeCount() > 0) return false;
            await sql`select 1`.execute(guard.db);
            return true;
          },
        };
      case 'half-open': {
        let healed = false;
        return {
          targets: { detectMs: 8_000, recoverMs: 20_000 },
          inject: async () => {
            this.#proxy.mode = { kind: 'latency', ms: 60_000 };
            // Trip the breaker with timeouts, wait for half-open, then send a probe that hangs.
            for (let i = 0; i < 5; i++) await this.#service.score('trip', { timeoutMs: 100 }).catch(() => {});
            await new Promise((resolve) => setTimeout(resolve, 2_100));
            void guard.downstreamBreaker.execute((signal) => fetch(`http://127.0.0.1:${this.#proxy.port}/score?text=probe`, { signal })).catch(() => {});
          },
          detected: this.#detection('circuit', 'half_open_orphan'),
          remediated: (since) => {
            const at = this.#sanitized('circuit')(since);
            if (at !== undefined && !healed) {
              healed = true;
              this.#proxy.mode = { kind: 'pass' }; // the downstream comes back
            }
            return at;
          },
          recovered: async () => {
            if (!healed) return false;
            if (guard.downstreamBreaker.state !== 'closed') await this.#service.score('ping').catch(() => {});
            return guard.downstreamBreaker.state === 'closed';
          },
          cleanup: () => {
            this.#proxy.mode = { kind: 'pass' };
          },
        };
      }
      case 'batch-loss': {
        let before = 0;
        return {
          targets: { detectMs: 5_000, recoverMs: 15_000 },
          inject: async () => {
            before = await guard.batch.deadLetterCount();
            guard.sink.failing = true;
            for (let i = 0; i < 20; i++) guard.batch.add({ analysisId: `chaos-${i}`, score: i, at: Date.now() });
          },
          detected: this.#detection('batch'),
          remediated: this.#sanitized('batch'),
          recovered: async () => {
            const lettered = (await guard.batch.deadLetterCount()) - before;
            const status = this.#runs.get(name)!.status;
            status.detail = `${lettered} items dead-lettered, ${guard.batch.buffered} buffered, 0 lost`;
            return guard.batch.buffered === 0 && lettered >= 20;
          },
          cleanup: () => {
            guard.sink.failing = false;
          },
        };
      }
      case 'context-leak': {
        const before = guard.contexts.openCount;
        return {
          targets: { detectMs: 6_000, recoverMs: 15_000 },
          inject: () => {
            for (let i = 0; i < 20; i++) guard.contexts.open('leaky-request');
          },
          detected: this.#detection('context'),
          remediated: this.#sanitized('context'),
          recovered: () => guard.contexts.openCount <= before,
        };
      }
      case 'handle-leak': {
        const timers: NodeJS.Timeout[] = [];
        let fixedAt: number | undefined;
        const release = this.#track(() => timers.splice(0).forEach(clearInterval));
        return {
          targets: { detectMs: 5_000, recoverMs: 10_000 },
          inject: () => {
            for (let i = 0; i < 150; i++) timers.push(setInterval(() => {}, 60_000));
          },
          detected: this.#detection('handles', 'handle_leak'),
          // C7 is report-only: the operator's fix (clearing the timers) follows the report.
          remediated: () => {
            if (fixedAt === undefined) {
              release();
              fixedAt = Date.now();
            }
            return fixedAt;
          },
          recovered: () => fixedAt !== undefined && timers.length === 0,
          cleanup: release,
        };
      }
      case 'memory-leak': {
        const sessions = this.#deps.sessions;
        const cache = sessions.entries;
        let timer: NodeJS.Timeout | undefined;
        return {
          targets: { detectMs: 12_000, recoverMs: 20_000 },
          inject: () => {
            // A cache that is filled and never evicted; the guardrail's cache probe sees it grow.
            timer = setInterval(() => {
              for (let i = 0; i < 40; i++) cache.set(`chaos-${cache.size}`, Buffer.alloc(1024, 1));
            }, 100);
            timer.unref();
          },
          detected: (since) => this.#events.alarms.find((a) => a.status !== 'healthy' && a.at >= since)?.at,
          remediated: (since) => {
            const healedAt = sessions.lastEvictionAt;
            if (healedAt === undefined || healedAt < since) return undefined;
            if (timer) {
              clearInterval(timer);
              timer = undefined;
            }
            return healedAt;
          },
          recovered: () => timer === undefined && guard.memory.status !== 'critical' && cache.size < 2_200,
          cleanup: () => {
            if (timer) clearInterval(timer);
          },
        };
      }
      case 'downstream-outage': {
        let traffic: NodeJS.Timeout | undefined;
        return {
          targets: { detectMs: 3_000, recoverMs: 15_000 },
          inject: () => {
            this.#proxy.mode = { kind: 'down' };
            traffic = setInterval(() => void this.#service.score('traffic').catch(() => {}), 100);
            // The outage lasts 3 s; the breaker fails fast meanwhile and closes again once probes pass.
            setTimeout(() => (this.#proxy.mode = { kind: 'pass' }), 3_000).unref();
          },
          detected: (since) => this.#events.breakers.find((b) => b.to === 'open' && b.at >= since)?.at,
          remediated: (since) => this.#events.breakers.find((b) => b.to === 'half_open' && b.at >= since)?.at,
          recovered: () => this.#proxy.mode.kind === 'pass' && guard.downstreamBreaker.state === 'closed',
          cleanup: () => {
            if (traffic) clearInterval(traffic);
            this.#proxy.mode = { kind: 'pass' };
          },
        };
      }
      case 'heartbeat-pause': {
        const restartsBefore = healing.worker.restarts;
        let restartedAt: number | undefined;
        return {
          targets: { detectMs: 1_000, recoverMs: 2_000 },
          inject: () => {
            healing.worker.paused = true;
          },
          detected: () => {
            const state = healing.watchdog.state('results-worker');
            if (healing.worker.restarts > restartsBefore) restartedAt ??= Date.now();
            return state?.lastMissedAt !== undefined && restartedAt !== undefined ? state.lastMissedAt : undefined;
          },
          remediated: () => restartedAt,
          recovered: () => {
            const state = healing.watchdog.state('results-worker');
            if (state?.lastRecoveryMs !== undefined) this.#runs.get(name)!.status.detail = `recovered ${state.lastRecoveryMs.toFixed(1)} ms after the missed deadline`;
            return !healing.worker.paused && state?.state === 'healthy';
          },
        };
      }
      case 'acl-spam':
        return {
          targets: { detectMs: 1_000, recoverMs: 2_000 },
          inject: () => {
            healing.messageBus.unblacklist('rogue-agent');
            for (let i = 0; i < 100; i++) healing.messageBus.publish('rogue-agent', 'control.shutdown', { i });
          },
          detected: (since) => this.#events.playbooks.find((p) => p.playbook === 'message_bus_acl_violation_fix' && p.at >= since)?.at,
          remediated: this.#playbook('message_bus_acl_violation_fix'),
          recovered: () => healing.messageBus.isBlacklisted('rogue-agent') && healing.messageBus.health().healthy && this.#playbook('message_bus_acl_violation_fix')(this.#runs.get(name)!.status.injectedAt) !== undefined,
        };
      case 'cpu-spike': {
        const workers: Worker[] = [];
        let alarmAt: number | undefined;
        let clearedAt: number | undefined;
        const off = healing.pressure.onChange((change) => {
          if (change.resource !== 'cpu') return;
          if (change.state === 'alarm') alarmAt ??= Date.now();
          else if (alarmAt !== undefined) clearedAt ??= Date.now();
        });
        const stop = this.#track(() => {
          off();
          for (const worker of workers.splice(0)) void worker.terminate();
        });
        return {
          targets: { detectMs: 15_000, recoverMs: 45_000 },
          inject: () => {
            // Two busy threads (one per core here) for 13 s: longer than the 10 s the monitor needs.
            for (let i = 0; i < 2; i++) {
              const worker = new Worker(BUSY_WORKER, { eval: true, workerData: { ms: 13_000 } });
              worker.on('error', () => {});
              workers.push(worker);
            }
          },
          detected: () => alarmAt,
          remediated: this.#playbook('resource_pressure_cpu'),
          recovered: () => clearedAt !== undefined && !healing.pressure.isUnderPressure(),
          cleanup: stop,
        };
      }
    }
  }
}

