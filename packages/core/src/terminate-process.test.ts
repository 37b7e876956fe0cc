import { spawn } from 'node:child_process';
import type { ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { afterEach, describe, expect, it } from 'vitest';
import { terminateProcess } from './terminate-process.js';

const IGNORES_SIGTERM = "process.on('SIGTERM', () => {}); setInterval(() => {}, 1000); console.log('ready')";
const PLAIN = "setInterval(() => {}, 1000); console.log('ready')";

const children = new Set<ChildProcess>();
afterEach(() => {
  for (const child of children) child.kill('SIGKILL');
  children.clear();
});

/** A real node child, once its signal handlers are installed (it printed "ready"). */
async function startChild(script: string, options: { detached?: boolean } = {}): Promise<ChildProcess> {
  const child = spawn(process.execPath, ['-e', script], { stdio: ['ignore', 'pipe', 'ignore'], ...options });
  children.add(child);
  await once(child.stdout!, 'data');
  return child;
}

describe('terminateProcess', () => {
  it("resolves 'exited' when SIGTERM ends the child", async () => {
    const child = await startChild(PLAIN);
    await expect(terminateProcess(child, { graceMs: 10_000 })).resolves.toBe('exited');
    expect(child.signalCode).toBe('SIGTERM');
  });

  it("SIGKILLs a child that ignores SIGTERM after graceMs and resolves 'killed'", async () => {
    const child = await startChild(IGNORES_SIGTERM);
    await expect(terminateProcess(child, { graceMs: 100 })).resolves.toBe('killed');
    expect(child.signalCode).toBe('SIGKILL');
  });

  it('works on a bare pid the same way', async () => {
    const stubborn = await startChild(IGNORES_SIGTERM);
    const exited = once(stubborn, 'exit');
    await expect(terminateProcess(stubborn.pid!, { graceMs: 100 })).resolves.toBe('killed');
    expect((await exited)[1]).toBe('SIGKILL');
    const plain = await startChild(PLAIN);
    await expect(terminateProcess(plain.pid!, { graceMs: 10_000 })).resolves.toBe('exited');
  });

  it("resolves 'gone' for a process that already exited, by ChildProcess or pid", async () => {
    const child = spawn(process.execPath, ['-e', '']);
    await once(child, 'exit');
    await expect(terminateProcess(child)).resolves.toBe('gone');
    await expect(terminateProcess(child.pid!)).resolves.toBe('gone');
    await expect(terminateProcess(-1)).resolves.toBe('gone');
  });

  it('sends the given first signal, and signals the whole group with group: true', async () => {
    const child = await startChild(PLAIN, { detached: true });
    await expect(terminateProcess(child, { signal: 'SIGINT', group: true })).resolves.toBe('exited');
    expect(child.signalCode).toBe('SIGINT');
  });
});
