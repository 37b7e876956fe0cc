import { spawn } from 'node:child_process';
import type { ChildProcess, SpawnOptions } from 'node:child_process';
import { readFile } from 'node:fs/promises';
import { GuardError } from '@guard/core';
import './declarations.js';

/** A child process the guard started. */
export interface GuardedProcess {
  readonly id: string;
  readonly name: string;
  readonly pid: number;
  readonly startedAt: number;
  readonly child: ChildProcess;
}

/** CPU use of one guarded child since the previous {@link ProcessRegistry.usage} call. */
export interface ProcessUsage {
  readonly id: string;
  readonly name: string;
  readonly pid: number;
  /** Percent of one core (can exceed 100 for multi-threaded children); undefined on the first call or off Linux. */
  readonly cpuPercent: number | undefined;
}

const CLK_TCK = 100;

/**
 * The child processes the guard itself started. `kill_process` only acts on these: a pid that is not
 * in the registry is refused with `NOT_OWNED`.
 *
 * @example
 * await using processes = new ProcessRegistry();
 * const worker = processes.spawn('report-builder', process.execPath, ['build-report.js']);
 * processes.kill(worker.id);
 */
export class ProcessRegistry implements AsyncDisposable {
  readonly #processes = new Map<string, GuardedProcess>();
  readonly #lastTicks = new Map<string, { ticks: number; at: number }>();
  #seq = 0;
  #closed = false;

  /** Spawns and tracks a child; it leaves the registry when it exits. */
  spawn(name: string, command: string, args: readonly string[] = [], options: SpawnOptions = {}): GuardedProcess {
    if (this.#closed) throw new GuardError('CLOSED', 'ProcessRegistry is closed');
    const child = spawn(command, args, { stdio: 'ignore', ...options });
    // A spawn failure (ENOENT, EACCES) arrives as an 'error' event; without a listener it would crash the process.
    child.on('error', () => undefined);
    if (child.pid === undefined) {
      throw new GuardError('INVALID_INPUT', `could not spawn ${command}`, { details: { field: 'command', command } });
    }
    const id = `proc_${++this.#seq}`;
    const entry: GuardedProcess = { id, name, pid: child.pid, startedAt: Date.now(), child };
    this.#processes.set(id, entry);
    child.once('exit', () => {
      this.#processes.delete(id);
      this.#lastTicks.delete(id);
    });
    return entry;
  }

  /** Tracked processes that are still running. */
  list(): GuardedProcess[] {
    return [...this.#processes.values()];
  }

  /** Finds a tracked process by id, name or pid. */
  find(target: string | number): GuardedProcess | undefined {
    for (const p of this.#processes.values()) {
      if (p.id === target || p.name === target || p.pid === target || String(p.pid) === target) return p;
    }
    return undefined;
  }

  /** True when `pid` belongs to a process this registry started. */
  owns(pid: number): boolean {
    return this.find(pid) !== undefined;
  }

  /**
   * Signals a tracked process (by id, name or pid). Throws `NOT_OWNED` for anything else.
   * @returns the process signalled.
   */
  kill(target: string | number, signal: NodeJS.Signals = 'SIGTERM'): GuardedProcess {
    const entry = this.find(target);
    if (!entry) {
      throw new GuardError('NOT_OWNED', `process ${String(target)} was not started by the guard; refusing to kill it`, { details: { target } });
    }
    entry.child.kill(signal);
    return entry;
  }

  /** CPU of each tracked child since the previous call (reads `/proc/<pid>/stat` on Linux). */
  async usage(): Promise<ProcessUsage[]> {
    const out: ProcessUsage[] = [];
    for (const p of this.#processes.values()) {
      let cpuPercent: number | undefined;
      try {
        const stat = await readFile(`/proc/${p.pid}/stat`, 'utf8');
        const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
        const ticks = Number(fields[11]) + Number(fields[12]);
        const now = performance.now();
        const last = this.#lastTicks.get(p.id);
        if (last && now > last.at) cpuPercent = (((ticks - last.ticks) / CLK_TCK) * 1000 * 100) / (now - last.at);
        this.#lastTicks.set(p.id, { ticks, at: now });
      } catch {}
      out.push({ id: p.id, name: p.name, pid: p.pid, cpuPercent });
    }
    return out;
  }

  /** SIGTERMs every tracked child and waits (up to `graceMs`, then SIGKILL) for them to exit. */
  async close(graceMs = 2_000): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    await Promise.all(
      [...this.#processes.values()].map(
        (p) =>
          new Promise<void>((resolve) => {
            if (p.child.exitCode !== null || p.child.signalCode !== null) return resolve();
            const timer = setTimeout(() => p.child.kill('SIGKILL'), graceMs);
            p.child.once('exit', () => {
              clearTimeout(timer);
              resolve();
            });
            p.child.kill('SIGTERM');
          }),
      ),
    );
  }

  [Symbol.asyncDispose](): Promise<void> {
    return this.close();
  }
}
