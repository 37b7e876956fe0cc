import { readFile } from 'node:fs/promises';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { fileURLToPath } from 'node:url';
import { sendJson, sendProblem } from '@guard/core';
import type { Detection, PlaybookRunNotice, SanitizeResult, BreakerStateChange, Logger } from '@guard/core';
import type { ImmuneEventNotice } from '@guard/immune';
import { BYTES_PER_MB } from '@guard/memory';
import type { Guard } from './guard.js';
import type { Healing } from './healing.js';
import type { HttpMetrics } from './http-metrics.js';
import type { Fleet } from '@guard/node';
import type { ImmuneStreamEnvelope } from '@guard/immune';
import { RuntimeSampler, type RuntimePoint } from './runtime-sampler.js';

const RECENT = 50;
const DETECTIONS_KEPT = 300;
const PUBLIC_DIR = fileURLToPath(new URL('../public/', import.meta.url));
const STATIC: Record<string, string> = {
  '/': 'index.html',
  '/dashboard.js': 'dashboard.js',
  '/dashboard.css': 'dashboard.css',
  '/favicon.svg': 'favicon.svg',
  // Browsers ask for /favicon.ico on their own; the SVG answers it (every current browser renders an SVG icon).
  '/favicon.ico': 'favicon.svg',
};
const TYPES: Record<string, string> = {
  html: 'text/html; charset=utf-8',
  js: 'text/javascript; charset=utf-8',
  css: 'text/css; charset=utf-8',
  svg: 'image/svg+xml',
};

/** A detection with its lifecycle: `active` until the detector reports it cleared. */
export interface DashboardDetection extends Detection {
  readonly state: 'active' | 'cleared';
  readonly clearedAt?: number;
  /** `live` (seen by this process) or `store` (read back from the immune log, e.g. before a restart). */
  readonly origin: 'live' | 'store';
}

/** An actor that published where its ACL does not allow. */
export interface AclActor {
  readonly actor: string;
  readonly violations: number;
  readonly lastTopic: string;
  readonly lastAt: number;
  readonly control: number;
  readonly blacklisted: boolean;
}

/** What the dashboard shows; also what the chaos CLI and the browser test read. */
export interface DashboardState {
  readonly now: number;
  readonly mode: string;
  readonly memory: {
    readonly status: string;
    readonly reasons: readonly string[];
    readonly rssMb: number;
    readonly heapUsedMb: number;
    readonly thresholdMb: number;
    readonly cacheEntries: number;
    readonly cacheThreshold: number;
    /** Least-squares growth of RSS over the leak window, with its fit quality. */
    readonly leak: { readonly slopeMbPerMin: number; readonly r2: number; readonly samples: number; readonly detected: boolean; readonly minR2: number; readonly rateThreshold: number } | null;
    /** Predicted time until RSS reaches its threshold at the fitted rate; null when not growing. */
    readonly timeToThresholdMs: number | null;
  } | null;
  /** 1 Hz samples of the last minutes. */
  readonly series: readonly RuntimePoint[];
  readonly detections: readonly DashboardDetection[];
  readonly sanitizations: readonly SanitizeResult[];
  /** Each breaker's state, since when, and how often it opened (so a short outage still shows). */
  readonly breakers: readonly { name: string; state: string; since?: number; opens: number; lastOpenAt?: number }[];
  readonly heartbeats: readonly {
    name: string;
    state: string;
    restarts: number;
    failedRestarts: number;
    restartsInWindow: number;
    crashLoopSince?: number;
    lastHeartbeatAt: number;
    lastRecoveryMs?: number;
  }[];
  readonly heartbeatEvents: readonly { kind: string; component: string; reason: string; at: number; recoveryMs?: number }[];
  readonly acl: { readonly actors: readonly AclActor[]; readonly violationsLastMinute: number; readonly alarms: readonly { reason: string; actor: string; at: number }[] };
  readonly pressure: { underPressure: boolean; levels: { resource: string; percent?: number; alarm: boolean }[] };
  readonly immune: readonly ImmuneEventNotice[];
  readonly playbooks: readonly PlaybookRunNotice[];
  /** Fleet mode: every replica as the fleet table lists it (null without fleet mode). */
  readonly fleet: { self: string; degraded: boolean; instances: { id: string; host: string; pid: number; mode: string; status: string; ageMs: number }[] } | null;
}

/** Options for {@link Dashboard}. */
export interface DashboardOptions {
  /** The HTTP server metrics, for request rate, p95 latency and error rate. */
  readonly http: HttpMetrics;
  /** Open `/dashboard/stream` clients at most; more get 503 + Retry-After (default 100). */
  readonly maxStreams?: number;
  /** Samples kept for the charts (default 300: five minutes at 1 Hz). */
  readonly seriesPoints?: number;
  readonly logger?: Logger;
  /** Fleet mode: the fleet whose replicas the dashboard lists. */
  readonly fleet?: Fleet | undefined;
}

function pushBounded<T>(list: T[], item: T, max = RECENT): void {
  list.unshift(item);
  if (list.length > max) list.pop();
}

/**
 * Keeps the guard's recent history (detections with their lifecycle, heartbeats, ACL offenders, playbook runs with
 * their steps), samples the process at 1 Hz, and serves the live page (`/`), its state and its stream. Detections
 * made before this process started are read back from the immune log.
 */
export class Dashboard {
  readonly #guard: Guard;
  readonly #healing: Healing;
  readonly #sampler: RuntimeSampler;
  readonly #seriesPoints: number;
  readonly #detections = new Map<string, DashboardDetection>();
  readonly #recent = {
    sanitizations: [] as SanitizeResult[],
    immune: [] as ImmuneEventNotice[],
    playbooks: [] as PlaybookRunNotice[],
    heartbeats: [] as DashboardState['heartbeatEvents'][number][],
    aclAlarms: [] as { reason: string; actor: string; at: number }[],
  };
  readonly #acl = new Map<string, { violations: number; lastTopic: string; lastAt: number; control: number }>();
  readonly #aclTimes: number[] = [];
  readonly #breakers = new Map<string, { state: BreakerStateChange['to']; since: number; opens: number; lastOpenAt?: number }>();
  readonly #clients = new Set<ServerResponse>();
  readonly #timer: NodeJS.Timeout;
  readonly #subscriptions: (() => void)[];
  readonly #maxStreams: number;
  readonly #logger: Logger | undefined;
  readonly #fleet: Fleet | undefined;
  #fleetView: DashboardState['fleet'] = null;
  #fleetPolling = false;
  #closed = false;

  constructor(guard: Guard, healing: Healing, options: DashboardOptions) {
    this.#guard = guard;
    this.#healing = healing;
    this.#maxStreams = options.maxStreams ?? 100;
    this.#seriesPoints = options.seriesPoints ?? 300;
    this.#logger = options.logger;
    this.#fleet = options.fleet;
    this.#sampler = new RuntimeSampler({
      http: options.http,
      cacheEntries: () => Object.values(guard.memory.report().series.at(-1)?.caches ?? {}).reduce((sum, n) => sum + n, 0),
      capacity: this.#seriesPoints,
      serviceCpuPercent: () => healing.pressure.levels().find((l) => l.resource === 'cpu')?.percent,
    });
    const bus = guard.bus;
    this.#subscriptions = [
      bus.subscribe('detection', (d) => this.#remember({ ...d, state: 'active', origin: 'live' })),
      bus.subscribe('detectionCleared', (c) => {
        const known = this.#detections.get(c.id);
        if (known) this.#detections.set(c.id, { ...known, state: 'cleared', clearedAt: c.clearedAt });
      }),
      bus.subscribe('sanitization', (s) => pushBounded(this.#recent.sanitizations, s)),
      // The immune service's stream, not the bus: in fleet mode it also carries the other replicas' events.
      (() => {
        const onEvent = (e: ImmuneStreamEnvelope) =>
          pushBounded(this.#recent.immune, {
            id: e.payload.event_id,
            severity: e.payload.severity,
            type: e.payload.type,
            message: e.payload.message,
            ...(e.payload.module === undefined ? {} : { module: e.payload.module }),
            ...(e.payload.agent_id === undefined ? {} : { agentId: e.payload.agent_id }),
            meta: e.payload.meta,
            createdAt: Date.parse(e.payload.published_at ?? '') || Date.now(),
          });
        guard.immune.on('immune.event_published', onEvent);
        return () => void guard.immune.off('immune.event_published', onEvent);
      })(),
      bus.subscribe('playbookRun', (r) => {
        const list = this.#recent.playbooks;
        const index = list.findIndex((p) => p.runId === r.runId);
        if (index >= 0) list[index] = r;
        else pushBounded(list, r);
      }),
      bus.subscribe('breakerStateChange', (c) => {
        const known = this.#breakers.get(c.circuit) ?? { state: c.to, since: c.at, opens: 0 };
        const opened = c.to === 'open';
        this.#breakers.set(c.circuit, { state: c.to, since: c.at, opens: known.opens + (opened ? 1 : 0), ...(opened ? { lastOpenAt: c.at } : known.lastOpenAt === undefined ? {} : { lastOpenAt: known.lastOpenAt }) });
      }),
      bus.subscribe('heartbeat', (h) => pushBounded(this.#recent.heartbeats, { kind: h.kind, component: h.component, reason: h.reason, at: h.at, ...(h.recoveryMs === undefined ? {} : { recoveryMs: h.recoveryMs }) }, 30)),
      bus.subscribe('aclViolation', (v) => {
        const actor = this.#acl.get(v.actor) ?? { violations: 0, lastTopic: v.topic, lastAt: v.at, control: 0 };
        actor.violations++;
        actor.lastTopic = v.topic;
        actor.lastAt = v.at;
        if (v.control) actor.control++;
        this.#acl.set(v.actor, actor);
        this.#aclTimes.push(v.at);
        if (this.#aclTimes.length > 10_000) this.#aclTimes.shift();
      }),
      bus.subscribe('aclAlarm', (a) => pushBounded(this.#recent.aclAlarms, { reason: a.reason, actor: a.actor, at: Date.now() }, 20)),
    ];
    this.#timer = setInterval(() => {
      this.#pollFleet();
      this.#broadcast();
    }, 1_000);
    this.#timer.unref();
    void this.#loadStoredDetections();
  }

  #remember(detection: DashboardDetection): void {
    this.#detections.delete(detection.id);
    this.#detections.set(detection.id, detection);
    if (this.#detections.size > DETECTIONS_KEPT) this.#detections.delete(this.#detections.keys().next().value!);
  }

  /** Detections of the last day from the immune log (the bridge records each one), shown as history. */
  async #loadStoredDetections(): Promise<void> {
    try {
      const events = await this.#guard.immune.getRecentEvents({ windowMs: 24 * 3_600_000, limit: 500 });
      for (const event of events.reverse()) {
        const meta = event.meta as Record<string, unknown>;
        if (meta.source !== 'detection' || typeof meta.detection_id !== 'string' || this.#detections.has(meta.detection_id)) continue;
        const severity = event.severity === 'CRITICAL' ? 'critical' : event.severity === 'WARNING' ? 'warning' : 'info';
        this.#detections.set(meta.detection_id, {
          id: meta.detection_id,
          component: String(meta.component ?? event.module ?? 'unknown') as Detection['component'],
          pattern: String(meta.pattern ?? ''),
          severity,
          resourceId: String(meta.resource_id ?? ''),
          message: event.message,
          details: (meta.details as Record<string, unknown>) ?? {},
          detectedAt: typeof meta.detected_at === 'number' ? meta.detected_at : event.createdAt,
          ...(Array.isArray(meta.frames) ? { source: meta.frames.map(String) } : {}),
          // A detection from the log that the chain does not hold now is over (e.g. it was made before a restart).
          state: 'cleared',
          origin: 'store',
        });
      }
    } catch (error) {
      this.#logger?.warn({ err: error }, 'dashboard: detection history not read from the immune log');
    }
  }

  /** The current state. */
  state(): DashboardState {
    const now = Date.now();
    const live = new Set(this.#guard.chain.active().map((d) => d.id));
    const detections = [...this.#detections.values()]
      .map((d) => (d.state === 'active' || !live.has(d.id) ? d : { ...d, state: 'active' as const }))
      .sort((a, b) => b.detectedAt - a.detectedAt);
    const report = this.#guard.memory.report();
    const latest = report.latest;
    const mb = (bytes: number) => Math.round((bytes / BYTES_PER_MB) * 10) / 10;
    const snapshot = report.series.at(-1);
    const growth = latest?.growth ?? (report.regression ? { ...report.regression } : null);
    while (this.#aclTimes.length > 0 && this.#aclTimes[0]! < now - 60_000) this.#aclTimes.shift();
    return {
      now,
      mode: this.#guard.chain.mode,
      memory: snapshot
        ? {
            status: latest?.status ?? report.status,
            reasons: latest?.reasons ?? [],
            rssMb: mb(snapshot.rssBytes),
            heapUsedMb: mb(snapshot.heapUsedBytes),
            thresholdMb: report.thresholds.rssMb,
            cacheEntries: Object.values(snapshot.caches).reduce((sum, n) => sum + n, 0),
            cacheThreshold: report.thresholds.cacheEntries,
            leak: growth
              ? {
                  slopeMbPerMin: Math.round(growth.slopeMbPerMin * 100) / 100,
                  r2: Math.round(growth.r2 * 100) / 100,
                  samples: growth.samples,
                  detected: growth.leakDetected,
                  minR2: report.thresholds.minFitR2,
                  rateThreshold: report.thresholds.leakRateMbPerMin,
                }
              : null,
            timeToThresholdMs: latest?.timeToThresholdMs ?? null,
          }
        : null,
      series: this.#sampler.points(),
      detections: detections.slice(0, 200),
      sanitizations: this.#recent.sanitizations,
      breakers: this.#guard.breakers.list().map((b) => {
        const seen = this.#breakers.get(b.name);
        return { name: b.name, state: seen?.state ?? b.state, opens: seen?.opens ?? 0, ...(seen ? { since: seen.since } : {}), ...(seen?.lastOpenAt === undefined ? {} : { lastOpenAt: seen.lastOpenAt }) };
      }),
      heartbeats: this.#healing.watchdog.states().map((s) => ({
        name: s.name,
        state: s.state,
        restarts: s.restarts,
        failedRestarts: s.failedRestarts,
        restartsInWindow: s.restartsInWindow,
        lastHeartbeatAt: s.lastHeartbeatAt,
        ...(s.crashLoopSince === undefined ? {} : { crashLoopSince: s.crashLoopSince }),
        ...(s.lastRecoveryMs === undefined ? {} : { lastRecoveryMs: s.lastRecoveryMs }),
      })),
      heartbeatEvents: this.#recent.heartbeats,
      acl: {
        actors: [...this.#acl.entries()]
          .map(([actor, a]) => ({ actor, ...a, blacklisted: this.#healing.messageBus.isBlacklisted(actor) }))
          .sort((a, b) => b.lastAt - a.lastAt),
        violationsLastMinute: this.#aclTimes.length,
        alarms: this.#recent.aclAlarms,
      },
      pressure: {
        underPressure: this.#healing.pressure.isUnderPressure(),
        levels: this.#healing.pressure.levels().map((l) => ({ resource: l.resource, percent: l.percent, alarm: l.alarm })),
      },
      immune: this.#recent.immune,
      playbooks: this.#recent.playbooks,
      fleet: this.#fleetView,
    };
  }

  /** Reads the fleet list in the background (one read at a time); the state shows the latest answer. */
  #pollFleet(): void {
    const membership = this.#fleet?.membership;
    if (!membership || this.#fleetPolling) return;
    this.#fleetPolling = true;
    const view = (degraded: boolean, list: Awaited<ReturnType<typeof membership.list>>) => ({
      self: membership.instanceId,
      degraded,
      instances: list.map((i) => ({ id: i.id, host: i.host, pid: i.pid, mode: i.mode, status: i.status, ageMs: i.ageMs })),
    });
    membership
      .list()
      .then(
        (list) => (this.#fleetView = view(false, list)),
        () => (this.#fleetView = view(true, [membership.localInstance()])),
      )
      .finally(() => {
        this.#fleetPolling = false;
      });
  }

  /** Serves `/`, its assets, `/dashboard/state` and the `/dashboard/stream` SSE; `next()` otherwise. */
  handle(req: IncomingMessage, res: ServerResponse, next: () => void): void {
    const path = (req.url ?? '/').split('?')[0]!;
    if (req.method !== 'GET' && req.method !== 'HEAD') return next();
    const file = STATIC[path];
    if (file) {
      readFile(`${PUBLIC_DIR}${file}`).then(
        (body) => {
          res.writeHead(200, { 'content-type': TYPES[file.split('.').pop()!]!, 'cache-control': 'no-cache' });
          res.end(req.method === 'HEAD' ? undefined : body);
        },
        () => next(),
      );
      return;
    }
    if (path === '/dashboard/state') return sendJson(res, 200, this.state());
    if (path === '/dashboard/stream') {
      if (this.#closed) return sendProblem(res, { status: 503, title: 'Shutting down' }, { 'retry-after': '5' });
      if (this.#clients.size >= this.#maxStreams) {
        return sendProblem(res, { status: 503, title: 'Too many stream clients', detail: `at most ${this.#maxStreams} dashboard streams are served` }, { 'retry-after': '5' });
      }
      res.writeHead(200, { 'content-type': 'text/event-stream', 'cache-control': 'no-cache', connection: 'keep-alive' });
      // HEAD asks for the headers only: an open stream would hold the connection until the client gives up.
      if (req.method === 'HEAD') return void res.end();
      res.write(`event: state\ndata: ${JSON.stringify(this.state())}\n\n`);
      this.#clients.add(res);
      req.once('close', () => this.#clients.delete(res));
      return;
    }
    next();
  }

  #broadcast(): void {
    if (this.#clients.size === 0) return;
    const frame = `event: state\ndata: ${JSON.stringify(this.state())}\n\n`;
    for (const client of this.#clients) {
      // A client that stopped reading is dropped rather than buffered without bound.
      if (client.writableLength > 1_000_000) client.destroy();
      else client.write(frame);
    }
  }

  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    clearInterval(this.#timer);
    this.#sampler.close();
    for (const off of this.#subscriptions) off();
    for (const client of this.#clients) client.end();
    this.#clients.clear();
  }
}
