import type { ChildProcess } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { assertNumberOption } from './guard-error.js';

/** Options for {@link terminateProcess}. */
export interface TerminateProcessOptions {
  /** How long the process gets after the first signal before SIGKILL. Default 2 000. */
  readonly graceMs?: number;
  /** The first signal. Default `SIGTERM`. */
  readonly signal?: NodeJS.Signals;
  /** Signal the whole process group (`kill(-pid)`); the child must have been spawned with `detached: true`. */
  readonly group?: boolean;
}

/** How {@link terminateProcess} ended: it exited after the first signal, needed SIGKILL, or was not running. */
export type TerminateOutcome = 'exited' | 'killed' | 'gone';

/** How often a pid (which has no exit event) is checked. */
const PID_POLL_MS = 20;

/**
 * Stops a process: sends `signal` (SIGTERM), waits up to `graceMs` for it to exit, then SIGKILLs it and waits
 * up to `graceMs` more. A `ChildProcess` is watched through its `exit` event; a pid is polled (`kill(pid, 0)`,
 * and on Linux a zombie counts as exited). Resolves `'gone'` when it was not running (ESRCH), never rejects for
 * a process that vanished.
 *
 * @example
 * const outcome = await terminateProcess(worker, { graceMs: 5_000 }); // 'exited' | 'killed' | 'gone'
 */
export function terminateProcess(target: number | ChildProcess, options: TerminateProcessOptions = {}): Promise<TerminateOutcome> {
  const { graceMs = 2_000, signal = 'SIGTERM', group = false } = options;
  assertNumberOption('graceMs', graceMs, { min: 0, max: 2_147_483_647 });
  const watched = typeof target === 'number' ? pidTarget(target, group) : childTarget(target, group);
  if (watched === undefined || watched.exited() || !watched.send(signal)) return Promise.resolve('gone');
  return new Promise<TerminateOutcome>((resolve) => {
    let outcome: TerminateOutcome = signal === 'SIGKILL' ? 'killed' : 'exited';
    const finish = (): void => {
      clearTimeout(deadline);
      stopWatching();
      resolve(outcome);
    };
    const stopWatching = watched.onExit(finish);
    const deadline = setTimeout(() => {
      if (outcome === 'killed') return finish();
      outcome = 'killed';
      watched.send('SIGKILL');
      deadline.refresh();
    }, graceMs);
    // the process may have exited between the signal and the watch
    if (watched.exited()) finish();
  });
}

interface Watched {
  exited(): boolean;
  /** @returns false when the process does not exist (ESRCH). */
  send(signal: NodeJS.Signals): boolean;
  /** Calls `done` once it exited. @returns a function that stops watching. */
  onExit(done: () => void): () => void;
}

function childTarget(child: ChildProcess, group: boolean): Watched | undefined {
  const pid = child.pid;
  if (pid === undefined) return undefined; // never spawned
  const exited = (): boolean => child.exitCode !== null || child.signalCode !== null;
  return {
    exited,
    send: (signal) => (group ? sendSignal(-pid, signal) : sendToChild(child, signal)),
    onExit(done) {
      child.once('exit', done);
      return () => child.off('exit', done);
    },
  };
}

function pidTarget(pid: number, group: boolean): Watched | undefined {
  if (!Number.isInteger(pid) || pid <= 0) return undefined;
  const exited = (): boolean => !pidRunning(pid);
  return {
    exited,
    send: (signal) => sendSignal(group ? -pid : pid, signal),
    onExit(done) {
      const poll = setInterval(() => {
        if (exited()) done();
      }, PID_POLL_MS);
      return () => clearInterval(poll);
    },
  };
}

function sendToChild(child: ChildProcess, signal: NodeJS.Signals): boolean {
  try {
    // false when it already died (Node turns ESRCH into false): its exit event may still be on the way
    return child.kill(signal);
  } catch {
    return false;
  }
}

function sendSignal(pid: number, signal: NodeJS.Signals): boolean {
  try {
    process.kill(pid, signal);
    return true;
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ESRCH') return false;
    throw error;
  }
}

/** True while `pid` runs: it exists (`kill(pid, 0)`) and, where `/proc` tells, is no zombie waiting to be reaped. */
function pidRunning(pid: number): boolean {
  try {
    process.kill(pid, 0);
  } catch (error) {
    // EPERM: it exists but belongs to someone else
    return (error as NodeJS.ErrnoException).code === 'EPERM';
  }
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3) !== 'Z';
  } catch {
    return true; // no /proc (not Linux), or it vanished just now: the next poll sees
  }
}
