import { assertNumberOption, closeOnce } from '@guard/core';
import type { BreakerStateChange, GuardBus, Subscription } from '@guard/core';
import type { Detector, DetectorContext, Finding } from './detector.js';

/**
 * Options for {@link HalfOpenDetector}.
 *
 * @example
 * new HalfOpenDetector({ bus: chain.bus, probeTimeoutMs: 10_000 });
 */
export interface HalfOpenDetectorOptions {
  /** The bus the breakers publish `breakerStateChange` on. */
  readonly bus: GuardBus;
  /**
   * How long a half-open probe may run before it is an orphan. A breaker that enforces its own probe timeout (every
   * `@guard/circuit` breaker does) publishes it on each event; the detector uses the shorter of the two, so give it a
   * shorter one than the breakers' to catch a hung probe before the breaker abandons it itself. Default: the event's
   * value, else 30000.
   */
  readonly probeTimeoutMs?: number;
  /**
   * Probes running now per circuit (e.g. `(name) => registry.get(name)?.probesInFlight`). When given, a breaker
   * that is half-open with no probe running (slow traffic, not a stuck probe) is not an orphan.
   */
  readonly probesInFlight?: (circuit: string) => number | undefined;
}

interface HalfOpen {
  readonly since: number;
  readonly probeTimeoutMs: number;
}

/**
 * C4: finds breakers stuck half-open longer than their probe timeout (`half_open_orphan`, critical,
 * resource id = circuit name), from `breakerStateChange` events on the `GuardBus`. It imports nothing
 * from `@guard/circuit`.
 *
 * @example
 * await using detector = chain.add(new HalfOpenDetector({ bus: chain.bus, probeTimeoutMs: 10_000 }));
 */
export class HalfOpenDetector implements Detector, AsyncDisposable {
  readonly component = 'circuit';
  readonly pattern = 'half_open_orphan';
  readonly probeTimeoutMs: number;
  readonly #explicitProbeTimeoutMs: number | undefined;
  readonly #halfOpen = new Map<string, HalfOpen>();
  readonly #subscription: Subscription;
  readonly #probesInFlight: ((circuit: string) => number | undefined) | undefined;
  #trigger: (() => void) | undefined;

  constructor(options: HalfOpenDetectorOptions) {
    this.probeTimeoutMs = options.probeTimeoutMs ?? 30_000;
    this.#explicitProbeTimeoutMs = options.probeTimeoutMs;
    this.#probesInFlight = options.probesInFlight;
    assertNumberOption('probeTimeoutMs', this.probeTimeoutMs, { min: 1 });
    this.#subscription = options.bus.subscribe('breakerStateChange', (change) => this.#onChange(change));
  }

  /** Circuits half-open now, with when they entered it. */
  halfOpen(): { circuit: string; since: number; probeTimeoutMs: number }[] {
    return [...this.#halfOpen].map(([circuit, h]) => ({ circuit, ...h }));
  }

  attach(context: DetectorContext): void {
    this.#trigger = context.trigger;
  }

  scan(now: number): Finding[] {
    const findings: Finding[] = [];
    for (const [circuit, h] of this.#halfOpen) {
      const ageMs = now - h.since;
      if (ageMs <= h.probeTimeoutMs || this.#probesInFlight?.(circuit) === 0) continue;
      findings.push({
        pattern: 'half_open_orphan',
        severity: 'critical',
        resourceId: circuit,
        message: `circuit ${circuit} half-open for ${ageMs} ms (probe timeout ${h.probeTimeoutMs} ms)`,
        details: { circuit, halfOpenSince: h.since, ageMs, probeTimeoutMs: h.probeTimeoutMs },
      });
    }
    return findings;
  }

  /** Unsubscribes from the bus; safe to call twice. */
  readonly close = closeOnce(() => {
    this.#subscription();
    this.#halfOpen.clear();
  });

  [Symbol.asyncDispose](): Promise<void> {
    return this.close();
  }

  #thresholdFor(change: BreakerStateChange): number {
    if (change.probeTimeoutMs === undefined) return this.probeTimeoutMs;
    return this.#explicitProbeTimeoutMs === undefined ? change.probeTimeoutMs : Math.min(this.#explicitProbeTimeoutMs, change.probeTimeoutMs);
  }

  #onChange(change: BreakerStateChange): void {
    if (change.to === 'half_open') {
      this.#halfOpen.set(change.circuit, { since: change.at, probeTimeoutMs: this.#thresholdFor(change) });
    } else if (this.#halfOpen.delete(change.circuit)) {
      this.#trigger?.();
    }
  }
}
