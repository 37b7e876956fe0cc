import { assertOpen, closeOnce } from '@guard/core';
import type { ComponentName, Logger } from '@guard/core';
import type { Detector, DetectorContext, Finding } from './detector.js';
import type { ParasiteMetrics } from './parasite-metrics.js';

/** The option every tracker takes. */
export interface TrackerOptions {
  /** Capture call sites so a detection points at the code behind it (sampled, so it can stay on). Default true. */
  readonly traceSources?: boolean;
}

/**
 * What every built-in tracker shares: its component and main pattern, whether it captures call sites, the chain it
 * joined (`attach`: ask for a scan, the chain's metrics and logger) and one idempotent `close()` (also
 * `[Symbol.asyncDispose]`) whose signal ends what the tracker registered, such as its scrape-time metric readers.
 * A subclass implements `scan` and says what closing stops in `stopTracking()`.
 */
export abstract class Tracker<C extends ComponentName, P extends string> implements Detector, AsyncDisposable {
  readonly component: C;
  readonly pattern: P;
  /** The `traceSources` option. */
  protected readonly traceSources: boolean;
  readonly #closing = new AbortController();
  readonly #close = closeOnce(() => this.stopTracking());
  #context: DetectorContext | undefined;

  protected constructor(component: C, pattern: P, options: TrackerOptions) {
    this.component = component;
    this.pattern = pattern;
    this.traceSources = options.traceSources ?? true;
  }

  abstract scan(now: number): readonly Finding[];

  /** Called by the chain the tracker joins. */
  attach(context: DetectorContext): void {
    this.#context = context;
    if (context.metrics !== undefined) this.readMetrics(context.metrics, this.#closing.signal);
  }

  /**
   * Ends the tracking; safe to call twice. What it stops is the subclass's `stopTracking()`. Bound, so it can be
   * handed on as a callback.
   */
  readonly close = (): Promise<void> => {
    this.#closing.abort();
    return this.#close();
  };

  [Symbol.asyncDispose](): Promise<void> {
    return this.close();
  }

  /** Registers the tracker's scrape-time readers on the chain's metrics, until `signal` (closed) aborts. */
  protected readMetrics(_metrics: ParasiteMetrics, _signal: AbortSignal): void {}

  /** What `close()` stops (runs once). */
  protected abstract stopTracking(): void | Promise<void>;

  /** Asks the chain to scan this tracker soon (coalesced); nothing before `attach`. */
  protected trigger(): void {
    this.#context?.trigger();
  }

  /** The chain's metrics, when it records them. */
  protected get metrics(): ParasiteMetrics | undefined {
    return this.#context?.metrics;
  }

  /** The chain's logger, for a tracker given none of its own. */
  protected get chainLogger(): Logger | undefined {
    return this.#context?.logger;
  }

  /** True once `close()` was called. */
  protected get closed(): boolean {
    return this.#closing.signal.aborted;
  }

  /** Throws `CLOSED` after `close()`. */
  protected assertOpen(): void {
    assertOpen(this.closed, this.constructor.name);
  }
}
