import { availableParallelism } from 'node:os';
import { afterEach, describe, expect, it } from 'vitest';
import { createHostCpuSource, parseCpuMax, parseCpuStatUsage, parseProcStat } from './host-cpu-source.js';
import { cgroupV1Cpu, cgroupV2Cpu, fakeTree, procSelfCgroup, procStat } from './test-support.js';
import type { FakeTree, TreeFiles } from './test-support.js';

const trees: FakeTree[] = [];
afterEach(async () => {
  for (const t of trees.splice(0)) await t[Symbol.asyncDispose]();
});

describe('/proc and cgroup parsing', () => {
  it('parses the aggregate cpu line of /proc/stat (guest time is inside user, not added twice)', () => {
    const text = 'cpu  33393 5 7251 48052 250 10 110 20 400 0\ncpu0 17513 0 3345 23616 12 0 27 7 0 0\nintr 1 2 3\n';
    expect(parseProcStat(text)).toEqual({ busy: 33393 + 5 + 7251 + 10 + 110 + 20, total: 33393 + 5 + 7251 + 10 + 110 + 20 + 48052 + 250 });
    expect(parseProcStat('cpu0 1 2 3 4\n')).toBeUndefined();
    expect(parseProcStat('')).toBeUndefined();
  });

  it('parses cgroup v2 cpu.max and cpu.stat', () => {
    expect(parseCpuMax('max 100000\n')).toBeUndefined();
    expect(parseCpuMax('150000 100000\n')).toBe(1.5);
    expect(parseCpuMax('50000\n')).toBe(0.5);
    expect(parseCpuMax('garbage x')).toBeUndefined();
    expect(parseCpuStatUsage('usage_usec 123456\nuser_usec 100000\nsystem_usec 23456\nnr_periods 0\n')).toBe(123456);
    expect(parseCpuStatUsage('user_usec 1\n')).toBeUndefined();
  });
});

/**
 * A host CPU meter on a fake tree, with its first sample taken. `next(afterMs, ...changes)` moves the meter's clock,
 * writes the changed files and takes the next sample.
 */
async function meter(...files: TreeFiles[]) {
  const t = await fakeTree(...files);
  trees.push(t);
  let ms = 0;
  const cpu = createHostCpuSource({ ...t, now: () => ms });
  const first = await cpu.sample();
  return {
    first,
    async next(afterMs: number, ...changes: TreeFiles[]) {
      ms += afterMs;
      await t.write(...changes);
      return cpu.sample();
    },
  };
}

describe('createHostCpuSource', () => {
  it('reads the whole host from /proc/stat when the cgroup has no quota', async () => {
    const m = await meter(
      procSelfCgroup('0::/'),
      procStat({ user: 1000, system: 500, idle: 8000, iowait: 500 }),
      cgroupV2Cpu('', { quotaCores: 'max', usageUsec: 1 }),
    );
    expect(m.first).toBeUndefined();
    // +300 busy, +700 idle/iowait ticks: 30 %.
    expect(await m.next(0, procStat({ user: 1200, system: 600, idle: 8600, iowait: 600 }))).toEqual({ percent: 30, source: 'proc_stat', capacityCores: availableParallelism() });
  });

  it('measures a cgroup v2 against its cpu.max quota (a container at its limit reads 100 % on an idle host)', async () => {
    const m = await meter(
      procSelfCgroup('0::/app.slice/svc'),
      procStat({ idle: 1000 }),
      cgroupV2Cpu('app.slice/svc', { quotaCores: 'max', usageUsec: 1_000_000 }),
      cgroupV2Cpu('app.slice', { quotaCores: 0.5 }),
    );
    // 1 s of wall time, half a core of quota (inherited from the parent), 250 ms of CPU used: 50 %.
    expect(await m.next(1_000, cgroupV2Cpu('app.slice/svc', { usageUsec: 1_250_000 }))).toEqual({ percent: 50, source: 'cgroup_v2', capacityCores: 0.5 });
    const full = await m.next(1_000, cgroupV2Cpu('app.slice/svc', { usageUsec: 1_750_000 }), procStat({ idle: 2000 }));
    expect(full!.percent).toBe(100);
  });

  it('measures a cgroup v1 against its CFS quota', async () => {
    const cpu = 'cpu,cpuacct/docker/abc';
    const m = await meter(
      procSelfCgroup('4:memory:/x', '2:cpu,cpuacct:/docker/abc', '0::/'),
      procStat({ idle: 1000 }),
      cgroupV1Cpu(cpu, { quotaUs: 100_000, periodUs: 100_000, usageNs: 5e9 }),
    );
    expect(await m.next(2_000, cgroupV1Cpu(cpu, { usageNs: 5.5e9 }))).toEqual({ percent: 25, source: 'cgroup_v1', capacityCores: 1 });
  });

  it('ignores a v1 quota of -1 (unlimited) and falls back to /proc/stat', async () => {
    const m = await meter(
      procSelfCgroup('1:cpu:/', '2:cpuacct:/'),
      procStat({ idle: 1000 }),
      cgroupV1Cpu('cpu', { quotaUs: -1, periodUs: 100_000 }),
      cgroupV1Cpu('cpuacct', { usageNs: 1 }),
    );
    expect(await m.next(0, procStat({ user: 100, idle: 1100 }))).toMatchObject({ percent: 50, source: 'proc_stat' });
  });
});
