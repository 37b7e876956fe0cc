import { readdir, readFile, statfs } from 'node:fs/promises';
import { cpus, freemem, totalmem } from 'node:os';
import { join } from 'node:path';
import { monitorEventLoopDelay, performance } from 'node:perf_hooks';
import type { EventLoopUtilization, IntervalHistogram } from 'node:perf_hooks';
import { firstDirWith, readCgroupPaths, readText, upToRoot, v1Candidates } from './cgroup-paths.js';
import { createHostCpuSource } from './host-cpu-source.js';
import type { HostCpuSourceKind } from './host-cpu-source.js';

/** One reading of the resource levels, in percent (0-100). Missing levels are not evaluated. */
export interface PressureReading {
  /** The CPU level that is compared with the threshold (see `cpuSource`). */
  readonly cpuPercent?: number;
  readonly memoryPercent?: number;
  /** The fullest of the configured disk paths. */
  readonly diskPercent?: number;
  /** Event-loop utilization over the last interval, in percent. */
  readonly eventLoopPercent?: number;
  readonly details?: PressureDetails;
}

/** The raw measurements behind a reading (for dashboards). */
export interface PressureDetails {
  /** Process CPU over the interval, percent of one core (can exceed 100 with worker threads). */
  readonly processCpuPercent?: number;
  /** Whole-machine CPU over the interval from `os.cpus()`, percent of all cores. */
  readonly systemCpuPercent?: number;
  /** Host CPU over the interval (cgroup quota where one is set, else `/proc/stat`); see {@link createHostCpuSource}. */
  readonly hostCpuPercent?: number;
  /** Where `hostCpuPercent` came from. */
  readonly hostCpuSource?: HostCpuSourceKind;
  /** Cores `hostCpuPercent` is relative to (the cgroup quota, or every CPU of the host). */
  readonly cpuCapacityCores?: number;
  /**
   * CPU this process wanted over the interval: time on a CPU plus time runnable but waiting in the run
   * queue (Linux schedstat), percent of one core. Only with `cpuSource: 'demand'`.
   */
  readonly demandCpuPercent?: number;
  readonly memoryUsedBytes?: number;
  readonly memoryLimitBytes?: number;
  readonly memorySource?: 'cgroup_v2' | 'cgroup_v1' | 'host';
  readonly disks?: readonly { path: string; percent: number }[];
  /** p99 event-loop delay over the interval. */
  readonly eventLoopDelayMs?: number;
}

/** Produces readings; injectable so tests feed synthetic series. */
export type PressureSampler = () => PressureReading | Promise<PressureReading>;

/** Options for {@link createSystemSampler}. */
export interface SystemSamplerOptions {
  /**
   * Paths whose file systems are checked with `fs.statfs` (the fullest one is the disk level). Default
   * `[process.cwd()]`: the data directory of a service that keeps its files where it runs. `[]` turns disk off.
   */
  readonly diskPaths?: readonly string[];
  /**
   * Which CPU figure is the level:
   * - `host` (default): the host CPU as this process experiences it: the cgroup's usage against its CPU quota
   *   where one is set, else the whole machine from `/proc/stat` (see {@link createHostCpuSource});
   * - `process`: this process, percent of one core (capped at 100);
   * - `system`: the whole machine from `os.cpus()` (ignores cgroup quotas);
   * - `max`: the larger of `process` and `host`;
   * - `demand`: process CPU plus run-queue wait from Linux schedstat, so a process starved by noisy
   *   neighbours still reads as under pressure (falls back to `process` elsewhere).
   */
  readonly cpuSource?: 'host' | 'process' | 'system' | 'max' | 'demand';
  /** Root of the cgroup file system. Default `/sys/fs/cgroup`. */
  readonly cgroupRoot?: string;
  /** Root of the proc file system (for `/proc/stat` and `/proc/self/cgroup`). Default `/proc`. */
  readonly procRoot?: string;
}

/** A sampler of this process and machine, plus `close()` to stop the event-loop histogram. */
export interface SystemSampler {
  readonly sample: () => Promise<PressureReading>;
  close(): void;
}

type MemoryProbe = () => Promise<{ used: number; limit: number; source: 'cgroup_v2' | 'cgroup_v1' | 'host' }>;

const UNLIMITED = 2 ** 60;

async function readNumber(path: string): Promise<number | undefined> {
  const text = (await readText(path))?.trim();
  if (text === undefined) return undefined;
  if (text === 'max') return Infinity;
  const n = Number(text);
  return Number.isFinite(n) ? n : undefined;
}

/** Smallest finite `file` value from `dir` up to `root`. */
async function smallestUpward(root: string, dir: string, file: string): Promise<number | undefined> {
  let smallest: number | undefined;
  for (const current of upToRoot(root, dir)) {
    const n = await readNumber(join(current, file));
    if (n !== undefined && Number.isFinite(n)) smallest = Math.min(smallest ?? Infinity, n);
  }
  return smallest;
}

/**
 * Memory against the limit of this process's own cgroup (from `/proc/self/cgroup`, or the namespace root), the
 * smallest limit on the way up counting: v2 `memory.current` / `memory.max`, v1 `memory.usage_in_bytes` /
 * `memory.limit_in_bytes`; else the host.
 */
async function detectMemory(root: string, procRoot: string): Promise<MemoryProbe> {
  const host: MemoryProbe = async () => ({ used: totalmem() - freemem(), limit: totalmem(), source: 'host' });
  const paths = await readCgroupPaths(procRoot);
  const v2Dir = await firstDirWith([...(paths?.v2 === undefined ? [] : [join(root, paths.v2)]), root], 'memory.current');
  const v2Max = v2Dir === undefined ? undefined : await smallestUpward(root, v2Dir, 'memory.max');
  if (v2Dir !== undefined && v2Max !== undefined && v2Max < UNLIMITED) {
    return async () => {
      const used = await readNumber(join(v2Dir, 'memory.current'));
      return used === undefined ? host() : { used, limit: v2Max, source: 'cgroup_v2' };
    };
  }
  const v1Root = join(root, 'memory');
  const v1Dir = await firstDirWith(v1Candidates(root, paths, 'memory'), 'memory.limit_in_bytes');
  const v1Max = v1Dir === undefined ? undefined : await smallestUpward(v1Root, v1Dir, 'memory.limit_in_bytes');
  if (v1Dir !== undefined && v1Max !== undefined && v1Max < Math.min(UNLIMITED, totalmem())) {
    return async () => {
      const used = await readNumber(join(v1Dir, 'memory.usage_in_bytes'));
      return used === undefined ? host() : { used, limit: v1Max, source: 'cgroup_v1' };
    };
  }
  return host;
}

/** Per-thread (run + run-queue wait) nanoseconds from /proc/self/task/<tid>/schedstat; undefined off Linux. */
async function threadSchedstat(): Promise<Map<string, number> | undefined> {
  let tids: string[];
  try {
    tids = await readdir('/proc/self/task');
  } catch {
    return undefined;
  }
  const out = new Map<string, number>();
  for (const tid of tids) {
    try {
      const [run, wait] = (await readFile(`/proc/self/task/${tid}/schedstat`, 'utf8')).split(' ');
      out.set(tid, Number(run) + Number(wait));
    } catch {}
  }
  return out;
}

function cpuTimes(): { idle: number; total: number } {
  let idle = 0;
  let total = 0;
  for (const cpu of cpus()) {
    const t = cpu.times;
    idle += t.idle;
    total += t.user + t.nice + t.sys + t.idle + t.irq;
  }
  return { idle, total };
}

/**
 * Samples the host CPU (cgroup-aware, see `cpuSource`), memory against the cgroup v2/v1 limit (else the host),
 * disk usage of the configured paths (default: the working directory) and the event loop, each measured over
 * the interval since the previous sample (event-loop utilization is a per-interval delta, not the cumulative figure).
 *
 * @example
 * const sampler = createSystemSampler({ diskPaths: ['/var/lib/app'] });
 * const reading = await sampler.sample();
 * sampler.close();
 */
export function createSystemSampler(options: SystemSamplerOptions = {}): SystemSampler {
  const diskPaths = options.diskPaths ?? [process.cwd()];
  const cpuSource = options.cpuSource ?? 'host';
  const root = options.cgroupRoot ?? '/sys/fs/cgroup';
  const procRoot = options.procRoot ?? '/proc';
  const host = createHostCpuSource({ cgroupRoot: root, procRoot });
  // Starts the host interval now, so the first sample already has a figure.
  const hostPrimed = host.sample().catch(() => undefined);
  let memory: Promise<MemoryProbe> | undefined;
  let lastCpu = process.cpuUsage();
  let lastWall = performance.now();
  let lastSystem = cpuTimes();
  let lastElu: EventLoopUtilization = performance.eventLoopUtilization();
  let histogram: IntervalHistogram | undefined = monitorEventLoopDelay({ resolution: 20 });
  histogram.enable();
  let lastSched: Map<string, number> | undefined;
  let lastSchedAt = 0;
  if (cpuSource === 'demand') {
    lastSchedAt = performance.now();
    void threadSchedstat().then((m) => (lastSched ??= m));
  }

  return {
    async sample() {
      const now = performance.now();
      const cpu = process.cpuUsage();
      const wallUs = Math.max(1, (now - lastWall) * 1000);
      const processCpuPercent = ((cpu.user - lastCpu.user + (cpu.system - lastCpu.system)) / wallUs) * 100;
      await hostPrimed;
      const hostCpu = await host.sample().catch(() => undefined);
      const system = cpuTimes();
      const totalDelta = system.total - lastSystem.total;
      const systemCpuPercent = totalDelta > 0 ? (1 - (system.idle - lastSystem.idle) / totalDelta) * 100 : 0;
      const elu = performance.eventLoopUtilization();
      const eventLoopPercent = performance.eventLoopUtilization(elu, lastElu).utilization * 100;
      lastCpu = cpu;
      lastWall = now;
      lastSystem = system;
      lastElu = elu;
      let eventLoopDelayMs: number | undefined;
      if (histogram) {
        eventLoopDelayMs = histogram.count > 0 ? histogram.percentile(99) / 1e6 : 0;
        histogram.reset();
      }
      let demandCpuPercent: number | undefined;
      if (cpuSource === 'demand') {
        const sched = await threadSchedstat();
        const at = performance.now();
        if (sched && lastSched) {
          let ns = 0;
          for (const [tid, value] of sched) ns += value - (lastSched.get(tid) ?? 0);
          demandCpuPercent = (Math.max(0, ns) / Math.max(1, (at - lastSchedAt) * 1e6)) * 100;
        }
        lastSched = sched;
        lastSchedAt = at;
      }
      memory ??= detectMemory(root, procRoot);
      const mem = await (await memory)();
      const disks: { path: string; percent: number }[] = [];
      for (const path of diskPaths) {
        try {
          const s = await statfs(path);
          const used = s.blocks - s.bfree;
          const denominator = used + s.bavail;
          disks.push({ path, percent: denominator > 0 ? (used / denominator) * 100 : 0 });
        } catch {}
      }
      const hostCpuPercent = hostCpu?.percent ?? systemCpuPercent;
      const cpuLevel =
        cpuSource === 'host'
          ? hostCpuPercent
          : cpuSource === 'system'
            ? systemCpuPercent
            : cpuSource === 'max'
              ? Math.max(processCpuPercent, hostCpuPercent)
              : cpuSource === 'demand'
                ? (demandCpuPercent ?? processCpuPercent)
                : processCpuPercent;
      return {
        cpuPercent: Math.min(100, cpuLevel),
        memoryPercent: mem.limit > 0 ? (mem.used / mem.limit) * 100 : 0,
        ...(disks.length > 0 ? { diskPercent: Math.max(...disks.map((d) => d.percent)) } : {}),
        eventLoopPercent,
        details: {
          processCpuPercent,
          systemCpuPercent,
          hostCpuPercent,
          ...(hostCpu ? { hostCpuSource: hostCpu.source, cpuCapacityCores: hostCpu.capacityCores } : {}),
          ...(demandCpuPercent === undefined ? {} : { demandCpuPercent }),
          memoryUsedBytes: mem.used,
          memoryLimitBytes: mem.limit,
          memorySource: mem.source,
          disks,
          ...(eventLoopDelayMs === undefined ? {} : { eventLoopDelayMs }),
        },
      };
    },
    close() {
      histogram?.disable();
      histogram = undefined;
    },
  };
}
