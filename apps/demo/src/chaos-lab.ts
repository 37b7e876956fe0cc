import type { IncomingMessage, ServerResponse } from 'node:http';
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import { sql } from 'kysely';
import { WebSocket, type WebSocketServer } from 'ws';
import { sendJson, sendProblem, sleep, type Detection, type SanitizeResult } from '@guard/core';
import type { AnalysisService } from './analysis-service.js';
import { SCENARIO_CLAIMS, isScenarioName, type ScenarioClaim, type ScenarioName } from './chaos-scenarios.js';
import type { FaultProxy } from './fault-proxy.js';
import type { Guard } from './guard.js';
import type { Healing } from './healing.js';
import { isProcessAlive } from './process-alive.js';

/** Where one scenario stands; times are epoch ms. Each milestone says what was seen and who caused it. */
export interface ScenarioStatus {
  readonly scenario: ScenarioName;
  readonly claim: ScenarioClaim;
  readonly injectedAt: number;
  /** What the lab injected. */
  injected: string;
  detectedAt?: number;
  detectedBy?: string;
  /** `healed`/`protected`: when the guard's action took effect, and which action. */
  remediatedAt?: number;
  remediation?: string;
  /** `healed`/`protected`: when the service was back to normal, measured. */
  recoveredAt?: number;
  recovery?: string;
  /** `reported`: when the finding reached the immune log, and the evidence that nothing healed it. */
  reportedAt?: number;
  report?: string;
  /** True once the scenario reached its last milestone (the CLI stops polling). */
  finished: boolean;
  /** What the lab is still waiting for, or why a milestone does not count yet. */
  detail?: string;
  readonly targets: { readonly detectMs: number; readonly recoverMs: number };
}

/** A milestone: when, and what the lab saw. */
interface Seen {
  readonly at: number;
  readonly by: string;
}

interface Fault {
  readonly targets: { readonly detectMs: number; readonly recoverMs: number };
  /** Starts the fault; it keeps working in the background until `cleanup`, never ending itself early. */
  inject(): void | Promise<void>;
  /** First evidence that the guard saw it. */
  detected(since: number): Seen | undefined;
  /** `healed`/`protected`: the guard's action and its measured effect. */
  remediated?(since: number): Seen | undefined | Promise<Seen | undefined>;
  /** `healed`/`protected`: the service is back to normal (checked only after the remedy). */
  recovered?(since: number): Seen | undefined | Promise<Seen | undefined>;
  /** `reported`: the finding is in the immune log and nothing removed the fault. */
  reported?(since: number): Seen | undefined | Promise<Seen | undefined>;
  /** Undo what the fault left behind (after the verdict, or before a re-run). */
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

/** A child that spins forever: the runaway report export of `cpu-spike`. */
const RUNAWAY_SCRIPT = "process.title = 'guard-demo-export'; let x = 0; for (;;) x++;";

/** `identify_hogs` output in one line: the top processes with their CPU demand, owned ones marked. */
function summarizeHogs(output: unknown): string {
  const hogs = (output as { hogs?: { pid?: number; name?: string; cpuPercent?: number; demandPercent?: number; owned?: boolean }[] } | undefined)?.hogs;
  if (!Array.isArray(hogs)) return 'no report';
  return hogs
    .slice(0, 5)
    .map((h) => `${h.pid} ${h.name ?? '?'} ${Math.round(h.demandPercent ?? h.cpuPercent ?? 0)}%${h.owned ? ' (owned)' : ''}`)
    .join(', ');
}

/** A full garbage collection (`--expose-gc` turned on at run time for the lab only). */
let gcFunction: (() => void) | undefined;
function fullGc(): void {
  if (!gcFunction) {
    setFlagsFromString('--expose-gc');
    gcFunction = runInNewContext('gc') as () => void;
  }
  gcFunction();
}

const median = (values: readonly number[]): number => {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.floor(sorted.length / 2)] ?? 0;
};

/** Injects each chaos scenario into the running demo and reports its timeline (`POST/GET/DELETE /chaos/:scenario`). */
export class ChaosLab {
  readonly #guard: Guard;
  readonly #healing: Healing;
  readonly #service: AnalysisService;
  readonly #proxy: FaultProxy;
  readonly #deps: ChaosLabDeps;
  readonly #runs = new Map<ScenarioName, { status: ScenarioStatus; fault: Fault }>();
  readonly #events = {
    detections: [] as Detection[],
    sanitizations: [] as SanitizeResult[],
    breakers: [] as { to: string; at: number }[],
    alarms: [] as { status: string; at: number; reasons: readonly string[] }[],
    immune: [] as { message: string; module?: string; at: number }[],
  };
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
      bus.subscribe('sanitization', (s) => remember(this.#events.sanitizations, s)),
      bus.subscribe('breakerStateChange', (c) => remember(this.#events.breakers, { to: c.to, at: c.at })),
      bus.subscribe('memoryAlarm', (a) => remember(this.#events.alarms, { status: a.status, at: a.at, reasons: a.reasons })),
      bus.subscribe('immuneEvent', (e) => remember(this.#events.immune, { message: e.message, ...(e.module === undefined ? {} : { module: e.module }), at: Date.now() })),
    ];
  }

  /** `POST /chaos/:scenario` injects, `GET` reports, `DELETE` ends the fault; `next()` for other paths. */
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
    if (req.method === 'DELETE') {
      this.stop(name).then(
        (status) => (status ? sendJson(res, 200, status) : sendProblem(res, { status: 404, title: 'Not injected', detail: `scenario "${name}" was not injected yet`, field: 'scenario' })),
        (error) => sendProblem(res, { status: 500, title: 'Stop failed', detail: (error as Error).message }),
      );
      return;
    }
    sendProblem(res, { status: 405, title: 'Method not allowed', detail: 'use GET, POST or DELETE' }, { allow: 'GET, POST, DELETE' });
  }

  /** Ends a scenario's fault without a verdict (`DELETE /chaos/:scenario`: the CLI gave up waiting). */
  async stop(name: ScenarioName): Promise<ScenarioStatus | undefined> {
    const run = this.#runs.get(name);
    if (!run) return undefined;
    if (!run.status.finished) {
      run.status.finished = true;
      run.status.detail = `stopped by the lab before the last milestone${run.status.detail ? ` (was: ${run.status.detail})` : ''}`;
      await run.fault.cleanup?.();
    }
    return run.status;
  }

  /** Starts a scenario (a previous run of it is cleaned up first). */
  async inject(name: ScenarioName): Promise<ScenarioStatus> {
    await this.#runs.get(name)?.fault.cleanup?.();
    const status: ScenarioStatus = { scenario: name, claim: SCENARIO_CLAIMS[name], injectedAt: Date.now(), injected: '', finished: false, targets: { detectMs: 0, recoverMs: 0 } };
    const fault = this.#fault(name, status);
    Object.assign(status, { targets: fault.targets });
    this.#runs.set(name, { status, fault });
    void Promise.resolve(fault.inject()).catch((error: unknown) => {
      status.detail = `injection failed: ${(error as Error).message}`;
    });
    return status;
  }

  /** The scenario's timeline so far: each milestone is checked only after the one before it. */
  async status(name: ScenarioName): Promise<ScenarioStatus | undefined> {
    const run = this.#runs.get(name);
    if (!run) return undefined;
    const { status, fault } = run;
    if (status.finished) return status;
    const since = status.injectedAt;
    if (status.detectedAt === undefined) {
      const seen = fault.detected(since);
      if (seen) Object.assign(status, { detectedAt: seen.at, detectedBy: seen.by });
    }
    if (status.detectedAt === undefined) return status;
    if (status.claim === 'reported') {
      const seen = await fault.reported?.(since);
      if (seen) {
        Object.assign(status, { reportedAt: seen.at, report: seen.by, finished: true });
        await fault.cleanup?.();
      }
      return status;
    }
    if (status.remediatedAt === undefined) {
      const seen = await fault.remediated?.(since);
      if (seen) Object.assign(status, { remediatedAt: seen.at, remediation: seen.by });
    }
    if (status.remediatedAt === undefined) return status;
    const seen = await fault.recovered?.(since);
    if (seen) {
      Object.assign(status, { recoveredAt: seen.at, recovery: seen.by, finished: true });
      await fault.cleanup?.();
    }
    return status;
  }

  close(): void {
    for (const off of this.#subscriptions) off();
    for (const cleanup of [...this.#cleanups]) cleanup();
  }

  #detection(component: string, pattern?: string): (since: number) => Seen | undefined {
    return (since) => {
      const hit = [...this.#events.detections, ...this.#guard.chain.active(component)].find(
        (d) => d.component === component && (pattern === undefined || d.pattern === pattern) && d.detectedAt >= since,
      );
      return hit && { at: hit.detectedAt, by: `${hit.component}/${hit.pattern} (${hit.severity}): ${hit.message}` };
    };
  }

  /**
   * A sanitization of `component` after `since` that succeeded: the sanitizer acted (only in full mode). With
   * `resource`, it must be the lab's own resource (the connection it opened), not another one's.
   */
  #sanitized(component: string, resource?: () => string | undefined): (since: number) => Seen | undefined {
    return (since) => {
      const id = resource?.();
      const hit = this.#events.sanitizations.find(
        (s) => s.component === component && s.startedAt >= since && s.outcome === 'success' && (resource === undefined || s.resourceId === id),
      );
      if (!hit) return undefined;
      // The remedy acts from its start (a close frame goes out before the sanitization reports back).
      return { at: hit.startedAt, by: `sanitizer ${component}: ${hit.actions.join(', ') || 'no actions'}${id ? ` on ${id}` : ''}` };
    };
  }

  /** Non-dry runs of `playbook` started after `since`, newest first. */
  #runsOf(playbook: string, since: number) {
    return this.#healing.engine
      .runs()
      .filter((r) => r.playbook === playbook && !r.dryRun && r.startedAt >= since)
      .sort((a, b) => b.startedAt - a.startedAt);
  }

  /** Runs a cleanup once, also on close. */
  #track(cleanup: () => void): () => void {
    let done = false;
    const once = () => {
      if (done) return;
      done = true;
      this.#cleanups.delete(once);
      cleanup();
    };
    this.#cleanups.add(once);
    return once;
  }

  /** A lab client, and its connection id in the guard's WebSocket tracker (the one connection that is new). */
  async #connectTracked(onOpen: (ws: WebSocket) => void, options: { ack: boolean }): Promise<{ client: WebSocket; id: string | undefined }> {
    const before = new Set(this.#guard.sockets.connections().map((c) => c.id));
    const client = await this.#connect(onOpen, options);
    return { client, id: this.#guard.sockets.connections().find((c) => !before.has(c.id))?.id };
  }

  #connect(onOpen: (ws: WebSocket) => void, options: { ack: boolean }): Promise<WebSocket> {
    return new Promise((resolve, reject) => {
      const ws = new WebSocket(this.#deps.wsUrl());
      ws.on('message', (data) => {
        let message: { id?: string } = {};
        try {
          message = JSON.parse(String(data)) as { id?: string };
        } catch {}
        if (options.ack && message.id) ws.send(JSON.stringify({ type: 'ack', id: message.id }));
      });
      ws.once('open', () => {
        onOpen(ws);
        resolve(ws);
      });
      ws.once('error', reject);
    });
  }

  #fault(name: ScenarioName, status: ScenarioStatus): Fault {
    const guard = this.#guard;
    const healing = this.#healing;
    switch (name) {
      case 'ws-no-ack': {
        let client: WebSocket | undefined;
        let closed: { code: number; at: number } | undefined;
        let id: string | undefined;
        status.injected = 'a WebSocket client that reads but never acks';
        return {
          targets: { detectMs: 6_000, recoverMs: 15_000 },
          inject: async () => {
            ({ client, id } = await this.#connectTracked((ws) => ws.once('close', (code) => (closed = { code, at: Date.now() })), { ack: false }));
          },
          detected: this.#detection('websocket', 'no_ack'),
          remediated: this.#sanitized('websocket', () => id),
          // The client never closes by itself: a close from the server with a policy code is the sanitizer's.
          recovered: () => (closed && closed.code !== 1000 ? { at: closed.at, by: `the server closed the client with ${closed.code}` } : undefined),
          cleanup: () => client?.terminate(),
        };
      }
      case 'ws-slow-consumer': {
        let client: WebSocket | undefined;
        let serverSide: WebSocket | undefined;
        let closedAt: number | undefined;
        let id: string | undefined;
        status.injected = 'a client that stops reading while the server streams 30 MB';
        return {
          targets: { detectMs: 5_000, recoverMs: 15_000 },
          inject: async () => {
            ({ client, id } = await this.#connectTracked(() => {}, { ack: true }));
            await sleep(100); // the welcome is read first
            client.pause(); // stops reading: the server's buffer grows
            serverSide = [...this.#deps.wss.clients].find((ws) => guard.sockets.connectionId(ws) === id);
            serverSide?.once('close', () => (closedAt = Date.now()));
            const chunk = 'x'.repeat(256 * 1024);
            for (let i = 0; i < 120 && serverSide && serverSide.readyState === WebSocket.OPEN; i++) {
              guard.sockets.send(serverSide, { type: 'report_chunk', i, chunk });
              if (i % 8 === 7) await new Promise((resolve) => setImmediate(resolve));
            }
          },
          detected: this.#detection('websocket', 'slow_consumer'),
          remediated: this.#sanitized('websocket', () => id),
          recovered: () => (closedAt !== undefined ? { at: closedAt, by: 'the server-side socket is closed, its buffer released' } : undefined),
          cleanup: () => client?.terminate(),
        };
      }
      case 'bus-leak': {
        const event = 'analysis.finished';
        let churn: NodeJS.Timeout | undefined;
        status.injected = '1,200 requests each subscribe a view to the app bus and never unsubscribe; the requests end, their listeners stay';
        const stop = this.#track(() => {
          if (churn) clearInterval(churn);
        });
        return {
          targets: { detectMs: 5_000, recoverMs: 15_000 },
          inject: () => {
            // The classic leak: a per-request subscription that is never removed. Each listener is owned by its request
            // (a WeakRef), which ends with the request; the listener does not reference it.
            for (let i = 0; i < 1_200; i++) guard.emitters.on(guard.appBus, event, () => {}, { owner: { request: i } });
            // V8 clears weak references only in a full collection, which a long-running server runs sooner or later;
            // the lab runs one every second so the ended requests are collected within the scenario's window.
            churn = setInterval(fullGc, 1_000);
            churn.unref();
          },
          detected: this.#detection('eventbus'),
          // Only listeners whose owner was collected are removable (C2 never removes a live owner's listener).
          remediated: this.#sanitized('eventbus', () => 'app-bus#stale'),
          recovered: () => {
            const count = guard.appBus.listenerCount(event);
            return count < guard.emitters.leakThreshold ? { at: Date.now(), by: `${count} listeners left on ${event}` } : undefined;
          },
          cleanup: () => {
            stop();
            if (guard.appBus.listenerCount(event) >= guard.emitters.leakThreshold) guard.appBus.removeAllListeners(event);
          },
        };
      }
      case 'db-orphan': {
        let id: string | undefined;
        status.injected = 'a transaction opened and never finished (holds its connection)';
        return {
          targets: { detectMs: 6_000, recoverMs: 15_000 },
          inject: () => {
            const before = new Set(guard.dialect.tracker.checkouts().map((c) => c.id));
            void guard.db
              .transaction()
              .execute(async (trx) => {
                await trx.selectFrom('analyses').select('id').limit(1).execute();
                id = guard.dialect.tracker.checkouts().find((c) => !before.has(c.id))?.id;
                await new Promise(() => {});
              })
              .catch(() => {});
          },
          detected: this.#detection('db', 'connection_orphan'),
          remediated: this.#sanitized('db', () => id),
          recovered: async () => {
            if (guard.dialect.tracker.checkouts().some((c) => c.id === id)) return undefined;
            await sql`select 1`.execute(guard.db);
            return { at: Date.now(), by: `${id} released (${guard.dialect.tracker.activeCount()} connections held); select 1 answers` };
          },
        };
      }
      case 'half-open': {
        let backAt: number | undefined;
        let back: NodeJS.Timeout | undefined;
        status.injected = 'the downstream hangs: 5 timeouts open the breaker, its half-open probe hangs; the downstream is back after 4.5 s';
        const restore = this.#track(() => {
          if (back) clearTimeout(back);
          this.#proxy.mode = { kind: 'pass' };
        });
        return {
          targets: { detectMs: 8_000, recoverMs: 20_000 },
          inject: async () => {
            this.#proxy.mode = { kind: 'latency', ms: 60_000 };
            // The downstream returns on its own clock; the probe that already hangs on it does not.
            back = setTimeout(() => {
              this.#proxy.mode = { kind: 'pass' };
              backAt = Date.now();
            }, 4_500);
            back.unref();
            for (let i = 0; i < 5; i++) await this.#service.score('trip', { timeoutMs: 100 }).catch(() => {});
            await sleep(2_100); // past the breaker's 2 s reset timeout: the next call is its half-open probe
            void guard.downstreamBreaker.execute((signal) => fetch(`http://127.0.0.1:${this.#proxy.port}/score?text=probe`, { signal })).catch(() => {});
          },
          detected: this.#detection('circuit', 'half_open_orphan'),
          remediated: this.#sanitized('circuit', () => guard.downstreamBreaker.name),
          // Without the guard the hung probe holds the breaker half-open for 60 s; traffic is what probes it again.
          recovered: async () => {
            if (backAt === undefined) return undefined;
            if (guard.downstreamBreaker.state !== 'closed') await this.#service.score('ping').catch(() => {});
            return guard.downstreamBreaker.state === 'closed' ? { at: Date.now(), by: `breaker closed through its probes, ${Date.now() - backAt} ms after the downstream came back` } : undefined;
          },
          cleanup: restore,
        };
      }
      case 'batch-loss': {
        let before = 0;
        let letteredAt: number | undefined;
        status.injected = 'the results sink fails every write; 20 results are added';
        return {
          targets: { detectMs: 5_000, recoverMs: 15_000 },
          inject: async () => {
            before = await guard.batch.deadLetterCount();
            guard.sink.failing = true;
            for (let i = 0; i < 20; i++) guard.batch.add({ analysisId: `chaos-${i}`, score: i, at: Date.now() });
          },
          detected: this.#detection('batch'),
          // The batch writer's own policy: failed flushes go to the durable dead-letter table (the C5 sanitizer's
          // forced flush does the same when a critical detection is handed to it).
          remediated: async () => {
            const lettered = (await guard.batch.deadLetterCount()) - before;
            if (lettered < 20) return undefined;
            letteredAt ??= Date.now();
            return { at: letteredAt, by: `batch writer: ${lettered} failing items in the dead-letter table` };
          },
          recovered: async () => {
            const lettered = (await guard.batch.deadLetterCount()) - before;
            if (guard.batch.buffered !== 0) return undefined;
            return { at: Date.now(), by: `${lettered} items dead-lettered, 0 buffered, 0 lost` };
          },
          cleanup: () => {
            guard.sink.failing = false;
          },
        };
      }
      case 'context-leak': {
        const before = guard.contexts.openCount;
        status.injected = '20 async contexts opened and never closed';
        return {
          targets: { detectMs: 6_000, recoverMs: 15_000 },
          inject: () => {
            for (let i = 0; i < 20; i++) guard.contexts.open('leaky-request');
          },
          detected: this.#detection('context'),
          remediated: this.#sanitized('context', () => 'leaky-request'),
          recovered: () => (guard.contexts.openCount <= before ? { at: Date.now(), by: `${guard.contexts.openCount} contexts open (${before} before)` } : undefined),
        };
      }
      case 'handle-leak': {
        const timers: NodeJS.Timeout[] = [];
        status.injected = '150 intervals created and never cleared';
        // The lab's own cleanup, after the verdict: clearing its timers is not the guard's doing and is never counted.
        const release = this.#track(() => timers.splice(0).forEach(clearInterval));
        return {
          targets: { detectMs: 5_000, recoverMs: 10_000 },
          inject: () => {
            for (let i = 0; i < 150; i++) timers.push(setInterval(() => {}, 60_000));
          },
          detected: this.#detection('handles', 'handle_leak'),
          // C7 is report-only: the finding must reach the immune log while every leaked timer is still alive.
          reported: (since) => {
            const record = this.#events.immune.find((e) => e.at >= since && /handle/i.test(`${e.module ?? ''} ${e.message}`));
            if (!record) return undefined;
            const active = process.getActiveResourcesInfo().filter((type) => type === 'Timeout').length;
            if (timers.length < 150 || active < timers.length) return undefined;
            return { at: record.at, by: `immune log: "${record.message}"; ${active} active timers, the ${timers.length} leaked ones still alive (not healed: no safe automatic fix)` };
          },
          cleanup: release,
        };
      }
      case 'memory-leak': {
        const sessions = this.#deps.sessions;
        const cache = sessions.entries;
        let timer: NodeJS.Timeout | undefined;
        status.injected = 'a burst of 3,000 session cache entries that nothing evicts (threshold 2,200)';
        const stop = this.#track(() => {
          if (timer) clearInterval(timer);
          timer = undefined;
        });
        return {
          targets: { detectMs: 12_000, recoverMs: 20_000 },
          inject: () => {
            // The burst ends by itself, but its entries stay: only an eviction brings the cache back down.
            timer = setInterval(() => {
              for (let i = 0; i < 40 && cache.size < 3_000; i++) cache.set(`chaos-${cache.size}`, Buffer.alloc(1024, 1));
              if (cache.size >= 3_000) stop();
            }, 100);
            timer.unref();
          },
          detected: (since) => {
            const alarm = this.#events.alarms.find((a) => a.status !== 'healthy' && a.at >= since);
            return alarm && { at: alarm.at, by: `memory guardrail ${alarm.status}: ${alarm.reasons.join('; ')}` };
          },
          remediated: (since) => {
            const at = sessions.lastEvictionAt;
            return at !== undefined && at >= since ? { at, by: 'session cache evicted on the critical memory alarm (immune log records it)' } : undefined;
          },
          recovered: () =>
            guard.memory.status !== 'critical' && cache.size < 2_200 ? { at: Date.now(), by: `cache at ${cache.size} entries, memory status ${guard.memory.status}` } : undefined,
          cleanup: stop,
        };
      }
      case 'downstream-outage':
        return this.#downstreamOutage(status);
      case 'heartbeat-pause': {
        const restartsBefore = healing.worker.restarts;
        let restartedAt: number | undefined;
        status.injected = 'the results worker stops its heartbeats';
        return {
          targets: { detectMs: 1_000, recoverMs: 5_000 },
          inject: () => {
            healing.worker.paused = true;
          },
          detected: (since) => {
            const at = healing.watchdog.state('results-worker')?.lastMissedAt;
            return at !== undefined && at >= since ? { at, by: 'heartbeat watchdog: results-worker missed its 500 ms deadline' } : undefined;
          },
          // Only the restart hook (full mode) resumes the worker.
          remediated: () => {
            if (healing.worker.restarts > restartsBefore) restartedAt ??= Date.now();
            return restartedAt !== undefined ? { at: restartedAt, by: `watchdog restart hook ran (restart #${healing.worker.restarts})` } : undefined;
          },
          recovered: () => {
            const state = healing.watchdog.state('results-worker');
            if (healing.worker.paused || state?.state !== 'healthy') return undefined;
            return { at: Date.now(), by: `heartbeats again${state.lastRecoveryMs === undefined ? '' : `, ${state.lastRecoveryMs.toFixed(1)} ms after the missed deadline`}` };
          },
          cleanup: () => {
            healing.worker.paused = false;
          },
        };
      }
      case 'acl-spam':
        return this.#aclSpam(status);
      case 'cpu-spike':
        return this.#cpuSpike(status);
    }
  }

  /** The proxy drops connections for 6 s; the breaker must fail fast meanwhile and close through its own probes after. */
  #downstreamOutage(status: ScenarioStatus): Fault {
    const guard = this.#guard;
    const OUTAGE_MS = 6_000;
    const calls: { at: number; ms: number; ok: boolean; circuitOpen: boolean }[] = [];
    let outageEndedAt: number | undefined;
    let traffic: NodeJS.Timeout | undefined;
    let end: NodeJS.Timeout | undefined;
    status.injected = `the downstream refuses connections for ${OUTAGE_MS / 1000} s while traffic continues (10 calls/s)`;
    const stop = this.#track(() => {
      if (traffic) clearInterval(traffic);
      if (end) clearTimeout(end);
      this.#proxy.mode = { kind: 'pass' };
    });
    return {
      targets: { detectMs: 3_000, recoverMs: 15_000 },
      inject: () => {
        this.#proxy.mode = { kind: 'down' };
        traffic = setInterval(() => {
          const t0 = performance.now();
          this.#service.score('traffic').then(
            () => calls.push({ at: Date.now(), ms: performance.now() - t0, ok: true, circuitOpen: false }),
            (error: { code?: string }) => calls.push({ at: Date.now(), ms: performance.now() - t0, ok: false, circuitOpen: error?.code === 'CIRCUIT_OPEN' }),
          );
        }, 100);
        // The outage ends on its own clock: that is the world recovering, not the guard.
        end = setTimeout(() => {
          this.#proxy.mode = { kind: 'pass' };
          outageEndedAt = Date.now();
        }, OUTAGE_MS);
        end.unref();
      },
      detected: (since) => {
        const open = this.#events.breakers.find((b) => b.to === 'open' && b.at >= since);
        return open && { at: open.at, by: 'breaker downstream opened after 5 consecutive failures' };
      },
      remediated: (since) => {
        const fast = calls.filter((c) => c.circuitOpen && c.at >= since && (outageEndedAt === undefined || c.at < outageEndedAt));
        if (fast.length < 5) return undefined;
        return { at: fast[0]!.at, by: `fail fast: the open breaker refuses calls with CIRCUIT_OPEN (median ${median(fast.map((c) => c.ms)).toFixed(1)} ms) instead of waiting on the dead downstream` };
      },
      recovered: (since) => {
        if (outageEndedAt === undefined) return undefined;
        const ended = outageEndedAt;
        const closed = this.#events.breakers.find((b) => b.to === 'closed' && b.at >= ended);
        if (!closed || guard.downstreamBreaker.state !== 'closed') return undefined;
        const halfOpen = this.#events.breakers.filter((b) => b.to === 'half_open' && b.at <= closed.at).at(-1);
        const during = calls.filter((c) => c.at >= since && c.at < ended);
        const fast = during.filter((c) => c.circuitOpen);
        const ok = calls.filter((c) => c.ok && c.at >= closed.at).length;
        return {
          at: closed.at,
          by:
            `during the outage ${fast.length}/${during.length} calls failed fast (median ${median(fast.map((c) => c.ms)).toFixed(1)} ms); ` +
            `the breaker's probe at +${halfOpen ? halfOpen.at - ended : '?'} ms closed it at +${closed.at - ended} ms after the outage ended; ${ok} calls ok since`,
        };
      },
      cleanup: stop,
    };
  }

  /** Two actors keep publishing to a control topic they may not use until the lab stops them. */
  #aclSpam(status: ScenarioStatus): Fault {
    const bus = this.#healing.messageBus;
    const attackers = ['rogue-agent', 'rogue-agent-2'];
    const seen = new Map(attackers.map((a) => [a, { denied: 0, lastDeniedAt: 0, blacklistedAt: undefined as number | undefined }]));
    let alarm: { at: number; by: string } | undefined;
    let spam: NodeJS.Timeout | undefined;
    let legit = { sent: 0, delivered: 0, refused: 0 };
    status.injected = `${attackers.join(' and ')} publish to control.shutdown (denied by the ACL) 20 times a second each, without end; the scheduler publishes there legitimately 20 times a second`;
    const offAlarm = this.#healing.aclMonitor.onAlarm((a) => {
      const offenders = (a as { offenders?: readonly string[] }).offenders ?? [a.actor];
      if (!alarm && offenders.some((o) => attackers.includes(o))) alarm = { at: Date.now(), by: `ACL monitor ${a.reason}: ${a.violations} violations by ${a.actor}; offenders ${offenders.join(', ')}` };
    });
    const offLegit = bus.subscribe('control.shutdown', (_payload, actor) => void (actor === 'scheduler' && (legit.delivered += 1)));
    const stop = this.#track(() => {
      if (spam) clearInterval(spam);
      offAlarm();
      offLegit();
    });
    return {
      targets: { detectMs: 2_000, recoverMs: 10_000 },
      inject: () => {
        for (const actor of attackers) bus.unblacklist(actor);
        legit = { sent: 0, delivered: 0, refused: 0 };
        let tick = 0;
        spam = setInterval(() => {
          tick++;
          for (const actor of attackers) {
            const outcome = bus.publish(actor, 'control.shutdown', { tick });
            const s = seen.get(actor)!;
            if (outcome === 'denied') {
              s.denied++;
              s.lastDeniedAt = Date.now();
            } else if (outcome === 'blacklisted') s.blacklistedAt ??= Date.now();
          }
          // A legitimate publisher on the same topic, faster than a topic-wide limit would allow: a remedy aimed at the
          // attackers must never refuse it.
          legit.sent++;
          if (bus.publish('scheduler', 'control.shutdown', { tick }) !== 'delivered') legit.refused++;
        }, 50);
      },
      detected: () => alarm,
      remediated: (since) => {
        const refusedAt = attackers.map((a) => seen.get(a)!.blacklistedAt);
        if (refusedAt.some((at) => at === undefined)) {
          status.detail = `waiting for every attacker to be blacklisted (${attackers.filter((a) => seen.get(a)!.blacklistedAt !== undefined).join(', ') || 'none'} so far)`;
          return undefined;
        }
        // The blacklist must come from a (non-dry) run of the ACL playbook, not from anything else.
        const runs = this.#runsOf('message_bus_acl_violation_fix', since);
        const byPlaybook = attackers.filter((a) => runs.some((r) => r.steps.some((s) => s.action === 'blacklist_actor' && s.outcome === 'succeeded' && JSON.stringify(s.output ?? null).includes(a))));
        if (byPlaybook.length < attackers.length) {
          status.detail = `blacklisted, but not by a message_bus_acl_violation_fix run: ${attackers.filter((a) => !byPlaybook.includes(a)).join(', ')}`;
          return undefined;
        }
        status.detail = undefined;
        const at = Math.max(...(refusedAt as number[]));
        return { at, by: `playbook message_bus_acl_violation_fix (${runs.length} run${runs.length === 1 ? '' : 's'}): blacklisted ${attackers.join(', ')}; their publishes are now refused` };
      },
      recovered: () => {
        const now = Date.now();
        const quietMs = now - Math.max(...attackers.map((a) => seen.get(a)!.lastDeniedAt));
        if (quietMs < 2_000 || legit.sent === 0) return undefined;
        if (legit.refused > 0) {
          status.detail = `${legit.refused}/${legit.sent} legitimate publishes refused`;
          return undefined;
        }
        return { at: now, by: `no ACL violation for ${(quietMs / 1000).toFixed(1)} s while the attackers keep trying; legitimate publishes ${legit.delivered}/${legit.sent} delivered` };
      },
      cleanup: stop,
    };
  }

  /** A runaway child and a flood of heavy tasks that keep burning until the guard's actions stop them. */
  #cpuSpike(status: ScenarioStatus): Fault {
    const healing = this.#healing;
    const { workload } = healing;
    let runaway: { pid: number; exitedAt?: number } | undefined;
    let flood: NodeJS.Timeout | undefined;
    let alarm: { at: number; level: number } | undefined;
    let clearedAt: number | undefined;
    let workersBefore: number[] = [];
    let remedy: { startedAtPause: number; removed: number[] } | undefined;
    const offPressure = healing.pressure.onChange((change) => {
      if (change.resource !== 'cpu') return;
      if (change.state === 'alarm') alarm ??= { at: Date.now(), level: Math.round(change.level) };
      else if (alarm) clearedAt ??= Date.now();
    });
    const stop = this.#track(() => {
      offPressure();
      if (flood) clearInterval(flood);
      workload.heavy.clear();
      if (runaway && isProcessAlive(runaway.pid)) process.kill(runaway.pid, 'SIGKILL');
    });
    const restore = async () => {
      stop();
      // Back to the normal service for the next run: lift the remedies and restore the replicas the playbook removed.
      healing.tasks.resume('heavy');
      healing.limiter.clear('non_critical');
      healing.limiter.clear('api');
      const missing = workersBefore.length - workload.pool.size;
      if (missing > 0) workload.pool.scaleUp(missing);
    };
    return {
      targets: { detectMs: 20_000, recoverMs: 60_000 },
      inject: () => {
        workersBefore = workload.pool.pids();
        const child = workload.processes.spawn('report-export', process.execPath, ['-e', RUNAWAY_SCRIPT]);
        runaway = { pid: child.pid };
        child.child?.once('exit', () => (runaway!.exitedAt = Date.now()));
        // Keep every worker replica busy with 300 ms report builds.
        flood = setInterval(() => {
          while (workload.heavy.stats().queued < 10) workload.heavy.submit({ name: 'quarterly-report', burnMs: 300 });
        }, 100);
        status.injected = `runaway export child pid ${child.pid} (spins forever) + report builds that keep ${workersBefore.length} worker replicas (pids ${workersBefore.join(', ')}) busy`;
      },
      detected: () => alarm && { at: alarm.at, by: `resource-pressure cpu alarm at ${alarm.level}% of the service's CPU limit (sustained over the threshold)` },
      remediated: (since) => {
        const run = this.#runsOf('resource_pressure_cpu', since)[0];
        if (!run) return undefined;
        const problems: string[] = [];
        const step = (action: string) => run.steps.find((s) => s.action === action && s.outcome === 'succeeded');
        if (run.status !== 'succeeded') problems.push(`run ${run.runId} ended ${run.status}${run.error ? ` (${run.error})` : ''}`);
        if (!runaway || runaway.exitedAt === undefined || isProcessAlive(runaway.pid)) problems.push(`runaway pid ${runaway?.pid} still alive`);
        else if (!JSON.stringify(step('kill_runaway')?.output ?? null).includes(String(runaway.pid))) problems.push(`kill_runaway did not name pid ${runaway.pid}`);
        const removed = workersBefore.filter((pid) => !workload.pool.pids().includes(pid));
        if (removed.length < 2 || removed.some(isProcessAlive) || !step('scale_down')) problems.push(`scale_down: ${removed.length} worker pids gone`);
        if (!step('pause_tasks') || !workload.heavy.stats().paused) problems.push('heavy tasks not paused');
        if (!step('throttle') || !healing.limiter.isLimited(workload.jobs.key)) problems.push('background jobs not throttled');
        if (problems.length > 0) {
          status.detail = problems.join('; ');
          return undefined;
        }
        status.detail = undefined;
        remedy = { startedAtPause: workload.heavy.stats().started, removed };
        const hogs = summarizeHogs(step('identify_hogs')?.output);
        return {
          at: runaway!.exitedAt!,
          by:
            `playbook resource_pressure_cpu ${run.runId} succeeded: kill_runaway killed pid ${runaway!.pid}; scale_down removed pids ${removed.join(', ')} (gone); ` +
            `pause_tasks heavy; throttle non_critical; identify_hogs: ${hogs}`,
        };
      },
      recovered: () => {
        if (clearedAt === undefined || healing.pressure.isUnderPressure() || !remedy) return undefined;
        const jobs = workload.jobs.stats();
        const heavy = workload.heavy.stats();
        const startedWhilePaused = heavy.started - remedy.startedAtPause;
        if (startedWhilePaused > 0 || jobs.ratePerSec > jobs.baseRatePerSec * 0.6) {
          status.detail = `effects not held: ${startedWhilePaused} heavy tasks started while paused, background jobs at ${jobs.ratePerSec.toFixed(1)}/s`;
          return undefined;
        }
        const cpu = healing.pressure.levels().find((l) => l.resource === 'cpu')?.percent;
        return {
          at: clearedAt,
          by: `cpu alarm cleared (service CPU ${cpu === undefined ? '?' : cpu.toFixed(0)}%); background jobs ${jobs.baseRatePerSec}/s -> ${jobs.ratePerSec.toFixed(1)}/s; 0 heavy tasks started while paused (${heavy.queued} queued); ${workload.pool.size} worker replica(s) left`,
        };
      },
      cleanup: restore,
    };
  }
}
