import { monitorEventLoopDelay, performance, type EventLoopUtilization } from 'node:perf_hooks';
import type { HttpMetrics } from './http-metrics.js';

/** One second of the process, as the dashboard charts it. */
export interface RuntimePoint {
  /** Epoch ms. */
  readonly t: number;
  readonly rssMb: number;
  readonly heapUsedMb: number;
  readonly heapTotalMb: number;
  /** Entries of every cache probe together. */
  readonly cacheEntries: number;
  /** Event-loop delay over the second: p99 and mean, ms. */
  readonly loopDelayP99Ms: number;
  readonly loopDelayMeanMs: number;
  /** Event-loop utilisation over the second, percent. */
  readonly loopUtilizationPercent: number;
  /** CPU time (user + system) of this process over wall time, percent of one core. */
  readonly cpuPercent: number;
  /** The service's CPU as the pressure monitor reads it (this process and its workers and children, percent of its limit). */
  readonly serviceCpuPercent: number | null;
  readonly requestsPerSec: number;
  /** p95 of the requests that finished in the second; null without requests. */
  readonly p95Ms: number | null;
  /** 5xx (and aborted) answers over all answers, percent; null without requests. */
  readonly errorPercent: number | null;
  readonly inFlight: number;
}

/** Options for {@link RuntimeSampler}. */
export interface RuntimeSamplerOptions {
  readonly http: HttpMetrics;
  readonly cacheEntries: () => number;
  /** The service's CPU (process and children) as the pressure monitor measures it, percent; undefined before a reading. */
  readonly serviceCpuPercent?: () => number | undefined;
  /** Default 1000. */
  readonly intervalMs?: number;
  /** Points kept (default 600: ten minutes at 1 Hz). */
  readonly capacity?: number;
}

const MB = 1024 * 1024;
const round = (value: number, digits = 1) => Math.round(value * 10 ** digits) / 10 ** digits;

function percentile95(values: readonly number[]): number | null {
  if (values.length === 0) return null;
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.ceil(sorted.length * 0.95) - 1)]!;
}

/**
 * Samples the process once a second (RSS, heap, caches, event-loop delay and utilisation, CPU, and the HTTP
 * window: rate, p95, error ratio) into a fixed ring, so the dashboard charts the last minutes with real time axes.
 */
export class RuntimeSampler {
  readonly #options: RuntimeSamplerOptions;
  readonly #points: RuntimePoint[] = [];
  readonly #capacity: number;
  readonly #delay = monitorEventLoopDelay({ resolution: 10 });
  readonly #timer: NodeJS.Timeout;
  #elu: EventLoopUtilization = performance.eventLoopUtilization();
  #cpu = process.cpuUsage();
  #at = performance.now();

  constructor(options: RuntimeSamplerOptions) {
    this.#options = options;
    this.#capacity = options.capacity ?? 600;
    this.#delay.enable();
    this.#timer = setInterval(() => this.sample(), options.intervalMs ?? 1_000);
    this.#timer.unref();
  }

  /** Takes one point now (the timer calls it every interval). */
  sample(): RuntimePoint {
    const now = performance.now();
    const wallMs = Math.max(1, now - this.#at);
    const cpu = process.cpuUsage(this.#cpu);
    const elu = performance.eventLoopUtilization(this.#elu);
    const memory = process.memoryUsage();
    const http = this.#options.http.drain();
    const answered = http.requests;
    const point: RuntimePoint = {
      t: Date.now(),
      rssMb: round(memory.rss / MB),
      heapUsedMb: round(memory.heapUsed / MB),
      heapTotalMb: round(memory.heapTotal / MB),
      cacheEntries: this.#options.cacheEntries(),
      loopDelayP99Ms: round(this.#delay.count > 0 ? this.#delay.percentile(99) / 1e6 : 0),
      loopDelayMeanMs: round(this.#delay.count > 0 ? this.#delay.mean / 1e6 : 0),
      loopUtilizationPercent: round(elu.utilization * 100),
      cpuPercent: round(((cpu.user + cpu.system) / 1000 / wallMs) * 100),
      serviceCpuPercent: (() => {
        const percent = this.#options.serviceCpuPercent?.();
        return percent === undefined ? null : round(percent);
      })(),
      requestsPerSec: round((answered * 1000) / wallMs),
      p95Ms: (() => {
        const p95 = percentile95(http.durationsMs);
        return p95 === null ? null : round(p95);
      })(),
      errorPercent: answered === 0 ? null : round((http.errors / answered) * 100),
      inFlight: http.inFlight,
    };
    this.#delay.reset();
    this.#elu = performance.eventLoopUtilization();
    this.#cpu = process.cpuUsage();
    this.#at = now;
    this.#points.push(point);
    if (this.#points.length > this.#capacity) this.#points.shift();
    return point;
  }

  /** The kept points, oldest first. */
  points(): readonly RuntimePoint[] {
    return this.#points;
  }

  close(): void {
    clearInterval(this.#timer);
    this.#delay.disable();
  }
}
