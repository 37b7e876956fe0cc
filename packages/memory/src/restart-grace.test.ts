import { describe, expect, it, vi } from 'vitest';
import type { MemoryGuardrailOptions } from './guardrail-options.js';
import { restartSuite } from './test-support.js';

const MINUTE = 60_000;

describe('a restart the process survives', () => {
  const restarts = restartSuite();
  const { clock } = restarts;

  /** A guardrail with 30 s of grace whose terminate, like a SIGTERM handler that does not exit, leaves the process alive (options win). */
  function rig(options: MemoryGuardrailOptions = {}) {
    return restarts.rig({ restartGraceMs: 30_000, ...options });
  }

  it('is cleared after the grace: recorded as failed, the budget stays spent, and restarts are allowed after the cooldown', async () => {
    const { guardrail, registry, notices, terminated } = rig();
    const started = clock();
    expect(await guardrail.requestRestart('manual')).toMatchObject({ restarted: true });
    await vi.advanceTimersByTimeAsync(1);
    expect(terminated).toEqual([started]);
    expect(guardrail.report().restart.inProgress).toBe(true);
    expect(await guardrail.requestRestart('manual')).toMatchObject({ restarted: false, skipped: 'in_progress' });

    clock.advance(30_000);
    await vi.advanceTimersByTimeAsync(29_998);
    expect(guardrail.report().restart.inProgress).toBe(true);
    await vi.advanceTimersByTimeAsync(1);
    const { restart } = guardrail.report();
    expect(restart.inProgress).toBe(false);
    expect(restart.lastFailed).toEqual({ reason: 'manual', at: clock(), failure: 'survived' });
    expect(notices.map((n) => n.outcome)).toEqual(['started', 'failed']);
    expect(notices[1]).toMatchObject({ reason: 'manual', failure: 'survived', retryAfterMs: 5 * MINUTE - 30_000 });
    expect(await registry.metrics()).toContain('guard_memory_restarts_failed_total{name="default",reason="manual"} 1');

    // The failed restart spent the budget: not "in progress" any more, but inside the cooldown.
    expect(await guardrail.requestRestart('rss_threshold')).toMatchObject({ restarted: false, skipped: 'cooldown', retryAfterMs: 5 * MINUTE - 30_000 });
    clock.advance(5 * MINUTE - 30_000);
    expect(await guardrail.requestRestart('rss_threshold')).toMatchObject({ restarted: true });
    await vi.advanceTimersByTimeAsync(1);
    expect(terminated).toHaveLength(2);
    await guardrail.close();
  });

  it('also frees an auto-restart: a later check restarts again once the cooldown has passed', async () => {
    let rssMb = 800;
    const { guardrail, terminated } = rig({
      autoRestart: true,
      sampler: () => ({ rss: rssMb * 1024 * 1024, heapUsed: 0, heapTotal: 0, external: 0, arrayBuffers: 0 }),
    });
    guardrail.check();
    await vi.advanceTimersByTimeAsync(1);
    expect(terminated).toHaveLength(1);
    clock.advance(10 * MINUTE);
    await vi.advanceTimersByTimeAsync(30_000);
    rssMb = 850;
    guardrail.check();
    await vi.advanceTimersByTimeAsync(1);
    expect(terminated).toHaveLength(2);
    await guardrail.close();
  });

  it('a terminate that throws fails the restart at once', async () => {
    const { guardrail, notices } = rig({
      terminate: () => {
        throw new Error('EPERM');
      },
    });
    await guardrail.requestRestart('manual');
    await vi.advanceTimersByTimeAsync(1);
    expect(guardrail.report().restart).toMatchObject({ inProgress: false, lastFailed: { failure: 'terminate_threw' } });
    expect(notices.map((n) => n.outcome)).toEqual(['started', 'failed']);
    await guardrail.close();
  });

  it('close() cancels the grace timer', async () => {
    const { guardrail, notices } = rig();
    await guardrail.requestRestart('manual');
    await vi.advanceTimersByTimeAsync(1);
    await guardrail.close();
    expect(vi.getTimerCount()).toBe(0);
    await vi.advanceTimersByTimeAsync(60_000);
    expect(notices.map((n) => n.outcome)).toEqual(['started']);
  });
});
