import { GuardError } from '@guard/core';
import type { Guard as NodeGuard, SelfHealing } from '@guard/node';
import { createSystemSampler, type PressureSampler, type ResourcePressureMonitor } from '@guard/playbooks';
import { createServiceCpu } from './service-cpu.js';
import type { WorkerPool } from './worker-pool.js';
import { createWorkload, type Workload } from './workload.js';

/**
 * The self-healing half as the dashboard and the chaos lab see it: `@guard/node` builds the message bus, monitors,
 * watchdog and playbook engine; the demo adds its own workload and the watched results worker.
 */
export interface Healing extends Omit<SelfHealing, 'processes'> {
  readonly pressure: ResourcePressureMonitor;
  /** Background jobs, heavy tasks, worker pool and owned child processes. */
  readonly workload: Workload;
  /** The watched background worker; chaos `heartbeat-pause` stops its heartbeats. */
  readonly worker: { paused: boolean; restarts: number };
  close(): Promise<void>;
}

const HEARTBEAT_MS = 100;

/**
 * CPU is the service's own demand (this process and its children) against its CPU limit; memory, disk and the event
 * loop come from the package's system sampler.
 */
export function servicePressureSampler(): { readonly sample: PressureSampler; close(): void } {
  const system = createSystemSampler({ cpuSource: 'process' });
  const serviceCpu = createServiceCpu();
  return {
    sample: async () => {
      const [reading, cpu] = await Promise.all([system.sample(), serviceCpu.sample()]);
      return { ...reading, cpuPercent: cpu === undefined ? 0 : Math.min(100, cpu.percent) };
    },
    close: () => system.close(),
  };
}

/** Starts the demo's workload on the guard's limiter and task gate, and a background worker the guard's watchdog restarts. */
export function createHealing(guard: NodeGuard, pool: WorkerPool): Healing {
  const healing = guard.healing;
  const pressure = guard.pressure;
  if (!healing || !pressure) throw new GuardError('INVALID_OPTION', 'the demo needs a guard created with playbooks and pressure', { details: { field: 'playbooks' } });
  const workload = createWorkload({ limiter: healing.limiter, tasks: healing.tasks, pool, processes: healing.processes });

  // A background worker that proves it is alive; a missed heartbeat restarts it through the watchdog (in full mode).
  const worker = { paused: false, restarts: 0 };
  const beat = setInterval(() => {
    if (!worker.paused) healing.watchdog.heartbeat('results-worker');
  }, HEARTBEAT_MS);
  beat.unref();
  healing.watchdog.register('results-worker', {
    deadlineMs: 5 * HEARTBEAT_MS,
    restart: () => {
      const mode = guard.chain.modeOf('heartbeat');
      if (mode !== 'full') throw new GuardError('INVALID_OPTION', `restart of results-worker skipped: heartbeat mode is ${mode}`, { details: { mode } });
      worker.restarts += 1;
      worker.paused = false;
      healing.watchdog.heartbeat('results-worker');
    },
  });

  let closed = false;
  return {
    messageBus: healing.messageBus,
    aclMonitor: healing.aclMonitor,
    watchdog: healing.watchdog,
    engine: healing.engine,
    limiter: healing.limiter,
    tasks: healing.tasks,
    pressure,
    workload,
    worker,
    close: async () => {
      if (closed) return;
      closed = true;
      clearInterval(beat);
      await workload.close();
    },
  };
}
