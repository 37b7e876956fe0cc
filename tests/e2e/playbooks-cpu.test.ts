import { spawn } from 'node:child_process';
import type { ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { setTimeout as sleep } from 'node:timers/promises';
import { Worker } from 'node:worker_threads';
import { afterEach, describe, expect, it } from 'vitest';
import type { ActionContext } from '../../packages/playbooks/src/action-registry.js';
import { createActionRegistry } from '../../packages/playbooks/src/builtin-actions.js';
import { createHostCpuSource } from '../../packages/playbooks/src/host-cpu-source.js';
import { topHostProcesses } from '../../packages/playbooks/src/proc-stat.js';
import { ProcessRegistry } from '../../packages/playbooks/src/process-registry.js';
import { createSystemSampler } from '../../packages/playbooks/src/system-sampler.js';
import { reportFigure } from './report.js';

// Real CPU on whatever machine runs this: figures are reported, and the asserts are what the guard relies on
// (a busy loop shows up, an idle interval reads low again, a runaway is killed and an idle child spared).

const linux = process.platform === 'linux';
const BURN = ['-e', 'for (;;) {}'];
/** An idle child that costs no CPU even while starting (a node child spends ~100 ms of CPU booting). */
const SLEEP = ['sleep', ['60']] as const;

/** Processes started without the registry (the guard must never touch them). */
const strangers: ChildProcess[] = [];
afterEach(() => {
  for (const p of strangers.splice(0)) p.kill('SIGKILL');
});

/** Keeps this thread busy for `ms`, so the interval has measurable CPU. */
function burn(ms: number): void {
  const end = Date.now() + ms;
  while (Date.now() < end) {
    // busy on purpose
  }
}

function ctx(): ActionContext {
  return { runId: 'run_1', playbook: 'test', step: 's1', event: {}, signal: new AbortController().signal, logger: { debug() {}, info() {}, warn() {}, error() {} }, probe: async () => undefined };
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

describe('system sampler on this machine', () => {
  it('a busy interval shows in process CPU and event-loop utilisation; an idle one reads low again', async () => {
    const sampler = createSystemSampler({ cpuSource: 'process', diskPaths: ['/', '/definitely/missing/path'] });
    try {
      await sampler.sample();
      burn(400);
      const busy = await sampler.sample();
      reportFigure('playbooks sampler: process CPU over a 400 ms busy loop', busy.cpuPercent!, '%');
      reportFigure('playbooks sampler: event-loop utilisation over a 400 ms busy loop', busy.eventLoopPercent!, '%');
      expect(busy.cpuPercent).toBeGreaterThan(5);
      expect(busy.cpuPercent).toBeLessThanOrEqual(100);
      expect(busy.memoryPercent).toBeGreaterThan(0);
      expect(busy.memoryPercent).toBeLessThanOrEqual(100);
      expect(busy.details?.disks).toHaveLength(1);
      expect(['cgroup_v2', 'cgroup_v1', 'host']).toContain(busy.details?.memorySource);
      expect(busy.eventLoopPercent).toBeGreaterThan(30);
      // Per-interval utilisation: an idle interval right after reads low again (cumulative ELU would stay high).
      await sleep(200);
      const idle = await sampler.sample();
      reportFigure('playbooks sampler: event-loop utilisation over an idle 200 ms', idle.eventLoopPercent!, '%');
      expect(idle.eventLoopPercent).toBeLessThan(busy.eventLoopPercent!);
    } finally {
      sampler.close();
    }
  });

  it('defaults to the host CPU (cgroup-aware) and the disk of the working directory', async () => {
    const sampler = createSystemSampler();
    try {
      await sampler.sample();
      burn(150);
      const reading = await sampler.sample();
      reportFigure('playbooks sampler: host CPU over a 150 ms busy loop', reading.details!.hostCpuPercent!, '%');
      expect(reading.cpuPercent).toBe(reading.details?.hostCpuPercent);
      expect(reading.details?.hostCpuPercent).toBeGreaterThan(0);
      if (linux) expect(['proc_stat', 'cgroup_v2', 'cgroup_v1']).toContain(reading.details?.hostCpuSource);
      expect(reading.details?.disks).toEqual([{ path: process.cwd(), percent: expect.any(Number) }]);
      expect(reading.diskPercent).toBeGreaterThan(0);
    } finally {
      sampler.close();
    }
  });

  it.runIf(linux)('cpuSource demand counts a worker thread that burns (run + run-queue wait)', async () => {
    const sampler = createSystemSampler({ cpuSource: 'demand' });
    try {
      await sampler.sample();
      // A thread's time counts while it is alive, so sample while the worker still burns.
      const worker = new Worker('const end = Date.now() + 5000; while (Date.now() < end) {}', { eval: true });
      await once(worker, 'online');
      await sleep(400);
      const reading = await sampler.sample();
      await worker.terminate();
      reportFigure('playbooks sampler: CPU demand with one burning worker thread', reading.details!.demandCpuPercent!, '%');
      expect(reading.details?.demandCpuPercent).toBeGreaterThan(10);
      expect(reading.cpuPercent).toBe(Math.min(100, reading.details!.demandCpuPercent!));
    } finally {
      sampler.close();
    }
  });

  it.runIf(linux)('the host CPU source sees a busy loop', async () => {
    const cpu = createHostCpuSource();
    await cpu.sample();
    burn(200);
    const reading = await cpu.sample();
    expect(reading).toBeDefined();
    reportFigure(`playbooks host CPU over a 200 ms busy loop (${reading!.source}, ${reading!.capacityCores} cores)`, reading!.percent, '%');
    expect(['proc_stat', 'cgroup_v2', 'cgroup_v1']).toContain(reading!.source);
    expect(reading!.percent).toBeGreaterThan(0);
    expect(reading!.percent).toBeLessThanOrEqual(100);
  });
});

describe.runIf(linux)('ProcessRegistry with burning children', () => {
  it('reports the CPU of a guarded child', async () => {
    await using processes = new ProcessRegistry();
    processes.spawn('burner', process.execPath, ['-e', 'const end = Date.now() + 5000; while (Date.now() < end) {}']);
    await processes.usage();
    await sleep(300);
    const [usage] = await processes.usage();
    reportFigure('playbooks process registry: CPU of one burning child', usage!.cpuPercent!, '% of a core');
    expect(usage).toMatchObject({ name: 'burner' });
    expect(usage!.cpuPercent).toBeGreaterThan(1);
  });

  it('kill_runaway kills the owned runaway and nothing else', async () => {
    await using processes = new ProcessRegistry();
    const runaway = processes.spawn('runaway', process.execPath, BURN);
    const idle = processes.spawn('idle', SLEEP[0], SLEEP[1]);
    // A busy process the service did not start through (or register with) the registry.
    const stranger = spawn(process.execPath, BURN, { stdio: 'ignore' });
    strangers.push(stranger);
    const exited = once(runaway.child!, 'exit');
    const actions = createActionRegistry({ processes });
    const result = (await actions.get('kill_runaway')({ threshold_percent: 30, interval: '400ms' }, ctx())) as {
      killed: { pid: number; percent: number; exited: boolean }[];
      spared: { pid: number }[];
    };
    reportFigure('playbooks kill_runaway: measured demand of the runaway', result.killed[0]?.percent ?? 0, '% of a core');
    expect(result.killed.map((k) => k.pid)).toEqual([runaway.pid]);
    expect(result.killed[0]!.exited).toBe(true);
    expect(result.spared.map((s) => s.pid)).toEqual([idle.pid]);
    expect((await exited)[1]).toBe('SIGTERM');
    expect(alive(stranger.pid!)).toBe(true);
    expect(alive(idle.pid)).toBe(true);
    expect(processes.list().map((p) => p.name)).toEqual(['idle']);
  });

  it('identify_hogs finds an owned burner in /proc on its first call', async () => {
    await using processes = new ProcessRegistry();
    const burner = processes.spawn('burner', process.execPath, BURN);
    const actions = createActionRegistry({ processes });
    const out = (await actions.get('identify_hogs')({ top: 200, scope: 'host', interval: '300ms' }, ctx())) as {
      scope: string;
      scanned: number;
      hogs: { pid: number; cpuPercent: number; demandPercent: number; owned: boolean; name: string }[];
    };
    const mine = out.hogs.find((h) => h.pid === burner.pid);
    reportFigure('playbooks identify_hogs: processes scanned', out.scanned, 'processes');
    reportFigure('playbooks identify_hogs: demand of the burner', mine?.demandPercent ?? 0, '% of a core');
    expect(out.scope).toBe('host');
    expect(out.scanned).toBeGreaterThan(1);
    expect(mine).toMatchObject({ owned: true, name: 'node' });
    expect(mine!.demandPercent).toBeGreaterThan(5);
    const scoped = await topHostProcesses({ top: 3, intervalMs: 50 });
    expect(['cgroup', 'host']).toContain(scoped.scope);
    expect(scoped.processes.length).toBeLessThanOrEqual(3);
  });
});
