import { sleep } from '@guard/core';
import type { MetricsOptions } from '@guard/core';
import { HeartbeatWatchdog } from './heartbeat-watchdog.js';
import { metricOptionsOf, waitFor } from './scenario-harness.js';
import { scenarioTimeline } from './scenario-timeline.js';
import type { ScenarioTimeline } from './scenario-timeline.js';

/** Options for {@link runS01}. */
export interface S01Options extends MetricsOptions {
  /** Heartbeat deadline of the component. Default 200. */
  readonly deadlineMs?: number;
  /** Required time from the missed deadline to the restarted component. Default 100. */
  readonly recoveryTargetMs?: number;
}

/**
 * S01 heartbeat pause: a component beats every `deadlineMs / 4`, then stops; the watchdog must restart it
 * within `recoveryTargetMs` (100) of the missed deadline, and beats resume.
 *
 * @example
 * const t = await runS01();
 * console.log(t.detectedMs, t.remediatedMs, t.recoveredMs, t.passed);
 */
export async function runS01(options: S01Options = {}): Promise<ScenarioTimeline> {
  const deadlineMs = options.deadlineMs ?? 200;
  const target = options.recoveryTargetMs ?? 100;
  await using watchdog = new HeartbeatWatchdog({ ...metricOptionsOf(options), restartTimeoutMs: 5_000 });
  let paused = false;
  let beats = 0;
  const beat = setInterval(() => {
    if (!paused) {
      watchdog.heartbeat('worker');
      beats++;
    }
  }, Math.max(1, Math.floor(deadlineMs / 4)));
  try {
    let injectedAt = 0;
    let detectedAt: number | undefined;
    let remediatedAt: number | undefined;
    let recoveredAt: number | undefined;
    watchdog.register('worker', {
      deadlineMs,
      restart: () => {
        paused = false;
      },
    });
    using _events = watchdog.onEvent((e) => {
      if (e.kind === 'missed') detectedAt ??= performance.now();
      if (e.kind === 'restarted') remediatedAt ??= performance.now();
    });
    await sleep(deadlineMs);
    paused = true;
    injectedAt = performance.now();
    const beatsAtPause = beats;
    await waitFor(() => remediatedAt !== undefined, deadlineMs * 10);
    await waitFor(() => beats > beatsAtPause, deadlineMs * 2, 1);
    if (beats > beatsAtPause) recoveredAt = performance.now();
    const recovery = watchdog.recoveries()[0];
    return scenarioTimeline(
      'S01',
      'heartbeat pause',
      { injectedAt, detectedAt, remediatedAt, recoveredAt },
      [
        ['missed heartbeat detected', detectedAt !== undefined],
        [`component restarted within ${target} ms of the missed deadline`, recovery !== undefined && recovery.recoveryMs <= target],
        ['heartbeats resumed', recoveredAt !== undefined],
      ],
      { deadlineMs, recoveryMsAfterDeadline: recovery?.recoveryMs, state: watchdog.state('worker')?.state },
    );
  } finally {
    clearInterval(beat);
  }
}
