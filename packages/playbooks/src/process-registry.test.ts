import { spawn } from 'node:child_process';
import type { ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { afterEach, describe, expect, it } from 'vitest';
import type { ActionContext } from './action-registry.js';
import { createActionRegistry, createProbeRegistry } from './builtin-actions.js';
import { ProcessRegistry } from './process-registry.js';

const linux = process.platform === 'linux';
/** An idle child that costs no CPU even while starting (a node child spends ~100 ms of CPU booting). */
const SLEEP = ['sleep', ['60']] as const;
const IDLE = ['-e', 'setInterval(() => {}, 1000)'];

/** Processes started by a test without the registry (the guard must never touch them). */
const strangers: ChildProcess[] = [];
afterEach(() => {
  for (const p of strangers.splice(0)) p.kill('SIGKILL');
});

function ctx(): ActionContext {
  return {
    runId: 'run_1',
    playbook: 'test',
    step: 's1',
    event: {},
    signal: new AbortController().signal,
    logger: { debug() {}, info() {}, warn() {}, error() {} },
    probe: async () => undefined,
  };
}

describe.runIf(linux)('ProcessRegistry on Linux', () => {
  it('register takes children and descendants, and refuses any other pid with NOT_OWNED', async () => {
    await using processes = new ProcessRegistry();
    const child = spawn(process.execPath, IDLE, { stdio: 'ignore' });
    strangers.push(child);
    await once(child, 'spawn');
    const entry = processes.register(child, { name: 'imported', group: 'workers' });
    expect(entry).toMatchObject({ name: 'imported', group: 'workers', pid: child.pid });
    expect(processes.register(child)).toMatchObject({ id: entry.id });
    expect(() => processes.register(1)).toThrow(expect.objectContaining({ code: 'NOT_OWNED' }));
    expect(() => processes.register(process.pid)).toThrow(expect.objectContaining({ code: 'NOT_OWNED' }));
    expect(() => processes.register(-3)).toThrow(expect.objectContaining({ code: 'INVALID_INPUT' }));
    const byPid = spawn(process.execPath, IDLE, { stdio: 'ignore' });
    strangers.push(byPid);
    await once(byPid, 'spawn');
    const registered = processes.register(byPid.pid!);
    expect(registered.child).toBeUndefined();
    expect(registered.name).toBe('node');
    expect(await processes.stop(byPid.pid!)).toBe(true);
    expect(processes.owns(byPid.pid!)).toBe(false);
    expect(() => processes.kill(byPid.pid!)).toThrow(expect.objectContaining({ code: 'NOT_OWNED' }));
  });

  it('scale_down stops the newest workers of a pool and reports the size before and after', async () => {
    await using processes = new ProcessRegistry();
    for (let i = 0; i < 3; i++) processes.spawn(`worker-${i}`, SLEEP[0], SLEEP[1], { group: 'workers' });
    processes.spawn('other', SLEEP[0], SLEEP[1]);
    const workers = processes.pool('workers');
    const actions = createActionRegistry({ workers });
    expect(await actions.get('scale_down')({ count: 2 }, ctx())).toEqual({ before: 3, after: 1, removed: 2 });
    expect(processes.list().map((p) => p.name)).toEqual(['worker-0', 'other']);
    expect(await actions.get('scale_down')({ count: 2, min: 1 }, ctx())).toEqual({ before: 1, after: 1, removed: 0 });
    const probes = createProbeRegistry({ processes, workers });
    const c = { signal: new AbortController().signal };
    expect(await probes.get('workers.size')({}, c)).toBe(1);
    expect(await probes.get('processes.count')({}, c)).toBe(2);
    expect(await probes.get('processes.over_cpu')({ threshold_percent: 50 }, c)).toBe(0);
    await expect(actions.get('scale_down')({ count: 1.5 }, ctx()) as Promise<unknown>).rejects.toMatchObject({ code: 'INVALID_INPUT' });
  });
});
