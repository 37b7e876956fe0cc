import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { spawn } from 'node:child_process';
import type { ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { GuardBus, sleep, waitUntil } from '@guard/core';
import type { MetricsOptions } from '@guard/core';
import { ACL_ALARM_EVENT, AclViolationMonitor } from './acl-violation-monitor.js';
import { createActionRegistry, createProbeRegistry } from './builtin-actions.js';
import { HeartbeatWatchdog } from './heartbeat-watchdog.js';
import { builtinPlaybooksDir, loadPlaybookFile } from './load-playbooks.js';
import { MessageBus } from './message-bus.js';
import { PlaybookEngine } from './playbook-engine.js';
import type { PlaybookRunResult, StepResult } from './playbook-engine.js';
import type { Playbook } from './playbook-types.js';
import { ProcessRegistry } from './process-registry.js';
import { RateLimiter } from './rate-limiter.js';
import { ResourcePressureMonitor } from './resource-pressure-monitor.js';
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

/** Times on `performance.now()`'s clock; the timeline holds them relative to `injectedAt`. */
interface ScenarioTimes {
  readonly injectedAt: number;
  readonly detectedAt: number | undefined;
  readonly remediatedAt: number | undefined;
  readonly recoveredAt: number | undefined;
}

function timeline(
  scenario: ScenarioTimeline['scenario'],
  title: string,
  times: ScenarioTimes,
  checks: readonly [string, boolean][],
  details: Record<string, unknown>,
): ScenarioTimeline {
  const misses = checks.filter(([, ok]) => !ok).map(([t]) => t);
  return {
    scenario,
    title,
    injectedMs: 0,
    detectedMs: since(times.injectedAt, times.detectedAt),
    remediatedMs: since(times.injectedAt, times.remediatedAt),
    recoveredMs: since(times.injectedAt, times.recoveredAt),
    passed: misses.length === 0,
    targets: checks.map(([t]) => t),
    misses,
    details,
  };
}

const round = (ms: number | undefined): number | undefined => (ms === undefined ? undefined : Math.round(ms * 10) / 10);

/** ms from `from` to `at`, to a tenth (undefined when it never happened). */
const since = (from: number, at: number | undefined): number | undefined => round(at === undefined ? undefined : at - from);

/** Waits until `predicate` holds or `timeoutMs` passed. @returns whether it held (a scenario reports a miss, never throws). */
function waitFor(predicate: () => boolean, timeoutMs: number, intervalMs = 5): Promise<boolean> {
  return waitUntil(predicate, { timeoutMs: Math.max(1, timeoutMs), intervalMs }).then(
    () => true,
    () => predicate(),
  );
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
    await sleep(deadlineMs);
    paused = true;
    injectedAt = performance.now();
    const beatsAtPause = beats;
    await waitFor(() => remediatedAt !== undefined, deadlineMs * 10);
    await waitFor(() => beats > beatsAtPause, deadlineMs * 2, 1);
    if (beats > beatsAtPause) recoveredAt = performance.now();
    const recovery = watchdog.recoveries()[0];
    return timeline(
      'S01',
      'heartbeat pause',
      { injectedAt, detectedAt, remediatedAt, recoveredAt },
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
  /** Attackers; the second starts `secondAttackerDelayMs` after the first (while the first one's run verifies). Default 2. */
  readonly attackers?: number;
  /** Default 1500. */
  readonly secondAttackerDelayMs?: number;
  /** Denied publishes per second of each attacker, until the guard stops it. Default 100. */
  readonly attackRatePerSec?: number;
  /** Publishes per second of the legitimate publisher on the same topics' family. Default 50. */
  readonly legitRatePerSec?: number;
  /** Detection target. Default 1000. */
  readonly detectTargetMs?: number;
  /** Every run verified (no new violations for 2 s, canary delivered) within this long of the injection. Default 8000. */
  readonly recoverTargetMs?: number;
  /** Folder holding `message_bus_acl_violation_fix.yaml`. Default: the package's built-in playbooks. */
  readonly playbooksDir?: string;
  /** Use this playbook instead (mutation tests: a notify-only playbook must make S02 fail). */
  readonly playbook?: Playbook;
  /** Plan only (the guard in `detect` mode): S02 must fail. */
  readonly dryRun?: boolean;
}

/**
 * S02 ACL spam: attackers keep making denied publishes (100/s each; the second starts while the first
 * one's run is verifying) until something stops them. Passes only when the monitor detects within 1 s,
 * the ACL playbook's own blacklist steps stop every attacker (their publishes are refused while they keep
 * trying), its verification (no new violations for 2 s, a canary delivered) passes, and the legitimate
 * publisher is never throttled.
 *
 * @example
 * const t = await runS02();
 */
export async function runS02(options: S02Options = {}): Promise<ScenarioTimeline> {
  const detectTarget = options.detectTargetMs ?? 1_000;
  const recoverTarget = options.recoverTargetMs ?? 8_000;
  const attackerCount = options.attackers ?? 2;
  const attackEveryMs = 1_000 / (options.attackRatePerSec ?? 100);
  const legitEveryMs = 1_000 / (options.legitRatePerSec ?? 50);
  const bus = new GuardBus();
  await using messageBus = new MessageBus({ ...metrics(options), name: 's02', acl: { api: ['orders.*'] }, bus });
  await using monitor = new AclViolationMonitor({ messageBus, bus });
  const playbook = options.playbook ?? (await loadPlaybookFile(join(options.playbooksDir ?? builtinPlaybooksDir(), 'message_bus_acl_violation_fix.yaml')));
  await using engine = new PlaybookEngine({
    ...metrics(options),
    bus,
    ...(options.dryRun ? { dryRun: true } : {}),
    actions: createActionRegistry({ messageBus, onFollowUp: () => undefined }),
    probes: createProbeRegistry({ messageBus, aclMonitor: monitor }),
    playbooks: [playbook],
  });

  let detectedAt: number | undefined;
  const results: PlaybookRunResult[] = [];
  let pending = 0;
  const alarms: string[] = [];
  using _alarm = monitor.onAlarm((alarm) => {
    detectedAt ??= performance.now();
    alarms.push(`${alarm.reason}:${alarm.actor}`);
    pending++;
    engine
      .trigger(ACL_ALARM_EVENT, { ...alarm }, { reason: alarm.reason })
      .then((rs) => void results.push(...rs), () => undefined)
      .finally(() => pending--);
  });
  let remediatedAt: number | undefined;
  const onStep = (n: { action: string; outcome: string }): void => {
    if (n.action === 'blacklist_actor' && n.outcome === 'succeeded') remediatedAt ??= performance.now();
  };
  bus.on('playbookStep', onStep);

  const legit = { delivered: 0, other: 0 };
  using _orders = messageBus.subscribe('orders.created', () => undefined);
  const attackers = Array.from({ length: attackerCount }, (_, i) => ({ actor: `rogue-${i + 1}`, sent: 0, denied: 0, refused: 0, other: 0, refusedAt: undefined as number | undefined }));
  const timers: NodeJS.Timeout[] = [];
  const attack = (a: (typeof attackers)[number]): void => {
    timers.push(
      setInterval(() => {
        const outcome = messageBus.publish(a.actor, a.sent++ % 2 === 0 ? 'control.shutdown' : 'orders.refund_all', { n: a.sent });
        if (outcome === 'denied') a.denied++;
        else if (outcome === 'blacklisted') {
          a.refused++;
          a.refusedAt ??= performance.now();
        } else a.other++;
      }, attackEveryMs),
    );
  };
  const injectedAt = performance.now();
  try {
    timers.push(
      setInterval(() => {
        if (messageBus.publish('api', 'orders.created', { at: performance.now() }) === 'delivered') legit.delivered++;
        else legit.other++;
      }, legitEveryMs),
    );
    attack(attackers[0]!);
    if (attackers.length > 1) {
      await sleep(options.secondAttackerDelayMs ?? 1_500);
      for (const a of attackers.slice(1)) attack(a);
    }
    // Every attacker keeps trying; the scenario waits for the guard, never stops an attacker itself.
    const settled = (): boolean => results.length > 0 && pending === 0 && attackers.every((a) => a.refusedAt !== undefined);
    await waitFor(settled, Math.max(0, injectedAt + recoverTarget - performance.now()), 20);
    const finished = results.filter((r) => r.status !== 'skipped');
    // Run times are epoch ms; convert the last run's end to this clock.
    // A dry run (the guard in detect mode) "succeeds" as a plan: only real, verified runs count.
    const verified = finished.length > 0 && finished.every((r) => r.status === 'succeeded' && !r.dryRun);
    const recoveredAt = verified ? performance.now() - (Date.now() - Math.max(...finished.map((r) => r.finishedAt))) : undefined;
    // Attackers still publishing: are they all refused, with no violation in the last 500 ms?
    await sleep(500);
    const quietWhileAttacked = messageBus.violationsWithin(500) === 0 && attackers.every((a) => a.refused > 0);
    const canary = messageBus.canary().delivered;
    const blacklistedByGuard = (actor: string): boolean =>
      finished.some((r) =>
        r.steps.some(
          (s) =>
            s.action === 'blacklist_actor' &&
            s.outcome === 'succeeded' &&
            ((s.output as { actor?: string } | undefined)?.actor === actor ||
              ((s.output as { items?: { item: unknown; outcome: string }[] } | undefined)?.items ?? []).some((i) => i.item === actor && i.outcome === 'succeeded')),
        ),
      );
    const stopped = attackers.filter((a) => a.refusedAt !== undefined && blacklistedByGuard(a.actor) && messageBus.isBlacklisted(a.actor));
    const verifiedAt = recoveredAt;
    return timeline(
      'S02',
      'ACL spam',
      { injectedAt, detectedAt, remediatedAt, recoveredAt: verifiedAt },
      [
        [`detected within ${detectTarget} ms`, detectedAt !== undefined && detectedAt - injectedAt <= detectTarget],
        [`every attacker stopped by the playbook's blacklist while still publishing (${stopped.length}/${attackers.length})`, stopped.length === attackers.length],
        ['ACL playbook verified: no new violations for 2 s and a canary delivered', verified],
        [`recovered within ${recoverTarget} ms`, verifiedAt !== undefined && verifiedAt - injectedAt <= recoverTarget],
        ['attackers still refused, no violation in the last 500 ms', quietWhileAttacked],
        [`legitimate traffic never throttled (${legit.delivered}/${legit.delivered + legit.other} delivered)`, legit.other === 0 && legit.delivered > 0],
        ['canary delivered at the end', canary],
      ],
      {
        alarms,
        attackers: attackers.map((a) => ({ actor: a.actor, sent: a.sent, denied: a.denied, refused: a.refused, other: a.other, stoppedMs: since(injectedAt, a.refusedAt) })),
        legit,
        runs: results.map((r) => ({
          key: r.key,
          status: r.status,
          ...(r.skipReason ? { skipReason: r.skipReason } : {}),
          durationMs: Math.round(r.durationMs),
          verificationAttempts: r.verification?.attempts,
          steps: r.steps.map((x) => `${x.id}:${x.outcome}`),
        })),
      },
    );
  } finally {
    for (const t of timers) clearInterval(t);
    bus.off('playbookStep', onStep);
  }
}

/** Options for {@link runS03}. */
export interface S03Options extends MetricsOptions {
  /** Runaway child processes (busy loops) the service registers with its ProcessRegistry. Default 2. */
  readonly runaways?: number;
  /** Worker instances in the service's pool (child processes; `scale_down` removes 2). Default 3. */
  readonly workers?: number;
  /** Default 1000. */
  readonly intervalMs?: number;
  /** Default 10 000. */
  readonly sustainMs?: number;
  /** Default 3000. */
  readonly clearSustainMs?: number;
  /** The run must be verified and the alarm cleared within this long of the alarm. Default 60 000. */
  readonly recoveryTargetMs?: number;
  /** Longest the runaways may burn before the scenario gives up (they are then killed by the cleanup). Default 120 000. */
  readonly maxSpikeMs?: number;
  /** Folder holding `resource_pressure_cpu.yaml`. Default: the package's built-in playbooks. */
  readonly playbooksDir?: string;
  /** Use this playbook instead (mutation tests: a notify-only playbook must make S03 fail). */
  readonly playbook?: Playbook;
  /** Plan only (the guard in `detect` mode): S03 must fail. */
  readonly dryRun?: boolean;
  /**
   * CPU figure of the pressure monitor. Default `service`: this process plus the CPU demand of the processes
   * it owns ({@link ProcessRegistry.serviceCpuSampler}), so a shared build machine's other load does not
   * decide the verdict. `system`, `process`, `demand`, `max`: the monitor's system sampler.
   */
  readonly cpuSource?: 'service' | 'process' | 'system' | 'max' | 'demand';
}

const RUNAWAY = 'for (;;) {}';
const WORKER = "process.stdout.write('ready\\n'); setInterval(() => { let x = 0; for (let i = 0; i < 1e4; i++) x += i; }, 100);";

/**
 * S03 CPU spike: runaway child processes, registered with the service's ProcessRegistry, burn CPU until
 * something stops them. Passes only when the pressure monitor alarms once the level is sustained, the CPU
 * playbook's `kill_runaway` kills every runaway (they exit on the guard's signal: the scenario never stops
 * them), `scale_down` removes 2 worker instances, background jobs run at half their measured rate, heavy
 * tasks pause, the run's verification reads CPU < 60 % from the sampler and the alarm clears.
 *
 * @example
 * const t = await runS03();
 */
export async function runS03(options: S03Options = {}): Promise<ScenarioTimeline> {
  const recoveryTarget = options.recoveryTargetMs ?? 60_000;
  const cpuSource = options.cpuSource ?? 'service';
  const health = createServer((_req, res) => {
    res.writeHead(200, { 'content-type': 'text/plain' }).end('ok');
  });
  let healthUrl: string | undefined;
  await new Promise<void>((r) => health.listen(0, '127.0.0.1', r));
  healthUrl = `http://127.0.0.1:${(health.address() as AddressInfo).port}/health`;
  const bus = new GuardBus();
  const limiter = new RateLimiter();
  await using tasks = new TaskGate();
  await using processes = new ProcessRegistry();
  const serviceCpu = processes.serviceCpuSampler();
  await using pressure = new ResourcePressureMonitor({
    ...metrics(options),
    intervalMs: options.intervalMs ?? 1_000,
    sustainMs: options.sustainMs ?? 10_000,
    clearSustainMs: options.clearSustainMs ?? 3_000,
    ...(cpuSource === 'service'
      ? {
          sampler: async () => {
            const cpuPercent = await serviceCpu();
            return cpuPercent === undefined ? {} : { cpuPercent };
          },
        }
      : { system: { cpuSource } }),
    bus,
    autoStart: false,
  });
  const workers = processes.pool('workers');
  const playbook = options.playbook ?? (await loadPlaybookFile(join(options.playbooksDir ?? builtinPlaybooksDir(), 'resource_pressure_cpu.yaml')));
  await using engine = new PlaybookEngine({
    ...metrics(options),
    bus,
    ...(options.dryRun ? { dryRun: true } : {}),
    actions: createActionRegistry({ limiter, tasks, processes, workers, onFollowUp: () => undefined }),
    probes: createProbeRegistry({ pressure, healthUrl: () => healthUrl, processes, workers }),
    playbooks: [playbook],
  });
  let detectedAt: number | undefined;
  let sheddingAt: number | undefined;
  let clearedAt: number | undefined;
  let runPromise: Promise<PlaybookRunResult[]> | undefined;
  let remediatedAt: number | undefined;
  using _change = pressure.onChange((c) => {
    if (c.resource !== 'cpu') return;
    if (c.state === 'alarm') {
      detectedAt ??= performance.now();
      if (pressure.isUnderPressure()) sheddingAt ??= performance.now();
      runPromise ??= engine.trigger('resource_pressure.cpu', { ...c }, { reason: 'cpu_pressure' }).catch(() => []);
    } else if (detectedAt !== undefined) clearedAt ??= performance.now();
  });
  let throttledAt: number | undefined;
  const onStep = (n: { action: string; outcome: string }): void => {
    if (n.action === 'kill_runaway' && n.outcome === 'succeeded') remediatedAt ??= performance.now();
    if (n.action === 'throttle' && n.outcome === 'succeeded') throttledAt ??= performance.now();
  };
  bus.on('playbookStep', onStep);

  // The service's background work: non-critical jobs ask the limiter before each run, heavy tasks wait at the gate.
  const jobRuns: number[] = [];
  let heavyRuns = 0;
  let heavyRunsWhilePaused = 0;
  let stopped = false;
  const jobTimer = setInterval(() => {
    if (limiter.tryAcquire('non_critical')) {
      jobRuns.push(performance.now());
      if (jobRuns.length > 10_000) jobRuns.splice(0, 5_000);
    }
  }, 20);
  const heavy = (async () => {
    while (!stopped) {
      await tasks.waitIfPaused('heavy').catch(() => undefined);
      if (stopped) break;
      heavyRuns++;
      if (tasks.isPaused('heavy')) heavyRunsWhilePaused++;
      await sleep(50);
    }
  })();

  const runawayExits: { pid: number; signal: NodeJS.Signals | null }[] = [];
  const runaways: ChildProcess[] = [];
  try {
    const workerCount = options.workers ?? 3;
    await Promise.all(
      Array.from({ length: workerCount }, async (_, i) => {
        const w = processes.spawn(`worker-${i + 1}`, process.execPath, ['-e', WORKER], { group: 'workers', stdio: ['ignore', 'pipe', 'ignore'] });
        // Wait until the worker has booted, so its start-up CPU is not part of the spike.
        if (w.child?.stdout) await once(w.child.stdout, 'data');
      }),
    );
    pressure.start();
    await pressure.sampleNow();
    await sleep(1_000);
    const injectedAt = performance.now();
    for (let i = 0; i < (options.runaways ?? 2); i++) {
      const child = spawn(process.execPath, ['-e', RUNAWAY], { stdio: 'ignore' });
      child.on('error', () => undefined);
      child.once('exit', (_code, signal) => runawayExits.push({ pid: child.pid ?? -1, signal }));
      runaways.push(child);
      // Started outside the registry, then registered: the service owns it, so the guard may kill it.
      processes.register(child, { name: `runaway-${i + 1}` });
    }
    const maxSpike = options.maxSpikeMs ?? 120_000;
    await waitFor(() => detectedAt !== undefined, maxSpike, 50);
    let run: PlaybookRunResult | undefined;
    if (runPromise) {
      const deadline = (detectedAt ?? injectedAt) + recoveryTarget;
      run = (await before(runPromise, Math.max(0, deadline - performance.now()), []))[0];
      await waitFor(() => clearedAt !== undefined, Math.max(0, deadline - performance.now()), 50);
    }
    const runDoneAt = run ? performance.now() - (Date.now() - run.finishedAt) : undefined;
    const stepOf = (action: string): StepResult | undefined => run?.steps.find((x) => x.action === action && x.outcome === 'succeeded');
    const killed = (stepOf('kill_runaway')?.output as { killed?: { pid: number; exited: boolean }[] } | undefined)?.killed ?? [];
    const killedByGuard = runaways.filter((r) => killed.some((k) => k.pid === r.pid && k.exited) && runawayExits.some((e) => e.pid === r.pid && e.signal === 'SIGTERM'));
    const scaled = stepOf('scale_down')?.output as { before: number; after: number; removed: number } | undefined;
    const rateIn = (from: number, to: number): number => (to > from ? (jobRuns.filter((t) => t >= from && t < to).length * 1000) / (to - from) : 0);
    // Job rate in the 2 s before the alarm, and from 1 s to 3 s after the throttle (the bucket starts with a burst).
    const throttleStart = throttledAt;
    if (throttleStart !== undefined) await sleep(Math.max(0, throttleStart + 3_000 - performance.now()));
    const jobRateBefore = detectedAt === undefined ? 0 : rateIn(detectedAt - 2_000, detectedAt);
    const jobRateAfter = throttledAt === undefined ? 0 : rateIn(throttledAt + 1_000, throttledAt + 3_000);
    const throttled = throttledAt !== undefined;
    // A dry run (the guard in detect mode) "succeeds" as a plan: only a real, verified run counts.
    const verified = run !== undefined && run.status === 'succeeded' && !run.dryRun;
    const recoveredAt = clearedAt !== undefined && verified && runDoneAt !== undefined ? Math.max(clearedAt, runDoneAt) : undefined;
    return timeline(
      'S03',
      'CPU spike',
      { injectedAt, detectedAt, remediatedAt, recoveredAt },
      [
        ['alarm raised once the spike was sustained', detectedAt !== undefined],
        ['load shedding on during the alarm', sheddingAt !== undefined],
        [`kill_runaway killed every runaway, each exited on the guard's SIGTERM (${killedByGuard.length}/${runaways.length})`, runaways.length > 0 && killedByGuard.length === runaways.length],
        [`scale_down removed 2 worker instances (${scaled ? `${scaled.before} -> ${scaled.after}` : 'not run'})`, scaled !== undefined && scaled.removed === Math.min(2, workerCount - 1) && workers.size === scaled.after],
        [`background jobs at half their rate or less (${round(jobRateBefore)}/s -> ${round(jobRateAfter)}/s)`, throttled && jobRateAfter <= jobRateBefore * 0.6],
        ['heavy tasks paused', stepOf('pause_tasks') !== undefined && tasks.isPaused('heavy') && heavyRunsWhilePaused === 0],
        ['CPU playbook verified (CPU < 60 % from the sampler until the alarm cleared, health endpoint 200)', verified],
        [`alarm cleared and run verified within ${recoveryTarget} ms of the alarm`, recoveredAt !== undefined && detectedAt !== undefined && recoveredAt - detectedAt <= recoveryTarget],
        ['load shedding off after recovery', recoveredAt !== undefined && !pressure.isUnderPressure()],
      ],
      {
        cpuSource,
        runStatus: run?.status,
        runError: run?.error,
        steps: run?.steps.map((x) => `${x.id}:${x.outcome}`),
        cpuBefore: run?.before?.checks[0]?.value,
        verification: run?.verification ? { attempts: run.verification.attempts, checks: run.verification.checks.map((c) => `${c.id}=${JSON.stringify(c.value)}`) } : undefined,
        killed,
        workers: scaled,
        jobRatePerSec: { before: round(jobRateBefore), after: round(jobRateAfter) },
        heavyRuns,
        apiLimited: limiter.isLimited('api'),
      },
    );
  } finally {
    stopped = true;
    clearInterval(jobTimer);
    await tasks.close();
    await heavy;
    bus.off('playbookStep', onStep);
    for (const r of runaways) if (r.exitCode === null && r.signalCode === null) r.kill('SIGKILL');
    healthUrl = undefined;
    await new Promise<void>((r) => health.close(() => r()));
  }
}

/** `promise`, or `fallback` when it has not settled within `ms` (the timer is cleared either way). */
async function before<T>(promise: Promise<T>, ms: number, fallback: T): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  try {
    return await Promise.race([promise, new Promise<T>((r) => (timer = setTimeout(() => r(fallback), ms)))]);
  } finally {
    clearTimeout(timer);
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

/** Only the metric options of a scenario's options bag. */
function metrics({ registry, metricsPrefix, prefix, metrics }: MetricsOptions): MetricsOptions {
  return { ...(registry ? { registry } : {}), ...(metricsPrefix ? { metricsPrefix } : {}), ...(prefix ? { prefix } : {}), ...(metrics === undefined ? {} : { metrics }) };
}
