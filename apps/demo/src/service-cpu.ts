import { readdir, readFile } from 'node:fs/promises';
import { availableParallelism } from 'node:os';
import { performance } from 'node:perf_hooks';

/** One reading of {@link ServiceCpu}. */
export interface ServiceCpuReading {
  /** CPU the service wanted over the interval, percent of its CPU limit (can exceed 100 when it wants more). */
  readonly percent: number;
  /** The same in cores. */
  readonly demandCores: number;
  readonly limitCores: number;
  /** Processes counted: this one and its descendants. */
  readonly processes: number;
}

/** Options for {@link createServiceCpu}. */
export interface ServiceCpuOptions {
  /** CPU limit in cores. Default: the cgroup quota (`cpu.max`), else `min(2, available cores)`. */
  readonly limitCores?: number;
  /** Root of /proc (tests). Default `/proc`. */
  readonly procRoot?: string;
  readonly cgroupRoot?: string;
}

/** The service's CPU demand: this process and its child processes, measured over each interval. */
export interface ServiceCpu {
  sample(): Promise<ServiceCpuReading | undefined>;
}

/**
 * CPU demand of the whole service (this process plus every descendant it started: pool workers, report
 * exports, a runaway child), as a percent of the service's CPU limit: like a container's CPU against its
 * limit. Demand is time on a CPU plus time runnable but waiting in the run queue (Linux schedstat), so the
 * figure does not drop when noisy neighbours on a shared host starve the service, and does not rise with
 * their load either: the host-wide figure would count every other tenant of the machine.
 * Returns undefined off Linux and on the first call (no interval yet).
 *
 * @example
 * const cpu = createServiceCpu();
 * await cpu.sample(); // baseline
 * const reading = await cpu.sample(); // { percent, demandCores, limitCores, processes }
 */
export function createServiceCpu(options: ServiceCpuOptions = {}): ServiceCpu {
  const proc = options.procRoot ?? '/proc';
  let limit: Promise<number> | undefined;
  let last: { at: number; ns: Map<number, number> } | undefined;

  return {
    async sample() {
      limit ??= options.limitCores !== undefined ? Promise.resolve(options.limitCores) : cgroupLimitCores(options.cgroupRoot ?? '/sys/fs/cgroup');
      const limitCores = await limit;
      const pids = [process.pid, ...(await descendants(proc, process.pid))];
      const ns = new Map<number, number>();
      for (const pid of pids) {
        const total = await processSchedNs(proc, pid);
        if (total !== undefined) ns.set(pid, total);
      }
      const at = performance.now();
      const previous = last;
      last = { at, ns };
      if (!previous || ns.size === 0) return undefined;
      let delta = 0;
      // A process born during the interval counts from 0; one that ended is simply no longer read.
      for (const [pid, total] of ns) delta += Math.max(0, total - (previous.ns.get(pid) ?? 0));
      const demandCores = delta / Math.max(1, (at - previous.at) * 1e6);
      return { percent: (demandCores / limitCores) * 100, demandCores, limitCores, processes: ns.size };
    },
  };
}

/** Run + run-queue wait nanoseconds of every thread of `pid`. */
async function processSchedNs(proc: string, pid: number): Promise<number | undefined> {
  let tids: string[];
  try {
    tids = await readdir(`${proc}/${pid}/task`);
  } catch {
    return undefined;
  }
  let total = 0;
  for (const tid of tids) {
    try {
      const [run, wait] = (await readFile(`${proc}/${pid}/task/${tid}/schedstat`, 'utf8')).split(' ');
      total += Number(run) + Number(wait);
    } catch {}
  }
  return total;
}

/** Descendants of `root`, from each thread's `children` file (Linux 3.5+), else from every process's ppid. */
async function descendants(proc: string, root: number): Promise<number[]> {
  const out: number[] = [];
  const queue = [root];
  while (queue.length > 0) {
    const pid = queue.shift()!;
    const children = (await childrenOf(proc, pid)) ?? [];
    for (const child of children) {
      out.push(child);
      queue.push(child);
    }
  }
  return out;
}

async function childrenOf(proc: string, pid: number): Promise<number[] | undefined> {
  try {
    const out: number[] = [];
    for (const tid of await readdir(`${proc}/${pid}/task`)) {
      const text = await readFile(`${proc}/${pid}/task/${tid}/children`, 'utf8');
      for (const part of text.trim().split(/\s+/)) if (part) out.push(Number(part));
    }
    return out;
  } catch {
    return scanParent(proc, pid);
  }
}

async function scanParent(proc: string, parent: number): Promise<number[] | undefined> {
  let entries: string[];
  try {
    entries = await readdir(proc);
  } catch {
    return undefined;
  }
  const out: number[] = [];
  for (const entry of entries) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const stat = await readFile(`${proc}/${entry}/stat`, 'utf8');
      const ppid = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
      if (ppid === parent) out.push(Number(entry));
    } catch {}
  }
  return out;
}

/** The cgroup v2 (`cpu.max`) or v1 (`cpu.cfs_quota_us`) quota in cores, else `min(2, available cores)`. */
async function cgroupLimitCores(root: string): Promise<number> {
  const fallback = Math.min(2, availableParallelism());
  try {
    const [quota, period] = (await readFile(`${root}/cpu.max`, 'utf8')).trim().split(' ');
    if (quota !== 'max' && Number(quota) > 0 && Number(period) > 0) return Number(quota) / Number(period);
    return fallback;
  } catch {}
  try {
    const quota = Number((await readFile(`${root}/cpu/cpu.cfs_quota_us`, 'utf8')).trim());
    const period = Number((await readFile(`${root}/cpu/cpu.cfs_period_us`, 'utf8')).trim());
    if (quota > 0 && period > 0) return quota / period;
  } catch {}
  return fallback;
}
