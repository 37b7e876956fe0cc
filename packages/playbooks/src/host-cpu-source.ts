import { availableParallelism, cpus } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { firstDirWith, readCgroupPaths, readText as read, upToRoot, v1Candidates } from './cgroup-paths.js';

/** Where a host CPU figure came from. */
export type HostCpuSourceKind = 'cgroup_v2' | 'cgroup_v1' | 'proc_stat' | 'os_cpus';

/** One host CPU reading over the interval since the previous one. */
export interface HostCpuReading {
  /** Busy share of the CPU this process may use, 0-100. */
  readonly percent: number;
  readonly source: HostCpuSourceKind;
  /** CPUs the figure is relative to: the cgroup quota in cores, or every CPU of the host. */
  readonly capacityCores: number;
}

/** Options for {@link createHostCpuSource}. */
export interface HostCpuSourceOptions {
  /** Default `/proc`. */
  readonly procRoot?: string;
  /** Default `/sys/fs/cgroup`. */
  readonly cgroupRoot?: string;
  /** Milliseconds for the cgroup usage rate (only differences are used, so a monotonic clock fits). Default `performance.now`. */
  readonly now?: () => number;
  /** @deprecated use {@link HostCpuSourceOptions.now} (read when `now` is unset). */
  readonly clock?: () => number;
}

/** A stateful host CPU meter: each `sample()` measures the interval since the previous one. */
export interface HostCpuSource {
  /** Undefined on the very first call (no interval yet) and when nothing can be read. */
  sample(): Promise<HostCpuReading | undefined>;
}

/**
 * Parses the aggregate `cpu` line of `/proc/stat` (USER_HZ ticks): busy = user + nice + system + irq + softirq +
 * steal; idle = idle + iowait. `guest`/`guest_nice` are already inside `user`/`nice`, so they are not added again.
 *
 * @example
 * parseProcStat('cpu  100 0 50 800 50 0 0 0 0 0\n'); // { busy: 150, total: 1000 }
 */
export function parseProcStat(text: string): { busy: number; total: number } | undefined {
  const line = text.split('\n').find((l) => l.startsWith('cpu '));
  if (!line) return undefined;
  const [user = 0, nice = 0, system = 0, idle = 0, iowait = 0, irq = 0, softirq = 0, steal = 0] = line.trim().split(/\s+/).slice(1).map(Number);
  const busy = user + nice + system + irq + softirq + steal;
  const total = busy + idle + iowait;
  return Number.isFinite(total) && total > 0 ? { busy, total } : undefined;
}

/**
 * Parses cgroup v2 `cpu.max` (`"<quota> <period>"` or `"max <period>"`) into cores; undefined without a quota.
 *
 * @example
 * parseCpuMax('150000 100000'); // 1.5
 */
export function parseCpuMax(text: string): number | undefined {
  const [quota, period] = text.trim().split(/\s+/);
  if (quota === undefined || quota === 'max') return undefined;
  const cores = Number(quota) / Number(period ?? 100_000);
  return Number.isFinite(cores) && cores > 0 ? cores : undefined;
}

/**
 * Reads `usage_usec` from cgroup v2 `cpu.stat`.
 *
 * @example
 * parseCpuStatUsage('usage_usec 1200\nuser_usec 1000\n'); // 1200
 */
export function parseCpuStatUsage(text: string): number | undefined {
  const match = /^usage_usec\s+(\d+)/m.exec(text);
  return match ? Number(match[1]) : undefined;
}

/** Smallest quota (cores) on the way from `dir` up to `root`. */
async function v2QuotaCores(root: string, dir: string): Promise<number | undefined> {
  let smallest: number | undefined;
  for (const current of upToRoot(root, dir)) {
    const text = await read(join(current, 'cpu.max'));
    const cores = text === undefined ? undefined : parseCpuMax(text);
    if (cores !== undefined) smallest = Math.min(smallest ?? Infinity, cores);
  }
  return smallest;
}

type Meter = () => Promise<{ usage: number; total: number; capacityCores: number } | undefined>;

async function detect(procRoot: string, cgroupRoot: string, clock: () => number, hostCores: number): Promise<{ kind: HostCpuSourceKind; meter: Meter }> {
  const cgroup = await readCgroupPaths(procRoot);

  // cgroup v2 with a quota: usage_usec of our cgroup against quota x wall time.
  if (cgroup?.v2 !== undefined) {
    const dir = await firstDirWith([join(cgroupRoot, cgroup.v2), cgroupRoot], 'cpu.stat');
    const quota = dir === undefined ? undefined : await v2QuotaCores(cgroupRoot, dir);
    if (dir !== undefined && quota !== undefined) {
      const capacityCores = Math.min(quota, hostCores);
      return {
        kind: 'cgroup_v2',
        meter: async () => {
          const usage = parseCpuStatUsage((await read(join(dir, 'cpu.stat'))) ?? '');
          return usage === undefined ? undefined : { usage, total: clock() * 1000 * capacityCores, capacityCores };
        },
      };
    }
  }

  // cgroup v1 with a CFS quota: cpuacct.usage (ns) against quota x wall time.
  if (cgroup?.v1.has('cpu')) {
    const cpuDir = await firstDirWith(v1Candidates(cgroupRoot, cgroup, 'cpu', 'cpu,cpuacct'), 'cpu.cfs_quota_us');
    const quotaUs = cpuDir === undefined ? undefined : Number((await read(join(cpuDir, 'cpu.cfs_quota_us')))?.trim());
    const periodUs = cpuDir === undefined ? undefined : Number((await read(join(cpuDir, 'cpu.cfs_period_us')))?.trim());
    const acctDir = await firstDirWith(v1Candidates(cgroupRoot, cgroup.v1.has('cpuacct') ? cgroup : { v1: new Map([['cpuacct', cgroup.v1.get('cpu')!]]) }, 'cpuacct', 'cpu,cpuacct'), 'cpuacct.usage');
    if (quotaUs !== undefined && periodUs !== undefined && quotaUs > 0 && periodUs > 0 && acctDir !== undefined) {
      const capacityCores = Math.min(quotaUs / periodUs, hostCores);
      return {
        kind: 'cgroup_v1',
        meter: async () => {
          const ns = Number((await read(join(acctDir, 'cpuacct.usage')))?.trim());
          return Number.isFinite(ns) ? { usage: ns / 1000, total: clock() * 1000 * capacityCores, capacityCores } : undefined;
        },
      };
    }
  }

  // No quota: the whole host from /proc/stat.
  if ((await read(join(procRoot, 'stat'))) !== undefined) {
    return {
      kind: 'proc_stat',
      meter: async () => {
        const stat = parseProcStat((await read(join(procRoot, 'stat'))) ?? '');
        return stat && { usage: stat.busy, total: stat.total, capacityCores: hostCores };
      },
    };
  }

  // Not Linux: the same figure from os.cpus().
  return {
    kind: 'os_cpus',
    meter: async () => {
      let busy = 0;
      let total = 0;
      for (const { times } of cpus()) {
        busy += times.user + times.nice + times.sys + times.irq;
        total += times.user + times.nice + times.sys + times.irq + times.idle;
      }
      return { usage: busy, total, capacityCores: hostCores };
    },
  };
}

/**
 * The host's CPU as this process experiences it. Inside a cgroup with a CPU quota (v2 `cpu.max`, v1
 * `cpu.cfs_quota_us`) it is the cgroup's usage (`cpu.stat` `usage_usec`, v1 `cpuacct.usage`) against the quota
 * over wall time: a container at its limit reads 100 % even on an idle host. Without a quota it is the
 * whole machine from the aggregate line of `/proc/stat`, and off Linux from `os.cpus()`. The source is
 * chosen once, at the first sample.
 *
 * @example
 * const cpu = createHostCpuSource();
 * await cpu.sample(); // undefined: the first call starts the interval
 * const { percent, source } = (await cpu.sample())!;
 */
export function createHostCpuSource(options: HostCpuSourceOptions = {}): HostCpuSource {
  const procRoot = options.procRoot ?? '/proc';
  const cgroupRoot = options.cgroupRoot ?? '/sys/fs/cgroup';
  const clock = options.now ?? options.clock ?? (() => performance.now());
  const hostCores = Math.max(1, availableParallelism());
  let detected: Promise<{ kind: HostCpuSourceKind; meter: Meter }> | undefined;
  let last: { usage: number; total: number } | undefined;
  return {
    async sample() {
      detected ??= detect(procRoot, cgroupRoot, clock, hostCores);
      const { kind, meter } = await detected;
      const now = await meter();
      if (!now) return undefined;
      const previous = last;
      last = now;
      if (!previous) return undefined;
      const total = now.total - previous.total;
      if (total <= 0) return undefined;
      const percent = Math.min(100, Math.max(0, ((now.usage - previous.usage) / total) * 100));
      return { percent, source: kind, capacityCores: now.capacityCores };
    },
  };
}
