import { describe, expect, it } from 'vitest';
import { waitUntil } from '@guard/core';
import { TaskGate } from '@guard/playbooks';
import { HeavyTasks } from './heavy-tasks.js';
import { isProcessAlive as isAlive } from './process-alive.js';
import { createServiceCpu } from './service-cpu.js';
import { WorkerPool } from './worker-pool.js';

/** Resolves when `check` holds (bounded well inside the test timeout). */
const until = (check: () => boolean, what: string) => waitUntil(check, { timeoutMs: 15_000, intervalMs: 20, what });

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
    await until(() => heavy.stats().completed >= 2, 'two tasks completed');

    gate.pause('heavy', { durationMs: 60_000 }); // what the CPU playbook's pause step does
    await until(() => heavy.stats().running === 0, 'the running tasks to finish');
    const started = heavy.stats().started;
    for (let i = 0; i < 4; i++) heavy.submit({ name: 'report', burnMs: 30 });
    // The queue's pump is parked at the gate (workers idle, tasks queued): nothing more can start until resume.
    await until(() => gate.paused().find((p) => p.group === 'heavy')?.waiting === 1, 'the queue to wait at the gate');
    expect(heavy.stats()).toMatchObject({ started, paused: true, running: 0 });
    expect(heavy.stats().queued).toBeGreaterThan(0);

    gate.resume('heavy');
    await until(() => heavy.stats().queued === 0 && heavy.stats().running === 0, 'the queue to drain');
    expect(heavy.stats().started).toBe(10);
    expect(heavy.stats().failed).toBe(0);
  });
});

describe('createServiceCpu', () => {
  it('returns undefined on the first call', async () => {
    expect(await createServiceCpu({ limitCores: 1 }).sample()).toBeUndefined();
  });
});
