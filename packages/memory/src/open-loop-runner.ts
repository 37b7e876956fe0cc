import { Agent as HttpAgent } from 'node:http';
import { Agent as HttpsAgent } from 'node:https';
import { linkSignal, sleep } from '@guard/core';
import { errorCode, exchange } from './http-exchange.js';
import type { LoadTestProgress, LoadTestSettings } from './load-test-options.js';
import { round2 } from './load-test-units.js';

/** Counts of the measured run (the result's `requests`). */
export interface RunCounts {
  scheduled: number;
  sent: number;
  succeeded: number;
  failed: number;
  timedOut: number;
  dropped: number;
}

/** Counts of the warm-up (not judged). */
export interface WarmupCounts {
  sent: number;
  succeeded: number;
  failed: number;
}

/**
 * Sends requests at a fixed rate, open-loop: each starts on schedule whether or not earlier ones answered, so a slow
 * server cannot slow the test down and hide its own latency. A request due while `maxInFlight` are in flight is
 * dropped (counted as a failure). The measured run counts status codes and errors and times each request from its
 * scheduled start; the warm-up only counts. Reports progress at each phase's start and end and every
 * `progressIntervalMs`.
 *
 * @example
 * const runner = new OpenLoopRunner(settings, stop.signal, () => rss.latestBytes);
 * await runner.runPhase(warmupCount, false);
 * const elapsedMs = await runner.runPhase(total, true);
 */
export class OpenLoopRunner {
  readonly counts: RunCounts = { scheduled: 0, sent: 0, succeeded: 0, failed: 0, timedOut: 0, dropped: 0 };
  readonly warmup: WarmupCounts = { sent: 0, succeeded: 0, failed: 0 };
  readonly statusCodes: Record<string, number> = {};
  readonly errors: Record<string, number> = {};
  /** Latencies of the measured run's answers, in ms; the first {@link completed} are set. */
  readonly latencies: Float64Array;
  completed = 0;
  readonly #settings: LoadTestSettings;
  readonly #stop: AbortSignal;
  readonly #rssBytes: () => number | null;
  readonly #agent: HttpAgent;
  readonly #inFlight = new Set<Promise<void>>();

  /** `measuredRequests` sizes the latency buffer; `stop` ends the run early; `rssBytes` is shown in progress reports. */
  constructor(settings: LoadTestSettings, measuredRequests: number, stop: AbortSignal, rssBytes: () => number | null) {
    this.#settings = settings;
    this.#stop = stop;
    this.#rssBytes = rssBytes;
    this.latencies = new Float64Array(measuredRequests);
    const AgentClass = settings.url.protocol === 'https:' ? HttpsAgent : HttpAgent;
    this.#agent = new AgentClass({ keepAlive: true, maxSockets: settings.maxInFlight });
  }

  /** Holds the rate for `count` requests, then waits for the last answers. @returns the phase's length in ms. */
  async runPhase(count: number, measured: boolean): Promise<number> {
    const intervalMs = 1000 / this.#settings.ratePerSec;
    const start = performance.now();
    const phase = measured ? 'run' : 'warmup';
    const phaseDurationMs = round2(count * intervalMs);
    this.progress(phase, 'start', start, phaseDurationMs);
    const ticker =
      this.#settings.onProgress === undefined ? undefined : setInterval(() => this.progress(phase, 'tick', start, phaseDurationMs), this.#settings.progressIntervalMs);
    ticker?.unref();
    try {
      return await this.#hold(count, measured, intervalMs, start);
    } finally {
      clearInterval(ticker);
      this.progress(phase, 'end', start, phaseDurationMs);
    }
  }

  /** Calls `onProgress` with the counts so far; a throwing callback is ignored. */
  progress(phase: LoadTestProgress['phase'], kind: LoadTestProgress['kind'], startedAt: number, phaseDurationMs: number): void {
    const onProgress = this.#settings.onProgress;
    if (onProgress === undefined) return;
    const c = phase === 'warmup' ? this.warmup : this.counts;
    try {
      onProgress({
        phase,
        kind,
        elapsedMs: round2(performance.now() - startedAt),
        phaseDurationMs,
        sent: c.sent,
        succeeded: c.succeeded,
        failed: c.failed,
        rssBytes: this.#rssBytes(),
      });
    } catch {
      // Progress is for the operator's eyes; a failing callback must not fail the run.
    }
  }

  /** Closes the load's sockets. */
  close(): void {
    this.#agent.destroy();
  }

  async #hold(count: number, measured: boolean, intervalMs: number, start: number): Promise<number> {
    let i = 0;
    while (i < count && !this.#stop.aborted) {
      const wait = start + i * intervalMs - performance.now();
      if (wait > 1) {
        try {
          await sleep(wait, { signal: this.#stop });
        } catch {
          break;
        }
      }
      const now = performance.now();
      while (i < count && start + i * intervalMs <= now + 0.5) {
        if (measured) this.counts.scheduled++;
        if (this.#inFlight.size >= this.#settings.maxInFlight) {
          if (measured) {
            this.counts.dropped++;
            this.counts.failed++;
            this.errors.DROPPED = (this.errors.DROPPED ?? 0) + 1;
          } else this.warmup.failed++;
        } else {
          if (measured) this.counts.sent++;
          else this.warmup.sent++;
          this.#fire(start + i * intervalMs, measured);
        }
        i++;
      }
    }
    await Promise.allSettled([...this.#inFlight]);
    return performance.now() - start;
  }

  #fire(dueAt: number, measured: boolean): void {
    const { method, headers, body, timeoutMs } = this.#settings;
    const deadline = linkSignal(this.#stop, { timeoutMs });
    const { signal } = deadline;
    const request = exchange(this.#settings.url, { method, headers, ...(body === undefined ? {} : { body }), agent: this.#agent, signal, keepBody: false });
    const settled = measured
      ? request.then(({ status }) => this.#answered(status, dueAt), (error: unknown) => this.#failed(error, signal))
      : request.then(({ status }) => this.#warmed(status), () => void this.warmup.failed++);
    const run = settled.finally(() => {
      deadline.dispose();
      this.#inFlight.delete(run);
    });
    this.#inFlight.add(run);
  }

  #answered(status: number, dueAt: number): void {
    this.statusCodes[status] = (this.statusCodes[status] ?? 0) + 1;
    if (status >= 200 && status < 400) this.counts.succeeded++;
    else this.counts.failed++;
    this.latencies[this.completed++] = performance.now() - dueAt;
  }

  #failed(error: unknown, signal: AbortSignal): void {
    this.counts.failed++;
    const timedOut = signal.aborted && !this.#stop.aborted;
    if (timedOut) this.counts.timedOut++;
    const code = errorCode(error, timedOut);
    this.errors[code] = (this.errors[code] ?? 0) + 1;
  }

  #warmed(status: number): void {
    if (status >= 200 && status < 400) this.warmup.succeeded++;
    else this.warmup.failed++;
  }
}
