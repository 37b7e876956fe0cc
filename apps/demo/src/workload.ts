import { closeOnce } from '@guard/core';
import type { ProcessRegistry, RateLimiter, TaskGate } from '@guard/playbooks';
import { BackgroundJobs } from './background-jobs.js';
import { HeavyTasks } from './heavy-tasks.js';
import type { WorkerPool } from './worker-pool.js';

/** The service's own work that the CPU playbook acts on, each part with a measurable effect. */
export interface Workload extends AsyncDisposable {
  /** Non-critical jobs; `throttle non_critical` lowers their rate. */
  readonly jobs: BackgroundJobs;
  /** Report builds on the worker pool; `pause_tasks heavy` stops new ones from starting. */
  readonly heavy: HeavyTasks;
  /** Worker replicas (child processes); `scale_down` removes some. */
  readonly pool: WorkerPool;
  /** Ad-hoc children the service starts (report exports); `kill_runaway` may kill these, nothing else. */
  readonly processes: ProcessRegistry;
  close(): Promise<void>;
}

/** Options for {@link createWorkload}. */
export interface WorkloadOptions {
  readonly limiter: RateLimiter;
  readonly tasks: TaskGate;
  /** Worker replicas (the seed's scale-down removes 2 of 3); started and closed here. */
  readonly pool: WorkerPool;
  /** Where ad-hoc children are registered (the guard's: it closes them). */
  readonly processes: ProcessRegistry;
  /** Background jobs per second. Default 20. */
  readonly jobsPerSec?: number;
  /** A small report build is queued this often in normal operation. Default 2000. */
  readonly reportEveryMs?: number;
}

/** Starts the demo's background jobs, worker pool and a trickle of heavy report builds. */
export function createWorkload(options: WorkloadOptions): Workload {
  const { pool, processes } = options;
  pool.start();
  const heavy = new HeavyTasks({ pool, gate: options.tasks, group: 'heavy' });
  const jobs = new BackgroundJobs({ limiter: options.limiter, key: 'non_critical', ratePerSec: options.jobsPerSec ?? 20 });
  jobs.start();
  const reports = setInterval(() => heavy.submit({ name: 'daily-report', burnMs: 20 }), options.reportEveryMs ?? 2_000);
  reports.unref();

  const close = closeOnce(async () => {
    clearInterval(reports);
    await jobs.close();
    await heavy.close();
    await Promise.all([pool.close(), processes.close()]);
  });
  return { jobs, heavy, pool, processes, close, [Symbol.asyncDispose]: close };
}
