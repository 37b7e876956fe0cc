import { readFile } from 'node:fs/promises';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { fileURLToPath } from 'node:url';
import { sendProblem } from '@guard/core';
import type { Detection, PlaybookRunNotice, SanitizeResult, ImmuneEventNotice, BreakerStateChange } from '@guard/core';
import { BYTES_PER_MB } from '@guard/memory';
import type { Guard } from './guard.js';
import type { Healing } from './healing.js';
import type { Fleet } from '@guard/node';
import type { ImmuneStreamEnvelope } from '@guard/immune';

const HISTORY = 50;
const PUBLIC_DIR = fileURLToPath(new URL('../public/', import.meta.url));
const STATIC: Record<string, string> = {
  '/': 'index.html',
  '/dashboard.js': 'dashboard.js',
  '/dashboard.css': 'dashboard.css',
};
const TYPES: Record<string, string> = { html: 'text/html; charset=utf-8', js: 'text/javascript; charset=utf-8', css: 'text/css; charset=utf-8' };

/** What the dashboard shows; also what the chaos CLI polls. */
export interface DashboardState {
  readonly mode: string;
  readonly detections: (Detection & { active: boolean })[];
  readonly sanitizations: SanitizeResult[];
  readonly memory: {
    status: string;
    rssMb: number;
    growthMbPerMin: number;
    thresholdMb: number;
    points: { t: number; rssMb: number }[];
    regression: { startT: number; startMb: number; endT: number; endMb: number } | null;
  } | null;
  readonly breakers: { name: string; state: string }[];
  readonly heartbeats: { name: string; state: string; restarts: number; lastRecoveryMs?: number }[];
  readonly pressure: { underPressure: boolean; levels: { resource: string; percent?: number; alarm: boolean }[] };
  readonly immune: (ImmuneEventNotice & { origin?: string })[];
  readonly playbooks: PlaybookRunNotice[];
  /** Fleet mode: every replica as the fleet table lists it (null without fleet mode). */
  readonly fleet: { self: string; degraded: boolean; instances: { id: string; host: string; pid: number; mode: string; status: string; ageMs: number }[] } | null;
}

/** Keeps the recent history of guard events and serves the live page (`/`) and its stream. */
export class Dashboard {
  readonly #guard: Guard;
  readonly #healing: Healing;
  readonly #history = { detections: [] as Detection[], sanitizations: [] as SanitizeResult[], immune: [] as ImmuneEventNotice[], playbooks: [] as PlaybookRunNotice[] };
  readonly #breakers = new Map<string, BreakerStateChange['to']>();
  readonly #clients = new Set<ServerResponse>();
  readonly #timer: NodeJS.Timeout;
  readonly #subscriptions: (() => void)[];
  readonly #maxStreams: number;
  readonly #fleet: Fleet | undefined;
  #fleetView: DashboardState['fleet'] = null;
  #fleetPolling = false;

  /** `maxStreams`: open `/dashboard/stream` clients at most; more get 503 + Retry-After (default 100). */
  constructor(guard: Guard, healing: Healing, options: { maxStreams?: number; fleet?: Fleet | undefined } = {}) {
    this.#guard = guard;
    this.#healing = healing;
    this.#maxStreams = options.maxStreams ?? 100;
    this.#fleet = options.fleet;
    const push = <T>(list: T[], item: T) => {
      list.unshift(item);
      if (list.length > HISTORY) list.pop();
    };
    const bus = guard.bus;
    this.#subscriptions = [
      bus.subscribe('detection', (d) => push(this.#history.detections, d)),
      bus.subscribe('sanitization', (s) => push(this.#history.sanitizations, s)),
      // The immune service's stream, not the bus: in fleet mode it also carries the other replicas' events.
      (() => {
        const onEvent = (e: ImmuneStreamEnvelope) =>
          push(this.#history.immune, {
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
        const list = this.#history.playbooks;
        const index = list.findIndex((p) => p.runId === r.runId);
        if (index >= 0) list[index] = r;
        else push(list, r);
      }),
      bus.subscribe('breakerStateChange', (c) => this.#breakers.set(c.circuit, c.to)),
    ];
    this.#timer = setInterval(() => {
      this.#pollFleet();
      this.#broadcast();
    }, 1_000);
    this.#timer.unref();
  }

  /** The current state, merging the chain's active detections (visible in every mode, dry_run included). */
  state(): DashboardState {
    const active = this.#guard.chain.active();
    const activeIds = new Set(active.map((d) => d.id));
    const seen = new Set<string>();
    const detections: (Detection & { active: boolean })[] = [];
    for (const d of [...active, ...this.#history.detections]) {
      if (seen.has(d.id)) continue;
      seen.add(d.id);
      detections.push({ ...d, active: activeIds.has(d.id) });
    }
    detections.sort((a, b) => b.detectedAt - a.detectedAt);
    const report = this.#guard.memory.report();
    const series = report.series.slice(-600);
    const reg = report.regression;
    const mb = (bytes: number) => bytes / BYTES_PER_MB;
    const memory = series.length === 0 ? null : {
      status: report.status,
      rssMb: mb(series[series.length - 1]!.rssBytes),
      growthMbPerMin: reg?.slopeMbPerMin ?? 0,
      thresholdMb: report.thresholds.rssMb,
      points: series.map((s) => ({ t: s.at, rssMb: mb(s.rssBytes) })),
      regression: reg
        ? {
            startT: Math.max(reg.windowStartAt, series[0]!.at),
            startMb: reg.interceptMb + (reg.slopeMbPerMin * (Math.max(reg.windowStartAt, series[0]!.at) - reg.originAt)) / 60_000,
            endT: series[series.length - 1]!.at,
            endMb: reg.interceptMb + (reg.slopeMbPerMin * (series[series.length - 1]!.at - reg.originAt)) / 60_000,
          }
        : null,
    };
    return {
      mode: this.#guard.chain.mode,
      detections: detections.slice(0, HISTORY),
      sanitizations: this.#history.sanitizations,
      memory,
      breakers: this.#guard.breakers.list().map((b) => ({ name: b.name, state: this.#breakers.get(b.name) ?? b.state })),
      heartbeats: this.#healing.watchdog.states().map((s) => ({ name: s.name, state: s.state, restarts: s.restarts, lastRecoveryMs: s.lastRecoveryMs })),
      pressure: {
        underPressure: this.#healing.pressure.isUnderPressure(),
        levels: this.#healing.pressure.levels().map((l) => ({ resource: l.resource, percent: l.percent, alarm: l.alarm })),
      },
      immune: this.#history.immune,
      playbooks: this.#history.playbooks,
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
    if (req.method !== 'GET') return next();
    const file = STATIC[path];
    if (file) {
      readFile(`${PUBLIC_DIR}${file}`).then(
        (body) => {
          res.writeHead(200, { 'content-type': TYPES[file.split('.').pop()!]!, 'cache-control': 'no-cache' });
          res.end(body);
        },
        () => next(),
      );
      return;
    }
    if (path === '/dashboard/state') {
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end(JSON.stringify(this.state()));
      return;
    }
    if (path === '/dashboard/stream') {
      if (this.#clients.size >= this.#maxStreams) {
        return sendProblem(res, { status: 503, title: 'Too many stream clients', detail: `at most ${this.#maxStreams} dashboard streams are served` }, { 'retry-after': '5' });
      }
      res.writeHead(200, { 'content-type': 'text/event-stream', 'cache-control': 'no-cache', connection: 'keep-alive' });
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
    clearInterval(this.#timer);
    for (const off of this.#subscriptions) off();
    for (const client of this.#clients) client.end();
    this.#clients.clear();
  }
}
