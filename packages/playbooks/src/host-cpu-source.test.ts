import { availableParallelism } from 'node:os';
import { afterEach, describe, expect, it } from 'vitest';
import { createHostCpuSource, parseCpuMax, parseCpuStatUsage, parseProcStat } from './host-cpu-source.js';
import { fakeTree } from './test-support.js';
import type { FakeTree } from './test-support.js';

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
 * A host CPU meter on a fake tree, with its first sample taken. `next(afterMs, changes)` moves the meter's clock,
 * writes the changed files and takes the next sample.
 */
async function meter(files: Record<string, string>) {
  const t = await fakeTree(files);
  trees.push(t);
  let ms = 0;
  const cpu = createHostCpuSource({ ...t, now: () => ms });
  const first = await cpu.sample();
  return {
    first,
    async next(afterMs: number, changes: Record<string, string>) {
      ms += afterMs;
      await t.write(changes);
      return cpu.sample();
    },
  };
}

describe('createHostCpuSource', () => {
  it('reads the whole host from /proc/stat when the cgroup has no quota', async () => {
    const m = await meter({
      'proc/self/cgroup': '0::/\n',
      'proc/stat': 'cpu  1000 0 500 8000 500 0 0 0 0 0\n',
      'cgroup/cpu.max': 'max 100000\n',
      'cgroup/cpu.stat': 'usage_usec 1\n',
    });
    expect(m.first).toBeUndefined();
    // +300 busy, +700 idle/iowait ticks: 30 %.
    expect(await m.next(0, { 'proc/stat': 'cpu  1200 0 600 8600 600 0 0 0 0 0\n' })).toEqual({ percent: 30, source: 'proc_stat', capacityCores: availableParallelism() });
  });

  it('measures a cgroup v2 against its cpu.max quota (a container at its limit reads 100 % on an idle host)', async () => {
    const m = await meter({
      'proc/self/cgroup': '0::/app.slice/svc\n',
      'proc/stat': 'cpu  0 0 0 1000 0 0 0 0 0 0\n',
      'cgroup/app.slice/svc/cpu.max': 'max 100000\n',
      'cgroup/app.slice/cpu.max': '50000 100000\n',
      'cgroup/app.slice/svc/cpu.stat': 'usage_usec 1000000\n',
    });
    // 1 s of wall time, half a core of quota (inherited from the parent), 250 ms of CPU used: 50 %.
    expect(await m.next(1_000, { 'cgroup/app.slice/svc/cpu.stat': 'usage_usec 1250000\n' })).toEqual({ percent: 50, source: 'cgroup_v2', capacityCores: 0.5 });
    const full = await m.next(1_000, { 'cgroup/app.slice/svc/cpu.stat': 'usage_usec 1750000\n', 'proc/stat': 'cpu  0 0 0 2000 0 0 0 0 0 0\n' });
    expect(full!.percent).toBe(100);
  });

  it('measures a cgroup v1 against its CFS quota', async () => {
    const m = await meter({
      'proc/self/cgroup': '4:memory:/x\n2:cpu,cpuacct:/docker/abc\n0::/\n',
      'proc/stat': 'cpu  0 0 0 1000 0 0 0 0 0 0\n',
      'cgroup/cpu,cpuacct/docker/abc/cpu.cfs_quota_us': '100000\n',
      'cgroup/cpu,cpuacct/docker/abc/cpu.cfs_period_us': '100000\n',
      'cgroup/cpu,cpuacct/docker/abc/cpuacct.usage': '5000000000\n',
    });
    expect(await m.next(2_000, { 'cgroup/cpu,cpuacct/docker/abc/cpuacct.usage': '5500000000\n' })).toEqual({ percent: 25, source: 'cgroup_v1', capacityCores: 1 });
  });

  it('ignores a v1 quota of -1 (unlimited) and falls back to /proc/stat', async () => {
    const m = await meter({
      'proc/self/cgroup': '1:cpu:/\n2:cpuacct:/\n',
      'proc/stat': 'cpu  0 0 0 1000 0 0 0 0 0 0\n',
      'cgroup/cpu/cpu.cfs_quota_us': '-1\n',
      'cgroup/cpu/cpu.cfs_period_us': '100000\n',
      'cgroup/cpuacct/cpuacct.usage': '1\n',
    });
    expect(await m.next(0, { 'proc/stat': 'cpu  100 0 0 1100 0 0 0 0 0 0\n' })).toMatchObject({ percent: 50, source: 'proc_stat' });
  });
});
