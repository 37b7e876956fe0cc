import { readdir, readFile } from 'node:fs/promises';
import { sleep } from '@guard/core';
import type {} from './declarations.js';

/** Linux clock ticks per second (`getconf CLK_TCK`); 100 on every mainstream kernel build. */
const CLK_TCK = 100;
const PAGE_BYTES = 4_096;

/** The fields of `/proc/<pid>/stat` this package uses. */
export interface ProcStat {
  readonly pid: number;
  readonly name: string;
  readonly ppid: number;
  /** User + system CPU time in ms. */
  readonly cpuMs: number;
  readonly rssBytes: number;
}

/**
 * Reads `/proc/<pid>/stat`. Undefined when the process is gone or /proc is missing (not Linux).
 *
 * @example
 * const stat = await readProcStat(process.pid); // { pid, name: 'node', ppid, cpuMs, rssBytes }
 */
export async function readProcStat(pid: number): Promise<ProcStat | undefined> {
  let text: string;
  try {
    text = await readFile(`/proc/${pid}/stat`, 'utf8');
  } catch {
    return undefined;
  }
  const open = text.indexOf('(');
  const close = text.lastIndexOf(')');
  if (open < 0 || close < open) return undefined;
  // After "pid (comm) ": state ppid pgrp session tty tpgid flags minflt cminflt majflt cmajflt utime stime ...
  const f = text.slice(close + 2).split(' ');
  return {
    pid,
    name: text.slice(open + 1, close),
    ppid: Number(f[1]),
    cpuMs: ((Number(f[11]) + Number(f[12])) * 1000) / CLK_TCK,
    rssBytes: Number(f[21]) * PAGE_BYTES,
  };
}

/**
 * Reads `/proc/<pid>/schedstat`: ns on CPU and ns waiting in the run queue (both cumulative). The sum over
 * wall time is the CPU a process WANTS, so a busy loop reads near 100 % even when neighbours starve it.
 */
export async function readSchedstat(pid: number): Promise<{ runNs: number; waitNs: number } | undefined> {
  try {
    const [run, wait] = (await readFile(`/proc/${pid}/schedstat`, 'utf8')).trim().split(/\s+/).map(Number);
    if (!Number.isFinite(run) || !Number.isFinite(wait)) return undefined;
    return { runNs: run!, waitNs: wait! };
  } catch {
    return undefined;
  }
}

/**
 * The cgroup of a process: the v2 path (`0::/x`), else the v1 `cpu`/`cpuacct`/`memory` path. `'/'` (the
 * root) means "no cgroup of its own"; undefined when unreadable.
 */
export async function readCgroup(pid: number | 'self'): Promise<string | undefined> {
  let text: string;
  try {
    text = await readFile(`/proc/${pid}/cgroup`, 'utf8');
  } catch {
    return undefined;
  }
  const lines = text.trim().split('\n').map((l) => l.split(':'));
  const v2 = lines.find((l) => l[0] === '0' && l[1] === '');
  if (v2 && v2[2] && v2[2] !== '/') return v2[2];
  for (const controller of ['cpu', 'cpuacct', 'memory']) {
    const line = lines.find((l) => l[1]?.split(',').includes(controller));
    if (line?.[2] && line[2] !== '/') return line[2];
  }
  return '/';
}

/** A CPU reading of one process over an interval. */
export interface ProcessCpu {
  readonly pid: number;
  readonly name: string;
  readonly ppid: number;
  /** CPU time used over the interval, percent of one core (can exceed 100 for multi-threaded processes). */
  readonly cpuPercent: number;
  /** CPU time plus run-queue wait over the interval, percent of one core (equals `cpuPercent` off Linux schedstat). */
  readonly demandPercent: number;
  readonly rssBytes: number;
}

interface Snapshot {
  readonly stat: ProcStat;
  readonly demandNs: number | undefined;
  readonly at: number;
}

async function snapshot(pid: number): Promise<Snapshot | undefined> {
  const [stat, sched] = await Promise.all([readProcStat(pid), readSchedstat(pid)]);
  if (!stat) return undefined;
  return { stat, demandNs: sched ? sched.runNs + sched.waitNs : undefined, at: performance.now() };
}

/**
 * Samples the CPU of `pids` twice, `intervalMs` apart, and returns each process's CPU and CPU demand over
 * that interval. Processes that exit in between are left out.
 *
 * @example
 * const [child] = await sampleProcessCpu([pid], { intervalMs: 250 });
 */
export async function sampleProcessCpu(pids: readonly number[], options: { intervalMs?: number; signal?: AbortSignal } = {}): Promise<ProcessCpu[]> {
  options.signal?.throwIfAborted();
  const first = await mapLimited(pids, snapshot);
  await sleep(options.intervalMs ?? 250, options.signal ? { signal: options.signal } : {});
  const second = await mapLimited(pids, snapshot);
  const out: ProcessCpu[] = [];
  pids.forEach((pid, i) => {
    const a = first[i];
    const b = second[i];
    if (!a || !b) return;
    const wallMs = b.at - a.at;
    if (wallMs <= 0) return;
    const cpuPercent = ((b.stat.cpuMs - a.stat.cpuMs) * 100) / wallMs;
    const demandPercent = a.demandNs !== undefined && b.demandNs !== undefined ? ((b.demandNs - a.demandNs) / 1e6 / wallMs) * 100 : cpuPercent;
    out.push({ pid, name: b.stat.name, ppid: b.stat.ppid, cpuPercent: round1(cpuPercent), demandPercent: round1(demandPercent), rssBytes: b.stat.rssBytes });
  });
  return out;
}

/** The numeric entries of `/proc` (every visible pid); empty off Linux. */
export async function listPids(): Promise<number[]> {
  try {
    return (await readdir('/proc')).filter((n) => /^\d+$/.test(n)).map(Number);
  } catch {
    return [];
  }
}

/** Options for {@link topHostProcesses}. */
export interface TopProcessesOptions {
  /** How many to return. Default 5. */
  readonly top?: number;
  /** Time between the two samples. Default 250. */
  readonly intervalMs?: number;
  /** `cgroup`: only processes in this process's cgroup (the service's container or unit), when it has one; `host`: every visible process. Default `cgroup`. */
  readonly scope?: 'cgroup' | 'host';
  readonly signal?: AbortSignal;
}

/** The result of {@link topHostProcesses}. */
export interface TopProcesses {
  /** `cgroup` when the list was narrowed to {@link TopProcesses.cgroup}, else `host`. */
  readonly scope: 'cgroup' | 'host';
  readonly cgroup: string | undefined;
  readonly sampledMs: number;
  /** Processes seen in both samples. */
  readonly scanned: number;
  readonly processes: readonly ProcessCpu[];
}

/**
 * The busiest processes of the host (or of this process's cgroup, where it has one), by CPU over a short
 * interval: two reads of `/proc/<pid>/stat`, so the first call already has figures.
 *
 * @example
 * const { processes } = await topHostProcesses({ top: 5 });
 */
export async function topHostProcesses(options: TopProcessesOptions = {}): Promise<TopProcesses> {
  const t0 = performance.now();
  let pids = await listPids();
  const own = options.scope === 'host' ? undefined : await readCgroup('self');
  const cgroup = own !== undefined && own !== '/' ? own : undefined;
  if (cgroup !== undefined) {
    const groups = await mapLimited(pids, readCgroup);
    pids = pids.filter((_, i) => groups[i] !== undefined && (groups[i] === cgroup || groups[i]!.startsWith(`${cgroup}/`)));
  }
  const sampled = await sampleProcessCpu(pids, { intervalMs: options.intervalMs ?? 250, ...(options.signal ? { signal: options.signal } : {}) });
  const processes = sampled.sort((a, b) => b.cpuPercent - a.cpuPercent || b.demandPercent - a.demandPercent).slice(0, options.top ?? 5);
  return { scope: cgroup === undefined ? 'host' : 'cgroup', cgroup, sampledMs: Math.round(performance.now() - t0), scanned: sampled.length, processes };
}

/** Reads at most this many processes at once: a host with thousands of processes must not exhaust file descriptors. */
const READ_CONCURRENCY = 64;

async function mapLimited<T>(pids: readonly number[], read: (pid: number) => Promise<T>): Promise<T[]> {
  const out: T[] = [];
  for (let i = 0; i < pids.length; i += READ_CONCURRENCY) out.push(...(await Promise.all(pids.slice(i, i + READ_CONCURRENCY).map(read))));
  return out;
}

function round1(n: number): number {
  return Math.round(n * 10) / 10;
}
