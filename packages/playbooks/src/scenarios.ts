import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { Worker } from 'node:worker_threads';
import { GuardBus } from '@guard/core';
import type { MetricsOptions } from '@guard/core';
import { AclViolationMonitor } from './acl-violation-monitor.js';
import { createActionRegistry, createProbeRegistry } from './builtin-actions.js';
import { HeartbeatWatchdog } from './heartbeat-watchdog.js';
import { builtinPlaybooksDir, loadPlaybookFile } from './load-playbooks.js';
import { MessageBus } from './message-bus.js';
import { PlaybookEngine } from './playbook-engine.js';
import type { PlaybookRunResult } from './playbook-engine.js';
import { RateLimiter } from './rate-limiter.js';
import { ResourcePressureMonitor } from './resource-pressure-monitor.js';
import type { PressureSampler } from './system-sampler.js';
import { TaskGate } from './task-gate.js';
import { join } from 'node:path';

/** The timeline of one stress scenario; times are ms after the fault was injected. */
export interface ScenarioTimeline {
  readonly scenario: 'S01' | 'S02' | 'S03';
  readonly title: string;
  readonly injectedMs: 0;
  readonly detectedMs: number | undefined;
  readonly remediatedMs: number | undefined;
  readonly recoveredMs: number | undefined;
  /** True when every target below was met. */
  readonly passed: boolean;
  /** What was required, in words. */
  readonly targets: readonly string[];
  /** Targets that were missed. */
  readonly misses: readonly string[];
  readonly details: Readonly<Record<string, unknown>>;
}

function timeline(
  scenario: ScenarioTimeline['scenario'],
  title: string,
  times: { detectedMs?: number | undefined; remediatedMs?: number | undefined; recoveredMs?: number | undefined },
  checks: readonly [string, boolean][],
  details: Record<string, unknown>,
): ScenarioTimeline {
  const misses = checks.filter(([, ok]) => !ok).map(([t]) => t);
  return {
    scenario,
    title,
    injectedMs: 0,
    detectedMs: times.detectedMs,
    remediatedMs: times.remediatedMs,
    recoveredMs: times.recoveredMs,
    passed: misses.length === 0,
    targets: checks.map(([t]) => t),
    misses,
    details,
  };
}

const round = (ms: number | undefined): number | undefined => (ms === undefined ? undefined : Math.round(ms * 10) / 10);

function waitFor(predicate: () => boolean, timeoutMs: number, stepMs = 5): Promise<boolean> {
  return new Promise((resolve) => {
    const deadline = performance.now() + timeoutMs;
    const tick = (): void => {
      if (predicate()) return resolve(true);
      if (performance.now() > deadline) return resolve(false);
      setTimeout(tick, stepMs);
    };
    tick();
  });
}

/** Options for {@link runS01}. */
export interface S01Options extends MetricsOptions {
  /** Heartbeat deadline of the component. Default 200. */
  readonly deadlineMs?: number;
  /** Required time from the missed deadline to the restarted component. Default 100. */
  readonly recoveryTargetMs?: number;
}

/**
 * S01 heartbeat pause: a component beats every `deadlineMs / 4`, then stops; the watchdog must restart it
 * within `recoveryTargetMs` (100) of the missed deadline, and beats resume.
 *
 * @example
 * const t = await runS01();
 * console.log(t.detectedMs, t.remediatedMs, t.recoveredMs, t.passed);
 */
export async function runS01(options: S01Options = {}): Promise<ScenarioTimeline> {
  const deadlineMs = options.deadlineMs ?? 200;
  const target = options.recoveryTargetMs ?? 100;
  await using watchdog = new HeartbeatWatchdog({ ...metrics(options), restartTimeoutMs: 5_000 });
  let paused = false;
  let beats = 0;
  const beat = setInterval(() => {
    if (!paused) {
      watchdog.heartbeat('worker');
      beats++;
    }
  }, Math.max(1, Math.floor(deadlineMs / 4)));
  try {
    let injectedAt = 0;
    let detectedAt: number | undefined;
    let remediatedAt: number | undefined;
    let recoveredAt: number | undefined;
    watchdog.register('worker', {
      deadlineMs,
      restart: () => {
        paused = false;
      },
    });
    using _events = watchdog.onEvent((e) => {
      if (e.kind === 'missed') detectedAt ??= performance.now();
      if (e.kind === 'restarted') remediatedAt ??= performance.now();
    });
    await new Promise((r) => setTimeout(r, deadlineMs));
    paused = true;
    injectedAt = performance.now();
    const beatsAtPause = beats;
    await waitFor(() => remediatedAt !== undefined, deadlineMs * 10);
    await waitFor(() => beats > beatsAtPause, deadlineMs * 2, 1);
    if (beats > beatsAtPause) recoveredAt = performance.now();
    const recovery = watchdog.recoveries()[0];
    const rel = (t: number | undefined): number | undefined => round(t === undefined ? undefined : t - injectedAt);
    return timeline(
      'S01',
      'heartbeat pause',
      { detectedMs: rel(detectedAt), remediatedMs: rel(remediatedAt), recoveredMs: rel(recoveredAt) },
      [
        ['missed heartbeat detected', detectedAt !== undefined],
        [`component restarted within ${target} ms of the missed deadline`, recovery !== undefined && recovery.recoveryMs <= target],
        ['heartbeats resumed', recoveredAt !== undefined],
      ],
      { deadlineMs, recoveryMsAfterDeadline: recovery?.recoveryMs, state: watchdog.state('worker')?.state },
    );
  } finally {
    clearInterval(beat);
  }
}

/** Options for {@link runS02}. */
export interface S02Options extends MetricsOptions {
  /** Denied publishes from one actor. Default 100. */
  readonly violations?: number;
  /** Detection target. Default 1000. */
  readonly detectTargetMs?: number;
  /** Bus healthy again (playbook verified). Default 2000. */
  readonly recoverTargetMs?: number;
  /** Folder holding `message_bus_acl_violation_fix.yaml`. Default: the package's built-in playbooks. */
  readonly playbooksDir?: string;
}

/**
 * S02 ACL spam: one actor makes `violations` (100) denied publishes in bursts of 10 every 10 ms. The
 * monitor must detect within 1 s, the ACL playbook must blacklist the actor and verify, and the bus must
 * be healthy again (verification passed) within 2 s.
 *
 * @example
 * const t = await runS02();
 */
export async function runS02(options: S02Options = {}): Promise<ScenarioTimeline> {
  const total = options.violations ?? 100;
  const detectTarget = options.detectTargetMs ?? 1_000;
  const recoverTarget = options.recoverTargetMs ?? 2_000;
  const bus = new GuardBus();
  await using messageBus = new MessageBus({ ...metrics(options), name: 's02', acl: { api: ['orders.*'] }, bus });
  const playbook = await loadPlaybookFile(join(options.playbooksDir ?? builtinPlaybooksDir(), 'message_bus_acl_violation_fix.yaml'));
  await using engine = new PlaybookEngine({ ...metrics(options), bus });
  await using monitor = new AclViolationMonitor({ messageBus, engine, bus });
  const actions = createActionRegistry({ messageBus });
  const probes = createProbeRegistry({ messageBus, aclMonitor: monitor });
  for (const name of actions.names()) engine.actions.register(name, actions.get(name), { replace: true });
  for (const name of probes.names()) engine.probes.register(name, probes.get(name), { replace: true });
  engine.register(playbook);

  let detectedAt: number | undefined;
  let remediatedAt: number | undefined;
  let run: PlaybookRunResult | undefined;
  let runDoneAt: number | undefined;
  using _alarm = monitor.onAlarm(() => (detectedAt ??= performance.now()));
  const onStep = (s: { action: string; outcome: string }): void => {
    if (s.action === 'blacklist_actor' && s.outcome === 'succeeded') remediatedAt ??= performance.now();
  };
  const onRun = (r: { status: string; runId: string }): void => {
    if (r.status !== 'started' && r.status !== 'skipped' && runDoneAt === undefined) {
      runDoneAt = performance.now();
      run = engine.runs().find((x) => x.runId === r.runId);
    }
  };
  bus.on('playbookStep', onStep);
  bus.on('playbookRun', onRun);
  const healthy = messageBus.subscribe('orders.created', () => undefined);
  const injectedAt = performance.now();
  const outcomes: Record<string, number> = {};
  for (let sent = 0; sent < total; ) {
    for (let i = 0; i < 10 && sent < total; i++, sent++) {
      const outcome = messageBus.publish('rogue', i % 2 === 0 ? 'control.shutdown' : 'orders.refund_all', { n: sent });
      outcomes[outcome] = (outcomes[outcome] ?? 0) + 1;
    }
    await new Promise((r) => setTimeout(r, 10));
  }
  await waitFor(() => runDoneAt !== undefined, recoverTarget * 5);
  const legit = messageBus.publish('api', 'orders.created', { id: 1 });
  healthy();
  const rel = (t: number | undefined): number | undefined => round(t === undefined ? undefined : t - injectedAt);
  const recovered = run?.status === 'succeeded' ? runDoneAt : undefined;
  return timeline(
    'S02',
    'ACL spam',
    { detectedMs: rel(detectedAt), remediatedMs: rel(remediatedAt), recoveredMs: rel(recovered) },
    [
      [`detected within ${detectTarget} ms`, detectedAt !== undefined && detectedAt - injectedAt <= detectTarget],
      ['actor blacklisted', messageBus.isBlacklisted('rogue')],
      ['playbook run succeeded (verified)', run?.status === 'succeeded'],
      [`bus healthy again within ${recoverTarget} ms`, recovered !== undefined && recovered - injectedAt <= recoverTarget],
      ['legitimate traffic still delivered', legit === 'delivered'],
    ],
    { publishes: outcomes, runStatus: run?.status, verificationAttempts: run?.verification?.attempts, steps: run?.steps.map((s) => `${s.id}:${s.outcome}`) },
  );
}

/** Options for {@link runS03}. */
export interface S03Options extends MetricsOptions {
  /** How long the CPU spike lasts. Default 13 000 (longer than `sustainMs` plus two samples). */
  readonly spikeMs?: number;
  /** Busy worker threads. Default 2. */
  readonly workers?: number;
  /** Default 1000. */
  readonly intervalMs?: number;
  /** Default 10 000. */
  readonly sustainMs?: number;
  /** Default 3000. */
  readonly clearSustainMs?: number;
  /** Recovery must be reported within this long after the spike ends. Default 30 000. */
  readonly recoveryTargetMs?: number;
  /**
   * A sampler to use instead of the real one (unit tests). It gets whether the spike is on, so a
   * synthetic series can follow it; no worker threads start when it is given.
   */
  readonly sampler?: (spiking: boolean) => ReturnType<PressureSampler>;
  /** Folder holding `resource_pressure_cpu.yaml`. Default: the package's built-in playbooks. */
  readonly playbooksDir?: string;
  /**
   * CPU figure of the real sampler. Default `demand` (CPU time plus run-queue wait), so the spike reads
   * as pressure even on a machine where neighbours keep the workers from getting a full core.
   */
  readonly cpuSource?: 'process' | 'system' | 'max' | 'demand';
}

const BUSY = `const { workerData, parentPort } = require('node:worker_threads');
const end = Date.now() + workerData.ms;
let x = 0;
while (Date.now() < end) { for (let i = 0; i < 1e5; i++) x += i; }
parentPort.postMessage(x);`;

/**
 * S03 CPU spike: busy worker threads burn CPU for `spikeMs`; the pressure monitor must alarm once the
 * level is sustained, turn load shedding on, run the CPU playbook (throttle, pause, API rate limit) and
 * report recovery (alarm cleared, playbook verified) within 30 s of the spike's end.
 *
 * @example
 * const t = await runS03();
 */
export async function runS03(options: S03Options = {}): Promise<ScenarioTimeline> {
  const spikeMs = options.spikeMs ?? 13_000;
  const recoveryTarget = options.recoveryTargetMs ?? 30_000;
  let spiking = false;
  const health = createServer((_req, res) => {
    res.writeHead(200, { 'content-type': 'text/plain' }).end('ok');
  });
  await new Promise<void>((r) => health.listen(0, '127.0.0.1', r));
  const healthUrl = `http://127.0.0.1:${(health.address() as AddressInfo).port}/health`;
  const bus = new GuardBus();
  const limiter = new RateLimiter();
  await using tasks = new TaskGate();
  const injected = options.sampler;
  await using pressure = new ResourcePressureMonitor({
    ...metrics(options),
    intervalMs: options.intervalMs ?? 1_000,
    sustainMs: options.sustainMs ?? 10_000,
    clearSustainMs: options.clearSustainMs ?? 3_000,
    ...(injected ? { sampler: () => injected(spiking) } : { system: { cpuSource: options.cpuSource ?? ('demand' as const) } }),
    bus,
    autoStart: false,
  });
  const playbook = await loadPlaybookFile(join(options.playbooksDir ?? builtinPlaybooksDir(), 'resource_pressure_cpu.yaml'));
  await using engine = new PlaybookEngine({
    ...metrics(options),
    bus,
    actions: createActionRegistry({ limiter, tasks }),
    probes: createProbeRegistry({ pressure, healthUrl }),
    playbooks: [playbook],
  });
  let detectedAt: number | undefined;
  let sheddingAt: number | undefined;
  let clearedAt: number | undefined;
  let run: PlaybookRunResult | undefined;
  let runPromise: Promise<PlaybookRunResult[]> | undefined;
  let remediatedAt: number | undefined;
  let runDoneAt: number | undefined;
  using _change = pressure.onChange((c) => {
    if (c.resource !== 'cpu') return;
    if (c.state === 'alarm') {
      detectedAt ??= performance.now();
      if (pressure.isUnderPressure()) sheddingAt ??= performance.now();
      runPromise ??= engine.trigger('resource_pressure.cpu', { ...c }, { reason: 'cpu_pressure' });
    } else clearedAt ??= performance.now();
  });
  const onStep = (s: { step: string; outcome: string }): void => {
    if (s.step === 'api_throttling' && s.outcome === 'succeeded') remediatedAt ??= performance.now();
  };
  const onRun = (r: { status: string }): void => {
    if (r.status !== 'started' && r.status !== 'skipped') runDoneAt ??= performance.now();
  };
  bus.on('playbookStep', onStep);
  bus.on('playbookRun', onRun);
  const workers: Worker[] = [];
  try {
    pressure.start();
    await pressure.sampleNow();
    spiking = true;
    const injectedAt = performance.now();
    if (!injected) {
      for (let i = 0; i < (options.workers ?? 2); i++) {
        const w = new Worker(BUSY, { eval: true, workerData: { ms: spikeMs } });
        w.on('error', () => undefined);
        workers.push(w);
      }
    }
    await new Promise((r) => setTimeout(r, spikeMs));
    spiking = false;
    await Promise.all(workers.map((w) => w.terminate()));
    const spikeEndAt = performance.now();
    await waitFor(() => clearedAt !== undefined || detectedAt === undefined, recoveryTarget, 50);
    run = runPromise ? (await runPromise)[0] : undefined;
    const rel = (t: number | undefined): number | undefined => round(t === undefined ? undefined : t - injectedAt);
    const recoveredAt = clearedAt !== undefined && run?.status === 'succeeded' ? Math.max(clearedAt, runDoneAt ?? clearedAt) : undefined;
    return timeline(
      'S03',
      'CPU spike',
      { detectedMs: rel(detectedAt), remediatedMs: rel(remediatedAt), recoveredMs: rel(recoveredAt) },
      [
        ['alarm raised once the spike was sustained', detectedAt !== undefined],
        ['load shedding on during the alarm', sheddingAt !== undefined],
        ['CPU playbook ran and verified', run?.status === 'succeeded'],
        [`recovery reported within ${recoveryTarget} ms of the spike's end`, recoveredAt !== undefined && recoveredAt - spikeEndAt <= recoveryTarget],
        ['load shedding off after recovery', !pressure.isUnderPressure()],
      ],
      {
        spikeMs,
        spikeEndMs: rel(spikeEndAt),
        recoveredAfterSpikeEndMs: round(recoveredAt === undefined ? undefined : recoveredAt - spikeEndAt),
        runStatus: run?.status,
        steps: run?.steps.map((s) => `${s.id}:${s.outcome}`),
        apiLimited: limiter.isLimited('api'),
        heavyPaused: tasks.isPaused('heavy'),
        source: injected ? 'injected sampler' : `${options.workers ?? 2} busy worker threads, cpuSource ${options.cpuSource ?? 'demand'}`,
      },
    );
  } finally {
    spiking = false;
    await Promise.all(workers.map((w) => w.terminate()));
    bus.off('playbookStep', onStep);
    bus.off('playbookRun', onRun);
    await new Promise<void>((r) => health.close(() => r()));
  }
}

/**
 * Formats timelines as a table: scenario, injected, detected, remediated, recovered (ms), result.
 *
 * @example
 * console.log(formatTimelines([await runS01(), await runS02()]));
 */
export function formatTimelines(timelines: readonly ScenarioTimeline[]): string {
  const rows = [['scenario', 'injected ms', 'detected ms', 'remediated ms', 'recovered ms', 'result']];
  const fmt = (n: number | undefined): string => (n === undefined ? '-' : String(n));
  for (const t of timelines) {
    rows.push([`${t.scenario} ${t.title}`, '0', fmt(t.detectedMs), fmt(t.remediatedMs), fmt(t.recoveredMs), t.passed ? 'PASS' : `MISS: ${t.misses.join('; ')}`]);
  }
  const widths = rows[0]!.map((_, i) => Math.max(...rows.map((r) => r[i]!.length)));
  return rows.map((r) => r.map((c, i) => c.padEnd(widths[i]!)).join('  ').trimEnd()).join('\n');
}

function metrics(options: MetricsOptions): MetricsOptions {
  return { ...(options.registry ? { registry: options.registry } : {}), ...(options.prefix ? { prefix: options.prefix } : {}) };
}
