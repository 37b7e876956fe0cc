import { readFile } from 'node:fs/promises';
import { setTimeout as sleep } from 'node:timers/promises';
import { GuardError } from '@guard/core';
import type { ActionRegistry } from '@guard/playbooks';
import type { Workload } from './workload.js';

const CLK_TCK = 100;

/**
 * The CPU playbook's actions on the demo's workload: `scale_down` (worker replicas) and `kill_runaway`
 * (children the service started, over a CPU threshold). Registered only where the action registry has no
 * action of that name yet.
 */
export function registerWorkloadActions(actions: ActionRegistry, workload: Workload): void {
  if (!actions.has('scale_down')) {
    actions.register('scale_down', async (p) => {
      const count = p.count ?? p.replicas ?? 1;
      if (!Number.isInteger(count) || count < 1) throw new GuardError('INVALID_INPUT', 'scale_down: count must be an integer >= 1', { details: { field: 'count', action: 'scale_down' } });
      const result = await workload.pool.shrink(count);
      return { from: result.from, to: result.to, removedPids: result.removed.map((w) => w.pid) };
    });
  }
  if (!actions.has('kill_runaway')) {
    actions.register('kill_runaway', async (p, ctx) => {
      const threshold = p.threshold_percent ?? 50;
      const sampleMs = 500;
      const before = new Map<number, number>();
      for (const child of workload.processes.list()) {
        const ticks = await cpuTicks(child.pid);
        if (ticks !== undefined) before.set(child.pid, ticks);
      }
      await sleep(sampleMs, undefined, { signal: ctx.signal });
      const killed: { pid: number; name: string; cpuPercent: number }[] = [];
      for (const [pid, ticks] of before) {
        const now = await cpuTicks(pid);
        if (now === undefined) continue;
        const cpuPercent = (((now - ticks) / CLK_TCK) * 1000 * 100) / sampleMs;
        if (cpuPercent <= threshold) continue;
        const entry = workload.processes.kill(pid, 'SIGKILL');
        killed.push({ pid, name: entry.name, cpuPercent: Math.round(cpuPercent) });
      }
      return { thresholdPercent: threshold, killed };
    });
  }
}

async function cpuTicks(pid: number): Promise<number | undefined> {
  try {
    const stat = await readFile(`/proc/${pid}/stat`, 'utf8');
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return Number(fields[11]) + Number(fields[12]);
  } catch {
    return undefined;
  }
}
