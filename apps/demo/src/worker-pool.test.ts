import { describe, expect, it } from 'vitest';
import { TaskGate } from '@guard/playbooks';
import { HeavyTasks } from './heavy-tasks.js';
import { createServiceCpu } from './service-cpu.js';
import { WorkerPool } from './worker-pool.js';

const isAlive = (pid: number): boolean => {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
};

/** Resolves when `check` holds, polled every 20 ms (bounded by the test timeout). */
async function until(check: () => boolean): Promise<void> {
  while (!check()) await new Promise((resolve) => setTimeout(resolve, 20));
}

describe('WorkerPool (real child processes)', () => {
  it('scaleDown removes replicas: their pids are gone, never below minSize', { timeout: 20_000 }, async () => {
    await using pool = new WorkerPool({ size: 3, minSize: 1 });
    pool.start();
    const before = pool.pids();
    expect(before).toHaveLength(3);
    expect(before.every(isAlive)).toBe(true);

    const result = await pool.shrink(2);
    expect(result.from).toBe(3);
    expect(result.to).toBe(1);
    expect(result.removed.map((w) => w.pid).every((pid) => !isAlive(pid))).toBe(true);
    expect(pool.pids()).toHaveLength(1);
    expect(await pool.scaleDown(5)).toBe(0); // minSize holds

    pool.scaleUp(2);
    expect(pool.size).toBe(3);
  });

  it('runs tasks on a worker; a task on a replica that is stopped is rejected, not lost silently', { timeout: 20_000 }, async () => {
    await using pool = new WorkerPool({ size: 2, minSize: 0 });
    pool.start();
    await pool.run(pool.idle()!, { name: 'short', burnMs: 5 });
    const long = pool.run(pool.idle()!, { name: 'long', burnMs: 5_000 });
    // Handled before the scale-down: the rejection may land while scaleDown is still awaited.
    const rejected = expect(long).rejects.toThrow(/exited/);
    await pool.scaleDown(2); // busy replicas go last but do go
    await rejected;
    expect(pool.size).toBe(0);
  });
});

describe('HeavyTasks', () => {
  it('pause_tasks heavy stops new tasks from starting (started stays flat); resume lets them run', { timeout: 20_000 }, async () => {
    await using pool = new WorkerPool({ size: 2 });
    pool.start();
    const gate = new TaskGate();
    await using heavy = new HeavyTasks({ pool, gate });
    for (let i = 0; i < 6; i++) heavy.submit({ name: 'report', burnMs: 30 });
    await until(() => heavy.stats().completed >= 2);

    gate.pause('heavy', { durationMs: 60_000 }); // what the CPU playbook's pause step does
    await until(() => heavy.stats().running === 0);
    const started = heavy.stats().started;
    for (let i = 0; i < 4; i++) heavy.submit({ name: 'report', burnMs: 30 });
    await new Promise((resolve) => setTimeout(resolve, 300)); // a window in which workers are idle and tasks queued
    expect(heavy.stats()).toMatchObject({ started, paused: true, running: 0 });
    expect(heavy.stats().queued).toBeGreaterThan(0);

    gate.resume('heavy');
    await until(() => heavy.stats().queued === 0 && heavy.stats().running === 0);
    expect(heavy.stats().started).toBe(10);
    expect(heavy.stats().failed).toBe(0);
  });
});

describe('createServiceCpu', () => {
  it('counts the CPU demand of child processes, and drops when their work ends', { timeout: 20_000 }, async () => {
    const cpu = createServiceCpu({ limitCores: 2 });
    await using pool = new WorkerPool({ size: 1 });
    pool.start();
    await cpu.sample();
    const busy = pool.run(pool.idle()!, { name: 'burn', burnMs: 1_500 });
    await new Promise((resolve) => setTimeout(resolve, 1_000));
    const during = await cpu.sample();
    expect(during?.processes).toBeGreaterThanOrEqual(2);
    expect(during?.demandCores).toBeGreaterThan(0.6); // one child spinning: about one core of demand
    await busy;
    await cpu.sample();
    await new Promise((resolve) => setTimeout(resolve, 1_000));
    const after = await cpu.sample();
    expect(after!.demandCores).toBeLessThan(during!.demandCores);
    console.log(`service CPU demand: ${during!.demandCores.toFixed(2)} cores while a child spins, ${after!.demandCores.toFixed(2)} after`);
  });

  it('returns undefined on the first call', async () => {
    expect(await createServiceCpu({ limitCores: 1 }).sample()).toBeUndefined();
  });
});
