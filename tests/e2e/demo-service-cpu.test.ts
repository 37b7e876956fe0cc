import { describe, expect, it } from 'vitest';
import { waitUntil } from '../../packages/core/src/time.js';
import { createServiceCpu, type ServiceCpuReading } from '../../apps/demo/src/service-cpu.js';
import { WorkerPool } from '../../apps/demo/src/worker-pool.js';
import { reportFigure } from './report.js';

// The demo's service CPU reading counts its child processes: real CPU on this machine, so the demand is a figure and
// the test asserts only that a spinning child shows up and that its demand goes when the work ends.
describe('demo service CPU', () => {
  it('counts the CPU demand of a spinning child process, and drops when its work ends', async () => {
    const cpu = createServiceCpu({ limitCores: 2 });
    await using pool = new WorkerPool({ size: 1 });
    pool.start();
    await cpu.sample();
    const busy = pool.run(pool.idle()!, { name: 'burn', burnMs: 3_000 });
    let during: ServiceCpuReading | undefined;
    await waitUntil(
      async () => {
        during = await cpu.sample();
        return (during?.processes ?? 0) >= 2 && (during?.demandCores ?? 0) > 0.3;
      },
      { timeoutMs: 2_500, intervalMs: 250, what: 'the child to show in the demand' },
    );
    reportFigure('demo service CPU demand, one child spinning', during!.demandCores, 'cores');
    await busy;
    let after: ServiceCpuReading | undefined;
    await waitUntil(
      async () => {
        after = await cpu.sample();
        return after !== undefined && after.demandCores < during!.demandCores / 2;
      },
      { timeoutMs: 10_000, intervalMs: 250, what: 'the demand to drop' },
    );
    reportFigure('demo service CPU demand, child idle', after!.demandCores, 'cores');
    expect(after!.demandCores).toBeLessThan(during!.demandCores);
  });
});
