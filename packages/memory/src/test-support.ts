// Shared by this package's tests and its e2e figures (tests/e2e/memory-*.test.ts); not part of the published build.
import { mkdtempSync, rmSync } from 'node:fs';
import { createServer } from 'node:http';
import type { Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { GuardBus } from '@guard/core';
import { Registry } from 'prom-client';
import { afterAll, afterEach, beforeAll, beforeEach, vi } from 'vitest';
import type { MemoryGuardrailOptions } from './guardrail-options.js';
import { MemoryGuardrail } from './memory-guardrail.js';
import type { MemoryUsageSample } from './memory-sampler.js';
import { BYTES_PER_MB } from './memory-snapshot.js';
import type { MemoryRestartNotice } from './restart-controller.js';
import { createSelfCheckHandler } from './self-check-handler.js';
import { createManualClock } from './testing.js';
import type { ManualClock } from './testing.js';

/** A memory reading of `rssMb`, heap half of it. */
export function usageOf(rssMb: number): MemoryUsageSample {
  const rss = rssMb * BYTES_PER_MB;
  return { rss, heapUsed: rss / 2, heapTotal: rss / 2, external: 0, arrayBuffers: 0 };
}

/** What the load target does; tests change it between runs. */
export interface LoadTargetState {
  hits: number;
  rssPerHitMb: number;
  inFlight: number;
  maxInFlight: number;
  /** Extra RSS while the hit count is in [fromHit, toHit), like a burst of allocations mid-run. */
  spike: { fromHit: number; toHit: number; mb: number };
}

/**
 * A real HTTP service on loopback behind the self-check handler: `/api/items` (200), `/api/slow` (200 after 300 ms on
 * the global timers, so fake timers drive it), `/api/error` (500), `/api/hang` (never answers). Its RSS is
 * 200 MB + `rssPerHitMb` per hit (+ the spike), read at `/self-check/baseline`.
 */
export async function startLoadTarget() {
  const state: LoadTargetState = { hits: 0, rssPerHitMb: 0, inFlight: 0, maxInFlight: 0, spike: { fromHit: 0, toHit: 0, mb: 0 } };
  const guardrail = new MemoryGuardrail({
    autoStart: false,
    registry: new Registry(),
    sampler: () => {
      const { fromHit, toHit, mb } = state.spike;
      return usageOf(200 + state.hits * state.rssPerHitMb + (state.hits >= fromHit && state.hits < toHit ? mb : 0));
    },
  });
  guardrail.check();
  const selfCheck = createSelfCheckHandler(guardrail);
  const server: Server = createServer((req, res) =>
    selfCheck(req, res, () => {
      state.hits++;
      state.inFlight++;
      state.maxInFlight = Math.max(state.maxInFlight, state.inFlight);
      const done = (status: number) => {
        state.inFlight--;
        res.writeHead(status, { 'content-type': 'application/json' });
        res.end('{"ok":true}');
      };
      if (req.url === '/api/items') done(200);
      else if (req.url === '/api/slow') setTimeout(() => done(200), 300);
      else if (req.url === '/api/error') done(500);
      else if (req.url !== '/api/hang') done(404);
    }),
  );
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    state,
    reset() {
      Object.assign(state, { hits: 0, rssPerHitMb: 0, inFlight: 0, maxInFlight: 0, spike: { fromHit: 0, toHit: 0, mb: 0 } });
    },
    async close() {
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
      await guardrail.close();
    },
  };
}

/** A load target as {@link startLoadTarget} returns it. */
export type LoadTarget = Awaited<ReturnType<typeof startLoadTarget>>;

/**
 * One load target for the enclosing `describe`: started before its tests, reset before each, closed after them.
 *
 * @example
 * const service = loadTargetForSuite();
 * it('...', async () => { await runLoadTest({ url: `${service.url}/api/items`, ... }); });
 */
export function loadTargetForSuite(): Pick<LoadTarget, 'url' | 'state'> {
  let target: LoadTarget | undefined;
  const started = (): LoadTarget => {
    if (target === undefined) throw new Error('the load target is started in beforeAll: use it inside a test');
    return target;
  };
  beforeAll(async () => {
    target = await startLoadTarget();
  });
  afterAll(() => target?.close());
  beforeEach(() => started().reset());
  return {
    get url() {
      return started().url;
    },
    get state() {
      return started().state;
    },
  };
}

/** Fake timers for code that also does real loopback I/O: timers, `Date` and `performance` are fake, `setImmediate` stays real. */
export function useFakeTimersWithRealIo(): void {
  vi.useFakeTimers({ toFake: ['setTimeout', 'clearTimeout', 'setInterval', 'clearInterval', 'Date', 'performance'] });
}

/**
 * Settles `work` under {@link useFakeTimersWithRealIo}: moves fake time on by `stepMs` per turn of the real event loop,
 * so sockets make progress between fake milliseconds and the schedule is the fake clock's.
 */
export async function settleWithFakeTime<T>(work: Promise<T>, stepMs = 1): Promise<T> {
  let settled = false;
  work.then(
    () => (settled = true),
    () => (settled = true),
  );
  while (!settled) {
    await vi.advanceTimersByTimeAsync(stepMs);
    await new Promise((resolve) => setImmediate(resolve));
  }
  return work;
}

/** A parsed JSON document whose shape the test asserts field by field. */
// eslint-disable-next-line @typescript-eslint/no-explicit-any -- parsed JSON of a shape only the assertions know; typing it would mean a cast per field read
export type JsonObject = Record<string, any>;

/** A guardrail of a {@link restartSuite}, and what its restarts did. */
export interface RestartRig {
  readonly guardrail: MemoryGuardrail;
  readonly registry: Registry;
  /** The `memoryRestart` notices on its bus. */
  readonly notices: MemoryRestartNotice[];
  /** The clock's time at each `terminate`. */
  readonly terminated: number[];
}

/** The restart tests' shared setup, as {@link restartSuite} returns it. */
export interface RestartSuite {
  /** Set back to its start before each test; the rigs' `now`. */
  readonly clock: ManualClock;
  /** An empty directory of the current test's own. */
  readonly dir: string;
  /** Where the rigs keep their restart state: under {@link dir}, in a folder not created yet. */
  readonly stateFile: string;
  /** A guardrail (not started) whose `terminate` records the time instead of ending the process. */
  rig(options?: MemoryGuardrailOptions): RestartRig;
}

/**
 * Restart tests for the enclosing `describe`: before each test, fake timers (the restart's next turn, the hooks'
 * deadline and the grace run on fake time), the clock back at its start and an empty directory; after it, real timers
 * and the directory removed.
 *
 * @example
 * const restarts = restartSuite();
 * it('restarts once', async () => {
 *   const { guardrail, terminated } = restarts.rig();
 *   await guardrail.requestRestart('manual');
 * });
 */
export function restartSuite(): RestartSuite {
  const clock = createManualClock();
  const start = clock();
  let dir: string | undefined;
  beforeEach(() => {
    vi.useFakeTimers();
    clock.set(start);
    dir = mkdtempSync(join(tmpdir(), 'guard-memory-restart-'));
  });
  afterEach(() => {
    vi.useRealTimers();
    if (dir !== undefined) rmSync(dir, { recursive: true, force: true });
    dir = undefined;
  });
  const testDir = (): string => {
    if (dir === undefined) throw new Error('the restart suite makes its directory in beforeEach: use it inside a test');
    return dir;
  };
  return {
    clock,
    get dir() {
      return testDir();
    },
    get stateFile() {
      return join(testDir(), 'state', 'restart.json');
    },
    rig(options = {}) {
      const registry = new Registry();
      const bus = new GuardBus();
      const notices: MemoryRestartNotice[] = [];
      bus.subscribe('memoryRestart', (notice) => notices.push(notice));
      const terminated: number[] = [];
      const guardrail = new MemoryGuardrail({
        autoStart: false,
        registry,
        bus,
        now: clock,
        restartStateFile: this.stateFile,
        terminate: () => terminated.push(clock()),
        ...options,
      });
      return { guardrail, registry, notices, terminated };
    },
  };
}
