import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { WebSocket } from 'ws';
import { afterAll, describe, expect, it } from 'vitest';
import { sleep } from '@guard/core';
import { until } from './support.js';

const dir = mkdtempSync(join(tmpdir(), 'guard-node-sigterm-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe('graceful shutdown of a real process', () => {
  it('SIGTERM mid-request: readiness fails at once, the in-flight request completes, WebSocket clients get 1001, exit code 0 with nothing left running', async () => {
    const child = spawn(process.execPath, [fileURLToPath(new URL('./fixtures/sigterm-app.mjs', import.meta.url))], {
      cwd: dir,
      env: { PATH: process.env.PATH, IMMUNE_DB: join(dir, 'immune.db'), GUARD_SHUTDOWN_DELAY: '3s', PARASITE_LOG_LEVEL: 'info' },
      stdio: ['pipe', 'pipe', 'inherit'],
    });
    const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
    const lines: Record<string, unknown>[] = [];
    const waiters: [string, (line: Record<string, unknown>) => void][] = [];
    createInterface({ input: child.stdout! }).on('line', (text) => {
      const line = JSON.parse(text) as Record<string, unknown>;
      lines.push(line);
      for (const [msg, resolve] of waiters) if (line.msg === msg) resolve(line);
    });
    const lineWith = (msg: string) => {
      const seen = lines.find((l) => l.msg === msg);
      return seen ? Promise.resolve(seen) : new Promise<Record<string, unknown>>((resolve) => waiters.push([msg, resolve]));
    };

    const { port } = (await lineWith('listening')) as { port: number };
    const base = `http://127.0.0.1:${port}`;
    expect((await fetch(`${base}/readyz`)).status).toBe(200);
    const ws = new WebSocket(`ws://127.0.0.1:${port}/ws`);
    await new Promise((resolve) => ws.once('open', resolve));
    const wsClosed = new Promise<number>((resolve) => ws.once('close', resolve));

    const slow = fetch(`${base}/slow`);
    await lineWith('slow started');
    child.kill('SIGTERM');
    // The shutdown delay (3 s) keeps the server accepting so this probe can see readiness fail; generous for a loaded CI box.
    await lineWith('guard: shutting down');
    const ready = await fetch(`${base}/readyz?verbose`);
    expect(ready.status).toBe(503);
    expect(await ready.text()).toContain('[-]shutdown failed: shutting down');

    // After the delay the server stops accepting: a new request fails, yet the one in flight still completes.
    await until(() => fetch(`${base}/livez`).then(() => false, () => true), 'the server to stop accepting', 10_000, 50);
    child.stdin!.write('release\n');
    const done = await slow;
    expect(done.status).toBe(200);
    expect(await done.text()).toBe('slow done');
    expect(await wsClosed).toBe(1001);
    expect(await exited).toBe(0);
    // It ended by itself: the guard's fallback exit (which lists leftover handles) never ran.
    expect(lines.some((l) => l.msg === 'guard: handles still open after shutdown, exiting anyway')).toBe(false);
  });

  /** Starts the fixture and resolves with its port and its exit (code and signal). */
  async function startFixture() {
    const child = spawn(process.execPath, [fileURLToPath(new URL('./fixtures/sigterm-app.mjs', import.meta.url))], {
      cwd: dir,
      env: { PATH: process.env.PATH, IMMUNE_DB: join(dir, `immune-${Math.random().toString(36).slice(2)}.db`), GUARD_SHUTDOWN_DELAY: '3s', PARASITE_LOG_LEVEL: 'info' },
      stdio: ['pipe', 'pipe', 'inherit'],
    });
    const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) => child.once('exit', (code, signal) => resolve({ code, signal })));
    const lines: Record<string, unknown>[] = [];
    const seen = (msg: string) => lines.some((l) => l.msg === msg);
    createInterface({ input: child.stdout! }).on('line', (text) => lines.push(JSON.parse(text) as Record<string, unknown>));
    await until(() => seen('listening'), 'the fixture to listen', 20_000, 20);
    return { child, exited, seen };
  }

  it.each<{ relayed: NodeJS.Signals; story: string }>([
    { relayed: 'SIGTERM', story: 'SIGINT then a relayed SIGTERM (what pnpm does on Ctrl-C): the drain goes on and the process exits 0, not by the signal' },
    { relayed: 'SIGINT', story: "SIGINT twice at once (the terminal's Ctrl-C reaches pnpm and node, and pnpm passes it on): one shutdown, exit 0" },
  ])('$story', async ({ relayed }) => {
    const { child, exited, seen } = await startFixture();
    child.kill('SIGINT');
    await until(() => seen('guard: shutting down'), 'the shutdown to start', 10_000, 20);
    child.kill(relayed); // the relayed copy, within the 1 s relay window
    expect(await exited).toEqual({ code: 0, signal: null });
    expect(seen('guard: already shutting down')).toBe(true);
  });

  it('the same signal again after the relay window (Ctrl-C, then Ctrl-C) exits at once with 1', async () => {
    const { child, exited, seen } = await startFixture();
    child.kill('SIGINT');
    await until(() => seen('guard: shutting down'), 'the shutdown to start', 10_000, 20);
    // A person's second press, not a relayed copy: it comes after the 1 s relay window (the drain's 3 s delay is still
    // running). The gap is the scenario itself, not a wait for something to happen.
    await sleep(1_300);
    child.kill('SIGINT');
    expect(await exited).toEqual({ code: 1, signal: null });
  });
});
