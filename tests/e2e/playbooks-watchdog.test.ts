import { fork } from 'node:child_process';
import type { ChildProcess } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { setTimeout as sleep } from 'node:timers/promises';
import type { HeartbeatEvent } from '../../packages/playbooks/src/heartbeat-watchdog.js';
import { HeartbeatWatchdog } from '../../packages/playbooks/src/heartbeat-watchdog.js';
import { reportFigure } from './report.js';

// Real child processes as watched components: a worker that heartbeats over IPC, and one that crashes at start.
let dir: string;
let workerPath: string;
beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'guard-watchdog-e2e-'));
  workerPath = join(dir, 'worker.cjs');
  await writeFile(
    workerPath,
    `if (process.env.CRASH_AT_START === '1') process.exit(1);
     setInterval(() => process.send({ type: 'heartbeat' }), 40);`,
  );
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

/** A supervisor of one child process, restartable by the watchdog. */
function supervised(watchdog: HeartbeatWatchdog, name: string, env: () => Record<string, string>) {
  let child: ChildProcess | undefined;
  let spawns = 0;
  const waiting: (() => void)[] = [];
  const start = () => {
    spawns++;
    const c = fork(workerPath, { env: { ...process.env, ...env() }, stdio: ['ignore', 'ignore', 'ignore', 'ipc'] });
    c.on('message', (m: { type?: string }) => {
      if (m?.type !== 'heartbeat' || child !== c) return;
      watchdog.heartbeat(name);
      for (const resolve of waiting.splice(0)) resolve();
    });
    c.on('error', () => undefined);
    child = c;
  };
  const stop = async () => {
    const c = child;
    child = undefined;
    if (!c || c.exitCode !== null || c.signalCode !== null) return;
    const exited = new Promise((r) => c.once('exit', r));
    c.kill('SIGKILL');
    await exited;
  };
  return {
    start,
    stop,
    restart: async () => {
      await stop();
      start();
    },
    /** Resolves at the next heartbeat of the current child. */
    nextBeat: () => new Promise<void>((resolve) => waiting.push(resolve)),
    get child() {
      return child;
    },
    get spawns() {
      return spawns;
    },
  };
}

function nextEvent(watchdog: HeartbeatWatchdog, kind: HeartbeatEvent['kind'], timeoutMs = 10_000): Promise<HeartbeatEvent> {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      off();
      reject(new Error(`no ${kind} event within ${timeoutMs} ms`));
    }, timeoutMs);
    const off = watchdog.onEvent((e) => {
      if (e.kind !== kind) return;
      clearTimeout(timer);
      off();
      resolve(e);
    });
  });
}

describe('HeartbeatWatchdog with real child processes', () => {
  it('restarts a killed worker and reports it healthy only once the new process heartbeats', async () => {
    await using watchdog = new HeartbeatWatchdog({ metrics: false });
    const worker = supervised(watchdog, 'worker', () => ({}));
    try {
      watchdog.register('worker', { deadlineMs: 1_000, restart: () => worker.restart() });
      const firstBeat = worker.nextBeat();
      worker.start();
      await firstBeat;
      const firstPid = worker.child!.pid;
      const restarted = nextEvent(watchdog, 'restarted');
      const recovered = nextEvent(watchdog, 'recovered');
      worker.child!.kill('SIGKILL');
      await restarted;
      const recovery = await recovered;
      expect(worker.spawns).toBe(2);
      expect(worker.child!.pid).not.toBe(firstPid);
      expect(watchdog.state('worker')).toMatchObject({ state: 'healthy', restarts: 1, consecutiveRestarts: 0 });
      reportFigure('playbooks watchdog: killed worker heartbeating again after its missed deadline', recovery.recoveryMs!, 'ms');
    } finally {
      await worker.stop();
    }
  }, 20_000);

  it('stops restarting a worker that crashes at start (crash_loop) until an operator reset', async () => {
    await using watchdog = new HeartbeatWatchdog({ metrics: false, backoffBaseMs: 50, backoffMaxMs: 200, crashLoopRestarts: 3, crashLoopWindowMs: 60_000 });
    let broken = true;
    const worker = supervised(watchdog, 'worker', () => ({ CRASH_AT_START: broken ? '1' : '0' }));
    try {
      const crashLoop = nextEvent(watchdog, 'crash_loop');
      watchdog.register('worker', { deadlineMs: 500, restart: () => worker.restart() });
      worker.start();
      const event = await crashLoop;
      // The first start plus three restarts, then nothing.
      expect(event).toMatchObject({ component: 'worker', restartsInWindow: 3 });
      expect(worker.spawns).toBe(4);
      expect(watchdog.state('worker')).toMatchObject({ state: 'crash_loop', restartsInWindow: 3 });
      // A negative check needs time to pass: two deadlines plus the longest backoff, still no restart.
      await sleep(1_200);
      expect(worker.spawns).toBe(4);
      // The operator fixes the cause and resets: the watchdog restarts it and it heartbeats.
      broken = false;
      const recovered = nextEvent(watchdog, 'recovered');
      watchdog.reset('worker');
      await recovered;
      expect(worker.spawns).toBe(5);
      expect(watchdog.state('worker')).toMatchObject({ state: 'healthy' });
    } finally {
      await worker.stop();
    }
  }, 20_000);
});
