import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { existsSync, mkdtempSync, readFileSync, rmSync, utimesSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { Registry } from 'prom-client';
import { afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { MemoryGuardrail } from './memory-guardrail.js';
import type { MemoryGuardrailOptions } from './guardrail-options.js';
import { createManualClock } from './testing.js';
import type { ManualClock } from './testing.js';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const raceChild = join(root, 'fixtures', 'restart-race-child.mjs');
const MINUTE = 60_000;

let dir: string;
let clock: ManualClock;
let file: string;
const guardrails: MemoryGuardrail[] = [];

beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), 'guard-memory-budget-'));
  file = join(dir, 'restart.json');
  clock = createManualClock();
});
afterEach(async () => {
  for (const guardrail of guardrails.splice(0)) await guardrail.close();
  rmSync(dir, { recursive: true, force: true });
});

function guardrail(options: MemoryGuardrailOptions = {}) {
  const terminated: number[] = [];
  const created = new MemoryGuardrail({
    autoStart: false,
    registry: new Registry(),
    now: clock,
    restartStateFile: file,
    terminate: () => terminated.push(clock()),
    ...options,
  });
  guardrails.push(created);
  return { guardrail: created, terminated };
}

const state = () => JSON.parse(readFileSync(file, 'utf8')) as Record<string, number | string>;

describe('restart budget: a last restart in the future', () => {
  it('counts as now (the cooldown runs from when it was found) and is rewritten so other processes agree', async () => {
    const future = clock() + 60 * MINUTE; // e.g. written by a host whose clock is an hour ahead
    writeFileSync(file, JSON.stringify({ lastRestartAt: future, reason: 'manual', pid: 1 }));
    const { guardrail: g, terminated } = guardrail();
    expect(await g.requestRestart('manual')).toMatchObject({ restarted: false, skipped: 'cooldown', retryAfterMs: 5 * MINUTE, lastRestartAt: clock() });
    expect(state()).toMatchObject({ lastRestartAt: clock(), clampedFrom: future });
    // A new process reading the file sees an ordinary restart "now".
    const { guardrail: other } = guardrail();
    expect(other.report().restart).toMatchObject({ retryAfterMs: 5 * MINUTE, last: { lastRestartAt: clock() } });
    clock.advance(5 * MINUTE - 1);
    expect(await g.requestRestart('manual')).toMatchObject({ restarted: false, retryAfterMs: 1 });
    clock.advance(1);
    expect(await g.requestRestart('manual')).toMatchObject({ restarted: true });
    await g.close();
    expect(terminated).toHaveLength(1);
  });

  it('is also counted as now by report() before any restart is requested', () => {
    writeFileSync(file, JSON.stringify({ lastRestartAt: clock() + 10 * MINUTE, reason: 'rss_threshold', pid: 1 }));
    const { guardrail: g } = guardrail();
    expect(g.report().restart.retryAfterMs).toBe(5 * MINUTE);
    clock.advance(MINUTE);
    expect(g.report().restart.retryAfterMs).toBe(4 * MINUTE);
  });
});

describe('restart budget: the lock between read and write', () => {
  it('waits for a lock another process holds, then decides on what that process wrote', async () => {
    const lock = `${file}.lock`;
    writeFileSync(lock, JSON.stringify({ pid: 1, at: Date.now() }));
    const { guardrail: g, terminated } = guardrail();
    let settled = false;
    const decision = g.requestRestart('manual').finally(() => (settled = true));
    await new Promise((resolve) => setImmediate(resolve));
    expect(settled).toBe(false);
    // The other process restarts and releases its lock.
    writeFileSync(file, JSON.stringify({ lastRestartAt: clock(), reason: 'rss_threshold', pid: 1 }));
    rmSync(lock);
    expect(await decision).toMatchObject({ restarted: false, skipped: 'cooldown', retryAfterMs: 5 * MINUTE });
    expect(existsSync(lock)).toBe(false);
    expect(terminated).toHaveLength(0);
  });

  it('breaks a stale lock left by a crashed process', async () => {
    const lock = `${file}.lock`;
    writeFileSync(lock, JSON.stringify({ pid: 1, at: 0 }));
    const minuteAgo = new Date(Date.now() - MINUTE);
    utimesSync(lock, minuteAgo, minuteAgo);
    const { guardrail: g } = guardrail();
    expect(await g.requestRestart('manual')).toMatchObject({ restarted: true });
    expect(existsSync(lock)).toBe(false);
    expect(state()).toMatchObject({ reason: 'manual', count: 1 });
  });
});

describe('restart budget: two real processes sharing one state file', () => {
  beforeAll(() => {
    if (!existsSync(join(root, 'dist', 'index.js'))) throw new Error('build @guard/memory first (pnpm --filter @guard/memory build)');
  });

  async function race(rounds: number, cooldownMs: number) {
    const children = [0, 1].map(() => spawn(process.execPath, [raceChild, file, String(rounds), String(cooldownMs)], { stdio: ['pipe', 'pipe', 'inherit'] }));
    const outputs = children.map((child) => createInterface({ input: child.stdout! })[Symbol.asyncIterator]());
    for (const output of outputs) expect((await output.next()).value).toBe('ready');
    for (const child of children) child.stdin!.write('go\n');
    const results = [];
    for (const output of outputs) results.push(JSON.parse((await output.next()).value as string) as { restarted: number; skipped: number });
    await Promise.all(children.map((child) => (child.exitCode === null ? once(child, 'exit') : undefined)));
    return results;
  }

  it('only one of two processes racing for the same budget restarts', async () => {
    const results = await race(1, 5 * MINUTE);
    expect(results.map((r) => r.restarted).sort()).toEqual([0, 1]);
    expect(state()).toMatchObject({ count: 1 });
  });

  it('serialises read-modify-write: no restart record is lost when both write as fast as they can', async () => {
    const rounds = 150;
    const results = await race(rounds, 0);
    expect(results.map((r) => r.restarted)).toEqual([rounds, rounds]);
    expect(state().count).toBe(2 * rounds);
    expect(existsSync(`${file}.lock`)).toBe(false);
  });
});
