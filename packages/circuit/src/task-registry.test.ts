import { spawn } from 'node:child_process';
import type { ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { readFileSync } from 'node:fs';
import { isGuardError, waitUntil } from '@guard/core';
import { afterEach, describe, expect, it } from 'vitest';
import { TaskRegistry } from './task-registry.js';

const spawned: ChildProcess[] = [];

/** A real node child that prints "ready" once its SIGTERM handling is in place. */
async function child(ignoreSigterm: boolean): Promise<ChildProcess> {
  const code = `${ignoreSigterm ? "process.on('SIGTERM', () => {});" : ''} setInterval(() => {}, 1000); console.log('ready');`;
  const proc = spawn(process.execPath, ['-e', code], { stdio: ['ignore', 'pipe', 'inherit'] });
  spawned.push(proc);
  await once(proc.stdout!, 'data');
  return proc;
}

function pidGone(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return false;
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === 'ESRCH';
  }
}

/** Not running: gone, or a zombie waiting for its (dead) parent's reaper. Linux /proc. */
function notRunning(pid: number): boolean {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return stat.slice(stat.lastIndexOf(')') + 2).startsWith('Z');
  } catch {
    return true;
  }
}

afterEach(() => {
  for (const proc of spawned.splice(0)) {
    try {
      process.kill(-proc.pid!, 'SIGKILL'); // detached ones: the whole group
    } catch {}
    if (proc.exitCode === null && proc.signalCode === null) proc.kill('SIGKILL');
  }
});

describe('TaskRegistry', () => {
  it('cancelling a task whose child ignores SIGTERM kills it with SIGKILL and leaves no process behind', async () => {
    await using tasks = new TaskRegistry({ killGraceMs: 200 });
    const task = tasks.register({ taskId: 'stubborn' });
    const proc = await child(true);
    const pid = proc.pid!;
    task.attach(proc);
    expect(task.children).toHaveLength(1);
    expect(await tasks.cancel('stubborn', 'user pressed stop')).toBe(true);
    expect(proc.signalCode).toBe('SIGKILL');
    expect(pidGone(pid)).toBe(true);
    expect(task.status).toBe('cancelled');
    expect(task.signal.aborted).toBe(true);
    const error = await task.promise.catch((e: unknown) => e);
    expect(isGuardError(error, 'TASK_CANCELLED')).toBe(true);
    expect(error).toMatchObject({ taskId: 'stubborn', reason: 'user pressed stop' });
    expect(task.signal.reason).toBe(error);
    expect(tasks.get('stubborn')).toBeUndefined();
  });

  it('a child that honours SIGTERM exits before the grace period', async () => {
    await using tasks = new TaskRegistry({ killGraceMs: 10_000 });
    const task = tasks.register({ taskId: 'polite' });
    const proc = await child(false);
    task.attach(proc);
    await task.cancel();
    expect(proc.signalCode).toBe('SIGTERM');
    expect(pidGone(proc.pid!)).toBe(true);
  });

  it('run() gets the signal; its result settles the task and frees the id', async () => {
    await using tasks = new TaskRegistry();
    const task = tasks.register({ taskId: 'sum', run: async (signal) => (signal.aborted ? -1 : 1 + 1) });
    expect(tasks.size).toBe(1);
    await expect(task.promise).resolves.toBe(2);
    expect(task.status).toBe('succeeded');
    expect(tasks.size).toBe(0);
    const failing = tasks.register({
      taskId: 'sum',
      run: () => {
        throw new Error('bad');
      },
    });
    await expect(failing.promise).rejects.toThrow('bad');
    expect(failing.status).toBe('failed');
  });

  it('cancel aborts the run signal, and a late result is ignored', async () => {
    await using tasks = new TaskRegistry();
    let seen: AbortSignal | undefined;
    let finish!: (value: string) => void;
    const late = new Promise<string>((resolve) => (finish = resolve));
    const task = tasks.register({
      taskId: 'slow',
      run: (signal) => {
        seen = signal;
        return late;
      },
    });
    await tasks.cancel('slow');
    expect(seen?.aborted).toBe(true);
    await expect(task.promise).rejects.toMatchObject({ code: 'TASK_CANCELLED' });
    finish('late');
    await late;
    await Promise.resolve(); // the task's own then() on the late result runs after ours
    expect(task.status).toBe('cancelled');
  });

  it('a parent signal cancels the task; a child attached after cancel is killed at once', async () => {
    await using tasks = new TaskRegistry({ killGraceMs: 100 });
    const parent = new AbortController();
    const task = tasks.register({ taskId: 'linked', signal: parent.signal });
    parent.abort(new Error('request closed'));
    await expect(task.promise).rejects.toMatchObject({ code: 'TASK_CANCELLED', reason: 'request closed' });
    const proc = await child(true);
    task.attach(proc);
    await task.cancel();
    expect(pidGone(proc.pid!)).toBe(true);
  });

  it('rejects duplicate ids with INVALID_INPUT (reason exists) and bad input with typed errors', async () => {
    const tasks = new TaskRegistry();
    tasks.register({ taskId: 'one' });
    expect(() => tasks.register({ taskId: 'one' })).toThrow(
      expect.objectContaining({ code: 'INVALID_INPUT', details: { field: 'taskId', taskId: 'one', reason: 'exists' } }),
    );
    expect(() => tasks.register({ taskId: '' })).toThrow(expect.objectContaining({ code: 'INVALID_INPUT' }));
    expect(() => tasks.get('one')!.attach({} as never)).toThrow(expect.objectContaining({ code: 'INVALID_INPUT' }));
    expect(() => new TaskRegistry({ killGraceMs: -1 })).toThrow(expect.objectContaining({ code: 'INVALID_OPTION' }));
    expect(await tasks.cancel('missing')).toBe(false);
    await tasks.close();
    await tasks.close();
    expect(tasks.size).toBe(0);
    expect(() => tasks.register({ taskId: 'two' })).toThrow(expect.objectContaining({ code: 'CLOSED' }));
  });

  it('close() cancels running tasks and kills their children', async () => {
    const tasks = new TaskRegistry({ killGraceMs: 100 });
    const task = tasks.register({ taskId: 'bg' });
    const proc = await child(true);
    task.attach(proc);
    await tasks.close();
    expect(pidGone(proc.pid!)).toBe(true);
    await expect(task.promise).rejects.toMatchObject({ code: 'TASK_CANCELLED' });
  });

  it('attach(child, { group: true }) kills the whole process group, grandchildren included', async () => {
    await using tasks = new TaskRegistry({ killGraceMs: 200 });
    const task = tasks.register({ taskId: 'tree' });
    // sh ignores SIGTERM, and so does its grandchild (an ignored signal survives exec).
    const shell = spawn('sh', ['-c', 'trap "" TERM; sleep 30 & echo $!; wait'], { detached: true, stdio: ['ignore', 'pipe', 'inherit'] });
    spawned.push(shell);
    const [chunk] = (await once(shell.stdout!, 'data')) as [Buffer];
    const grandchild = Number(String(chunk).trim());
    expect(grandchild).toBeGreaterThan(0);
    expect(notRunning(grandchild)).toBe(false);
    task.attach(shell, { group: true });
    await task.cancel('tree');
    expect(shell.signalCode).toBe('SIGKILL');
    expect(pidGone(shell.pid!)).toBe(true);
    // The group's SIGKILL reaches the grandchild at once, but it may take the kernel a moment to finish it off.
    await waitUntil(() => notRunning(grandchild), { timeoutMs: 2_000, what: 'the grandchild to die' });
  });
});
