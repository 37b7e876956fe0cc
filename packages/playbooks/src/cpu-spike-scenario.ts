import { spawn } from 'node:child_process';
import type { ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { GuardBus, sleep } from '@guard/core';
import type { MetricsOptions } from '@guard/core';
import { createActionRegistry, createProbeRegistry } from './builtin-actions.js';
import { builtinPlaybooksDir, loadPlaybookFile } from './load-playbooks.js';
import { PlaybookEngine } from './playbook-engine.js';
import type { PlaybookRunResult, StepResult } from './playbook-engine.js';
import type { Playbook } from './playbook-types.js';
import { ProcessRegistry } from './process-registry.js';
import { RateLimiter } from './rate-limiter.js';
import { ResourcePressureMonitor } from './resource-pressure-monitor.js';
import { metricOptionsOf, settledWithin, waitFor } from './scenario-harness.js';
import { roundTenth, scenarioTimeline } from './scenario-timeline.js';
import type { ScenarioTimeline } from './scenario-timeline.js';
import { TaskGate } from './task-gate.js';

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
    ...metricOptionsOf(options),
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
    ...metricOptionsOf(options),
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
      run = (await settledWithin(runPromise, Math.max(0, deadline - performance.now()), []))[0];
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
    return scenarioTimeline(
      'S03',
      'CPU spike',
      { injectedAt, detectedAt, remediatedAt, recoveredAt },
      [
        ['alarm raised once the spike was sustained', detectedAt !== undefined],
        ['load shedding on during the alarm', sheddingAt !== undefined],
        [`kill_runaway killed every runaway, each exited on the guard's SIGTERM (${killedByGuard.length}/${runaways.length})`, runaways.length > 0 && killedByGuard.length === runaways.length],
        [`scale_down removed 2 worker instances (${scaled ? `${scaled.before} -> ${scaled.after}` : 'not run'})`, scaled !== undefined && scaled.removed === Math.min(2, workerCount - 1) && workers.size === scaled.after],
        [`background jobs at half their rate or less (${roundTenth(jobRateBefore)}/s -> ${roundTenth(jobRateAfter)}/s)`, throttled && jobRateAfter <= jobRateBefore * 0.6],
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
        jobRatePerSec: { before: roundTenth(jobRateBefore), after: roundTenth(jobRateAfter) },
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
