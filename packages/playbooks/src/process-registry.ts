import { spawn } from 'node:child_process';
import type { ChildProcess, SpawnOptions } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { assertNumberOption, GuardError, terminateProcess } from '@guard/core';
import { readProcStat, readSchedstat, sampleProcessCpu } from './proc-stat.js';
import type {} from './declarations.js';

/** A process the guard owns: a child it started, or a descendant registered with it. */
export interface GuardedProcess {
  readonly id: string;
  readonly name: string;
  /** Worker group (see {@link ProcessRegistry.pool}); undefined when none. */
  readonly group: string | undefined;
  readonly pid: number;
  readonly startedAt: number;
  /** Set for children started or registered as a `ChildProcess`; undefined for pids registered by number. */
  readonly child: ChildProcess | undefined;
}

/** CPU use of one owned process. */
export interface ProcessUsage {
  readonly id: string;
  readonly name: string;
  readonly group: string | undefined;
  readonly pid: number;
  /** Percent of one core (can exceed 100 for multi-threaded children); undefined on the first {@link ProcessRegistry.usage} call or off Linux. */
  readonly cpuPercent: number | undefined;
  /** CPU plus run-queue wait, percent of one core (what the process wants, even when neighbours starve it). */
  readonly demandPercent: number | undefined;
}

/** A group of worker processes that can be shrunk (what `scale_down` acts on). */
export interface WorkerPool {
  readonly size: number;
  /** Stops up to `count` workers and resolves with how many stopped. */
  scaleDown(count: number): Promise<number>;
}

/** Options for {@link ProcessRegistry.killRunaway}. */
export interface KillRunawayOptions {
  /** Kill owned processes at or over this percent of one core. Default 50. */
  readonly thresholdPercent?: number;
  /** `demand` (CPU + run-queue wait; default) or `cpu` (CPU time only). */
  readonly measure?: 'demand' | 'cpu';
  /** Time between the two CPU samples. Default 500. */
  readonly intervalMs?: number;
  /** Only this group. Default: every owned process. */
  readonly group?: string;
  /** Default SIGTERM, then SIGKILL after `graceMs`. */
  readonly signal?: 'SIGTERM' | 'SIGKILL' | 'SIGINT' | 'SIGHUP';
  /** Default 2000. */
  readonly graceMs?: number;
  readonly abortSignal?: AbortSignal;
}

/** What {@link ProcessRegistry.killRunaway} did. */
export interface KillRunawayResult {
  readonly thresholdPercent: number;
  readonly measure: 'demand' | 'cpu';
  readonly sampledMs: number;
  /** Processes over the threshold that exited after the signal. */
  readonly killed: readonly { pid: number; name: string; group: string | undefined; percent: number; exited: boolean }[];
  /** Owned processes under the threshold (left alone). */
  readonly spared: readonly { pid: number; name: string; percent: number }[];
}

interface Entry extends GuardedProcess {
  /** `/proc` start time of a pid registered by number, to notice pid reuse. */
  readonly startTicks: string | undefined;
  /** Registration order (newest = highest), for `scaleDown`. */
  readonly seq: number;
}

const SIGNALS = new Set(['SIGTERM', 'SIGKILL', 'SIGINT', 'SIGHUP']);

/** Options for {@link ProcessRegistry}. */
export interface ProcessRegistryOptions {
  /** How long a stopped process may take to exit after its signal before SIGKILL (`close()`, `stop()`, pools). Default 2000. */
  readonly graceMs?: number;
}

/**
 * The processes the guard owns: children it spawned, and children/descendants registered with it.
 * Everything that kills (`kill_process`, `kill_runaway`, `scale_down`) acts only on these: anything else is
 * refused with `NOT_OWNED`. CPU is read from `/proc/<pid>/stat` (and `schedstat` for demand).
 *
 * @example
 * await using processes = new ProcessRegistry();
 * const worker = processes.spawn('report-builder', process.execPath, ['build-report.js'], { group: 'workers' });
 * processes.register(otherChild, { name: 'ffmpeg' });
 * await processes.killRunaway({ thresholdPercent: 50 });
 */
export class ProcessRegistry implements AsyncDisposable {
  readonly #processes = new Map<string, Entry>();
  readonly #lastTicks = new Map<string, { cpuMs: number; demandNs: number | undefined; at: number }>();
  readonly #graceMs: number;
  #seq = 0;
  #closed = false;

  constructor(options: ProcessRegistryOptions = {}) {
    this.#graceMs = options.graceMs ?? 2_000;
    assertNumberOption('graceMs', this.#graceMs, { min: 0 });
  }

  /** Spawns and tracks a child; it leaves the registry when it exits. */
  spawn(name: string, command: string, args: readonly string[] = [], options: SpawnOptions & { group?: string } = {}): GuardedProcess {
    this.#assertOpen();
    const { group, ...spawnOptions } = options;
    const child = spawn(command, args, { stdio: 'ignore', ...spawnOptions });
    // A spawn failure (ENOENT, EACCES) arrives as an 'error' event; without a listener it would crash the process.
    child.on('error', () => undefined);
    if (child.pid === undefined) {
      throw new GuardError('INVALID_INPUT', `could not spawn ${command}`, { details: { field: 'command', command } });
    }
    return this.#track(child, child.pid, name, group, undefined);
  }

  /**
   * Takes ownership of a process the service started some other way: a `ChildProcess`, or the pid of a
   * child or descendant of this process (checked through `/proc/<pid>/stat`; anything else, such as the
   * database or another service, is refused with `NOT_OWNED`). Registered pids leave the registry when they exit.
   *
   * @example
   * const child = fork('worker.js');
   * processes.register(child, { name: 'worker', group: 'workers' });
   */
  register(target: ChildProcess | number, options: { name?: string; group?: string } = {}): GuardedProcess {
    this.#assertOpen();
    if (typeof target === 'number') {
      if (!Number.isInteger(target) || target <= 0) throw new GuardError('INVALID_INPUT', 'pid must be a positive integer', { details: { field: 'pid' } });
      const existing = this.find(target);
      if (existing) return existing;
      if (!isDescendant(target, process.pid)) {
        throw new GuardError('NOT_OWNED', `process ${target} is not a child or descendant of this process; refusing to own it`, { details: { target } });
      }
      return this.#track(undefined, target, options.name ?? procName(target) ?? `pid_${target}`, options.group, startTicks(target));
    }
    if (!target || typeof target.kill !== 'function' || target.pid === undefined) {
      throw new GuardError('INVALID_INPUT', 'register needs a running ChildProcess or a pid', { details: { field: 'target' } });
    }
    const existing = this.find(target.pid);
    if (existing) return existing;
    if (target.exitCode !== null || target.signalCode !== null) {
      throw new GuardError('INVALID_INPUT', `process ${target.pid} has already exited`, { details: { field: 'target' } });
    }
    target.on('error', () => undefined);
    return this.#track(target, target.pid, options.name ?? `pid_${target.pid}`, options.group, undefined);
  }

  /** Owned processes that are still running. */
  list(): GuardedProcess[] {
    this.#prune();
    return [...this.#processes.values()].map(publicView);
  }

  /** Finds an owned process by id, name or pid. */
  find(target: string | number): GuardedProcess | undefined {
    const entry = this.#lookup(target);
    return entry && publicView(entry);
  }

  /** True when `pid` is owned. */
  owns(pid: number): boolean {
    return this.find(pid) !== undefined;
  }

  /**
   * Signals an owned process (by id, name or pid). Throws `NOT_OWNED` for anything else.
   * @returns the process signalled.
   */
  kill(target: string | number, signal: NodeJS.Signals = 'SIGTERM'): GuardedProcess {
    const entry = this.#owned(target);
    signalProcess(entry, signal);
    return publicView(entry);
  }

  /**
   * Signals an owned process and resolves once it exited (SIGKILL after `graceMs`). Throws `NOT_OWNED`.
   * @returns true when it exited.
   */
  async stop(target: string | number, options: { signal?: NodeJS.Signals; graceMs?: number } = {}): Promise<boolean> {
    const entry = this.#owned(target);
    return terminate(entry, options.signal ?? 'SIGTERM', options.graceMs ?? this.#graceMs);
  }

  /** CPU of each owned process since the previous call (reads `/proc/<pid>/stat` and `schedstat` on Linux). */
  async usage(): Promise<ProcessUsage[]> {
    this.#prune();
    const out: ProcessUsage[] = [];
    for (const p of this.#processes.values()) {
      let cpuPercent: number | undefined;
      let demandPercent: number | undefined;
      const [stat, sched] = await Promise.all([readProcStat(p.pid), readSchedstat(p.pid)]);
      if (stat) {
        const now = performance.now();
        const demandNs = sched ? sched.runNs + sched.waitNs : undefined;
        const last = this.#lastTicks.get(p.id);
        if (last && now > last.at) {
          cpuPercent = ((stat.cpuMs - last.cpuMs) * 100) / (now - last.at);
          demandPercent = demandNs !== undefined && last.demandNs !== undefined ? ((demandNs - last.demandNs) / 1e6 / (now - last.at)) * 100 : cpuPercent;
        }
        this.#lastTicks.set(p.id, { cpuMs: stat.cpuMs, demandNs, at: now });
      }
      out.push({ id: p.id, name: p.name, group: p.group, pid: p.pid, cpuPercent, demandPercent });
    }
    return out;
  }

  /**
   * CPU of each owned process over `intervalMs` (two samples), so the first call already has figures.
   *
   * @example
   * const usage = await processes.sampleCpu({ intervalMs: 500 });
   */
  async sampleCpu(options: { intervalMs?: number; group?: string; signal?: AbortSignal } = {}): Promise<ProcessUsage[]> {
    this.#prune();
    const entries = [...this.#processes.values()].filter((p) => options.group === undefined || p.group === options.group);
    const sampled = await sampleProcessCpu(
      entries.map((e) => e.pid),
      { intervalMs: options.intervalMs ?? 500, ...(options.signal ? { signal: options.signal } : {}) },
    );
    return sampled.flatMap((s) => {
      const e = entries.find((x) => x.pid === s.pid);
      return e && this.#processes.has(e.id) ? [{ id: e.id, name: e.name, group: e.group, pid: e.pid, cpuPercent: s.cpuPercent, demandPercent: s.demandPercent }] : [];
    });
  }

  /**
   * Kills the owned processes whose CPU (or CPU demand) is at or over `thresholdPercent` of one core,
   * measured over `intervalMs`, and waits for them to exit. Never touches a process it does not own.
   *
   * @example
   * const { killed } = await processes.killRunaway({ thresholdPercent: 50 });
   */
  async killRunaway(options: KillRunawayOptions = {}): Promise<KillRunawayResult> {
    this.#assertOpen();
    const thresholdPercent = options.thresholdPercent ?? 50;
    const measure = options.measure ?? 'demand';
    const signal = options.signal ?? 'SIGTERM';
    if (!SIGNALS.has(signal)) throw new GuardError('INVALID_INPUT', 'signal must be SIGTERM, SIGKILL, SIGINT or SIGHUP', { details: { field: 'signal' } });
    const t0 = performance.now();
    const usage = await this.sampleCpu({
      intervalMs: options.intervalMs ?? 500,
      ...(options.group === undefined ? {} : { group: options.group }),
      ...(options.abortSignal ? { signal: options.abortSignal } : {}),
    });
    const sampledMs = Math.round(performance.now() - t0);
    const percentOf = (u: ProcessUsage): number => (measure === 'cpu' ? (u.cpuPercent ?? 0) : Math.max(u.demandPercent ?? 0, u.cpuPercent ?? 0));
    const over = usage.filter((u) => percentOf(u) >= thresholdPercent);
    const killed = await Promise.all(
      over.map(async (u) => {
        const entry = this.#processes.get(u.id);
        const exited = entry ? await terminate(entry, signal, options.graceMs ?? this.#graceMs) : true;
        return { pid: u.pid, name: u.name, group: u.group, percent: percentOf(u), exited };
      }),
    );
    const spared = usage.filter((u) => percentOf(u) < thresholdPercent).map((u) => ({ pid: u.pid, name: u.name, percent: percentOf(u) }));
    return { thresholdPercent, measure, sampledMs, killed, spared };
  }

  /**
   * The owned processes of `group` as a {@link WorkerPool}: `size` counts the running ones and
   * `scaleDown(n)` stops the `n` newest (SIGTERM, SIGKILL after 2 s) and resolves with how many exited.
   *
   * @example
   * const workers = processes.pool('workers');
   * await workers.scaleDown(2);
   */
  pool(group: string, options: { graceMs?: number } = {}): WorkerPool {
    const members = (): Entry[] => {
      this.#prune();
      return [...this.#processes.values()].filter((p) => p.group === group);
    };
    return {
      get size() {
        return members().length;
      },
      scaleDown: async (count: number) => {
        if (!Number.isInteger(count) || count < 0) throw new GuardError('INVALID_INPUT', 'count must be an integer >= 0', { details: { field: 'count' } });
        const victims = members()
          .sort((a, b) => b.seq - a.seq)
          .slice(0, count);
        const exited = await Promise.all(victims.map((v) => terminate(v, 'SIGTERM', options.graceMs ?? this.#graceMs)));
        return exited.filter(Boolean).length;
      },
    };
  }

  /**
   * A CPU sampler for the service as a whole: this process's CPU plus the CPU demand of every owned
   * process, in percent of one core (capped at 100), since the previous call (undefined on the first).
   * Plug it into a `ResourcePressureMonitor` (`sampler: async () => ({ cpuPercent: await s() })`) so
   * pressure follows the service's own work, not a neighbour's build on a shared host.
   *
   * @example
   * const serviceCpu = processes.serviceCpuSampler();
   * new ResourcePressureMonitor({ sampler: async () => ({ cpuPercent: await serviceCpu() }) });
   */
  serviceCpuSampler(): () => Promise<number | undefined> {
    let last: { at: number; byPid: Map<number, number> } | undefined;
    return async () => {
      const at = performance.now();
      const byPid = new Map<number, number>();
      const self = await readProcStat(process.pid);
      const selfMs = self ? self.cpuMs : (process.cpuUsage().user + process.cpuUsage().system) / 1000;
      byPid.set(process.pid, selfMs);
      this.#prune();
      await Promise.all(
        [...this.#processes.values()].map(async (p) => {
          const [stat, sched] = await Promise.all([readProcStat(p.pid), readSchedstat(p.pid)]);
          if (sched) byPid.set(p.pid, Math.max((sched.runNs + sched.waitNs) / 1e6, stat?.cpuMs ?? 0));
          else if (stat) byPid.set(p.pid, stat.cpuMs);
        }),
      );
      const previous = last;
      last = { at, byPid };
      if (!previous || at <= previous.at) return undefined;
      let usedMs = 0;
      // A process first seen now has no baseline (it may be an old process just registered): it counts from the next sample.
      for (const [pid, ms] of byPid) {
        const before = previous.byPid.get(pid);
        if (before !== undefined) usedMs += Math.max(0, ms - before);
      }
      return Math.min(100, Math.round(((usedMs * 100) / (at - previous.at)) * 10) / 10);
    };
  }

  /** SIGTERMs every owned process and waits (up to the `graceMs` option, then SIGKILL) for them to exit. Idempotent. */
  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    await Promise.all([...this.#processes.values()].map((p) => terminate(p, 'SIGTERM', this.#graceMs)));
  }

  [Symbol.asyncDispose](): Promise<void> {
    return this.close();
  }

  #lookup(target: string | number): Entry | undefined {
    this.#prune();
    for (const p of this.#processes.values()) {
      if (p.id === target || p.name === target || p.pid === target || String(p.pid) === target) return p;
    }
    return undefined;
  }

  /** The owned entry of `target` (id, name or pid); `NOT_OWNED` for anything else. */
  #owned(target: string | number): Entry {
    const entry = this.#lookup(target);
    if (entry) return entry;
    throw new GuardError('NOT_OWNED', `process ${String(target)} was not started by the guard; refusing to kill it`, { details: { target } });
  }

  #assertOpen(): void {
    if (this.#closed) throw new GuardError('CLOSED', 'ProcessRegistry is closed');
  }

  #track(child: ChildProcess | undefined, pid: number, name: string, group: string | undefined, ticks: string | undefined): GuardedProcess {
    const seq = ++this.#seq;
    const id = `proc_${seq}`;
    const entry: Entry = { id, name, group, pid, startedAt: Date.now(), child, startTicks: ticks, seq };
    this.#processes.set(id, entry);
    child?.once('exit', () => {
      this.#processes.delete(id);
      this.#lastTicks.delete(id);
    });
    return publicView(entry);
  }

  /** Drops pids registered by number that exited (or whose pid was reused). */
  #prune(): void {
    for (const [id, p] of this.#processes) {
      if (p.child === undefined && !sameProcess(p)) {
        this.#processes.delete(id);
        this.#lastTicks.delete(id);
      }
    }
  }
}

function publicView(e: Entry): GuardedProcess {
  return { id: e.id, name: e.name, group: e.group, pid: e.pid, startedAt: e.startedAt, child: e.child };
}

function signalProcess(p: Entry, signal: NodeJS.Signals): void {
  try {
    if (p.child) p.child.kill(signal);
    else process.kill(p.pid, signal);
  } catch {
    // Already gone.
  }
}

function hasExited(p: Entry): boolean {
  if (p.child) return p.child.exitCode !== null || p.child.signalCode !== null;
  return !sameProcess(p);
}

/**
 * Signals `p` and resolves true once it exited (SIGKILL after `graceMs`). A pid registered by number is checked
 * first: once it exited (or its pid was reused by another process) it is never signalled.
 */
async function terminate(p: Entry, signal: NodeJS.Signals, graceMs: number): Promise<boolean> {
  if (hasExited(p)) return true;
  await terminateProcess(p.child ?? p.pid, { graceMs, signal });
  return hasExited(p);
}

function statFields(pid: number): string[] | undefined {
  try {
    const text = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const f = text.slice(text.lastIndexOf(')') + 2).split(' ');
    // A zombie (state Z) has exited; only its exit status is left for the parent to collect.
    return f[0] === 'Z' ? undefined : f;
  } catch {
    return undefined;
  }
}

function startTicks(pid: number): string | undefined {
  return statFields(pid)?.[19];
}

function procName(pid: number): string | undefined {
  try {
    const text = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return text.slice(text.indexOf('(') + 1, text.lastIndexOf(')'));
  } catch {
    return undefined;
  }
}

function sameProcess(p: Entry): boolean {
  const f = statFields(p.pid);
  return f !== undefined && (p.startTicks === undefined || f[19] === p.startTicks);
}

/** True when `pid`'s parent chain (read from /proc) reaches `ancestor`. */
function isDescendant(pid: number, ancestor: number): boolean {
  let current = pid;
  for (let depth = 0; depth < 32; depth++) {
    const f = statFields(current);
    if (!f) return false;
    const ppid = Number(f[1]);
    if (ppid === ancestor) return true;
    if (ppid <= 1) return false;
    current = ppid;
  }
  return false;
}
