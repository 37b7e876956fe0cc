import { Agent as HttpAgent } from 'node:http';
import { Agent as HttpsAgent } from 'node:https';
import { errorMessage, linkSignal, sleep } from '@guard/core';
import { exchange } from './http-exchange.js';
import type { LoadTestSettings } from './load-test-options.js';
import type { LoadTestRss, RssSample } from './load-test-result.js';
import { round2, toMb } from './load-test-units.js';

/** Samples kept for the report; the range and peak cover every reading. */
const MAX_KEPT_SAMPLES = 10_000;

/**
 * The target's RSS over a load test: read from the baseline URL (`current.rssBytes` of `/self-check/baseline`) or the
 * caller's `rssSampler`, before the warm-up (Initial), after it (Baseline), every `rssSampleIntervalMs` during the
 * run and after it (Final). Keeps the lowest and highest reading and when the highest was taken, so a spike in the
 * middle of the run shows even when RSS is back down at the end. A failed reading is recorded, never thrown.
 *
 * @example
 * const rss = new RssRecorder(settings, stop.signal);
 * await rss.readInitial();
 * // ... warm-up, then readBaseline(), sampleUntil(...) during the run, readFinal(...)
 * rss.report(); // LoadTestRss
 */
export class RssRecorder {
  readonly #settings: LoadTestSettings;
  readonly #stop: AbortSignal;
  readonly #agent = new HttpAgent({ keepAlive: false });
  readonly #errors: string[] = [];
  readonly #samples: RssSample[] = [];
  #sampleErrors = 0;
  #initialBytes: number | null = null;
  #baselineBytes: number | null = null;
  #finalBytes: number | null = null;
  #minBytes: number | null = null;
  #maxBytes: number | null = null;
  #peakAtMs: number | null = null;
  /** The latest reading (bytes), for progress reports. */
  latestBytes: number | null = null;

  /** `stop` ends every reading in flight (the run was aborted). */
  constructor(settings: LoadTestSettings, stop: AbortSignal) {
    this.#settings = settings;
    this.#stop = stop;
  }

  /** Initial RSS, before the warm-up. */
  async readInitial(): Promise<void> {
    this.#initialBytes = await this.#tryRead('initial');
    this.latestBytes = this.#initialBytes;
  }

  /** Baseline RSS, after the warm-up: the reference of the growth check, at 0 ms into the run. */
  async readBaseline(): Promise<void> {
    this.#baselineBytes = await this.#tryRead('baseline');
    if (this.#baselineBytes !== null) this.#observe(this.#baselineBytes, 0);
  }

  /** Final RSS, after the run; `runStart` is the run's start on `performance.now()`. */
  async readFinal(runStart: number): Promise<void> {
    this.#finalBytes = await this.#tryRead('final');
    if (this.#finalBytes !== null) this.#observe(this.#finalBytes, round2(performance.now() - runStart));
  }

  /** Reads RSS every `rssSampleIntervalMs` until `signal` (or the stop signal) aborts. Resolves then, never rejects. */
  async sampleUntil(signal: AbortSignal, runStart: number): Promise<void> {
    if (!this.#settings.measuresRss) return;
    const stopped = AbortSignal.any([signal, this.#stop]);
    for (;;) {
      try {
        await sleep(this.#settings.rssSampleIntervalMs, { signal: stopped });
      } catch {
        return;
      }
      try {
        const rssBytes = await this.#read();
        const atMs = round2(performance.now() - runStart);
        this.#observe(rssBytes, atMs);
        if (this.#samples.length < MAX_KEPT_SAMPLES) this.#samples.push({ atMs, rssBytes });
      } catch {
        if (!stopped.aborted) this.#sampleErrors++;
      }
    }
  }

  /** What was read, or null when RSS is not measured. */
  report(): LoadTestRss | null {
    if (!this.#settings.measuresRss) return null;
    const baselineBytes = this.#baselineBytes;
    const finalBytes = this.#finalBytes;
    const [lo, hi] = [this.#minBytes, this.#maxBytes];
    const growthBytes = baselineBytes !== null && finalBytes !== null ? finalBytes - baselineBytes : null;
    const rangeBytes = lo !== null && hi !== null ? hi - lo : null;
    const error = this.#errors.length > 0 ? this.#errors.join('; ') : undefined;
    return {
      baselineUrl: this.#settings.baselineUrl?.href ?? 'rssSampler',
      initialBytes: this.#initialBytes,
      baselineBytes,
      finalBytes,
      beforeBytes: baselineBytes,
      afterBytes: finalBytes,
      growthBytes,
      growthMb: toMb(growthBytes),
      minBytes: lo,
      maxBytes: hi,
      rangeBytes,
      rangeMb: toMb(rangeBytes),
      peakAtMs: this.#peakAtMs,
      peakGrowthMb: hi !== null && baselineBytes !== null ? toMb(hi - baselineBytes) : null,
      samples: this.#samples,
      sampleErrors: this.#sampleErrors,
      ...(error === undefined ? {} : { error }),
    };
  }

  /** Closes the baseline URL's sockets. */
  close(): void {
    this.#agent.destroy();
  }

  #observe(rssBytes: number, atMs: number): void {
    this.latestBytes = rssBytes;
    if (this.#minBytes === null || rssBytes < this.#minBytes) this.#minBytes = rssBytes;
    if (this.#maxBytes === null || rssBytes > this.#maxBytes) {
      this.#maxBytes = rssBytes;
      this.#peakAtMs = atMs;
    }
  }

  async #tryRead(when: string): Promise<number | null> {
    if (!this.#settings.measuresRss || this.#stop.aborted) return null;
    try {
      return await this.#read();
    } catch (error) {
      this.#errors.push(`${when}: ${errorMessage(error)}`);
      return null;
    }
  }

  async #read(): Promise<number> {
    using deadline = linkSignal(this.#stop, { timeoutMs: this.#settings.timeoutMs });
    const { signal } = deadline;
    const sampler = this.#settings.rssSampler;
    if (sampler !== undefined) {
      const rss = await sampler(signal);
      if (typeof rss !== 'number' || !Number.isFinite(rss)) throw new Error(`rssSampler returned ${String(rss)}, not a number of bytes`);
      return rss;
    }
    const target = this.#settings.baselineUrl!;
    const { status, body } = await exchange(target, {
      method: 'GET',
      headers: { accept: 'application/json' },
      agent: target.protocol === 'https:' ? new HttpsAgent({ keepAlive: false }) : this.#agent,
      signal,
      keepBody: true,
    });
    if (status < 200 || status >= 300) throw new Error(`${target.href} answered ${status}`);
    const parsed = JSON.parse(body) as { current?: { rssBytes?: unknown }; rssBytes?: unknown };
    const rss = parsed.current?.rssBytes ?? parsed.rssBytes;
    if (typeof rss !== 'number') throw new Error(`${target.href} has no current.rssBytes`);
    return rss;
  }
}
