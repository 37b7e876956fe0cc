import { spawn } from 'node:child_process';
import type { ChildProcess } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterEach, beforeAll, describe, expect, it } from 'vitest';
import type { JsonObject } from './test-support.js';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const fixture = join(root, 'fixtures', 'restart-child.mjs');

interface Run {
  readonly child: ChildProcess;
  readonly lines: JsonObject[];
  readonly exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
}

function start(env: Record<string, string>): Run {
  const child = spawn(process.execPath, [fixture], { env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
  const lines: JsonObject[] = [];
  let buffer = '';
  child.stdout!.setEncoding('utf8').on('data', (chunk: string) => {
    buffer += chunk;
    let at: number;
    while ((at = buffer.indexOf('\n')) >= 0) {
      const line = buffer.slice(0, at);
      buffer = buffer.slice(at + 1);
      if (line.trim()) lines.push(JSON.parse(line));
    }
  });
  let stderr = '';
  child.stderr!.setEncoding('utf8').on('data', (chunk: string) => (stderr += chunk));
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) =>
    child.once('exit', (code, signal) => {
      if (stderr) lines.push({ stderr });
      resolve({ code, signal });
    }),
  );
  return { child, lines, exited };
}

describe('auto-restart in a real supervised child process', () => {
  const children: ChildProcess[] = [];
  let dir: string;

  beforeAll(() => {
    if (!existsSync(join(root, 'dist', 'index.js'))) throw new Error('build @guard/memory first (pnpm --filter @guard/memory build)');
  });

  afterEach(() => {
    for (const child of children) if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  it('restarts once, and a second trigger within 5 minutes (after the restart) does not restart it', async () => {
    dir = mkdtempSync(join(tmpdir(), 'guard-memory-child-'));
    const env = { RESTART_STATE_FILE: join(dir, 'restart-state.json'), HEAP_SNAPSHOT_DIR: join(dir, 'heap') };

    // The supervisor: run the service, start it again when it exits, as Kubernetes or systemd would.
    const first = start(env);
    children.push(first.child);
    const firstExit = await first.exited;
    expect(firstExit.signal).toBe('SIGTERM');
    const msgs = first.lines.map((l) => l.msg);
    expect(msgs).toContain('shutdown hook ran');
    const final = first.lines.find((l) => l.msg === 'memory guardrail restarting the process');
    expect(final).toMatchObject({ reason: 'predicted_breach', trigger: { status: 'critical' }, guardrail: 'child', pid: first.child.pid });
    expect(final!.trigger.reasons[0]).toMatch(/predicted to reach 700 MB/);
    expect(msgs.indexOf('shutdown hook ran')).toBeLessThan(msgs.indexOf('memory guardrail restarting the process'));
    const state = JSON.parse(readFileSync(env.RESTART_STATE_FILE, 'utf8'));
    expect(state).toMatchObject({ reason: 'predicted_breach', pid: first.child.pid });
    expect(Date.now() - state.lastRestartAt).toBeLessThan(60_000);
    // The leak also left a heap snapshot from the first process.
    const snapshots = readdirSync(env.HEAP_SNAPSHOT_DIR).filter((f) => f.startsWith(`heap-${first.child.pid}-`));
    expect(snapshots).toHaveLength(1);
    expect(statSync(join(env.HEAP_SNAPSHOT_DIR, snapshots[0]!)).size).toBeGreaterThan(1000);

    const second = start(env);
    children.push(second.child);
    // The same leak again: the persisted budget refuses the restart, check after check.
    await expect.poll(() => second.lines.filter((l) => l.msg === 'memory guardrail restart skipped: restart budget used').length, {
      timeout: 10_000,
    }).toBeGreaterThanOrEqual(3);
    expect(second.child.exitCode).toBeNull();
    expect(second.child.signalCode).toBeNull();
    const skipped = second.lines.find((l) => l.msg === 'memory guardrail restart skipped: restart budget used')!;
    expect(skipped.lastRestartAt).toBe(state.lastRestartAt);
    expect(skipped.retryAfterMs).toBeGreaterThan(4 * 60_000);
    expect(second.lines.some((l) => l.msg === 'memory guardrail restarting the process')).toBe(false);
    expect(JSON.parse(readFileSync(env.RESTART_STATE_FILE, 'utf8'))).toEqual(state);

    second.child.kill('SIGKILL');
    expect((await second.exited).signal).toBe('SIGKILL');
  });
});
