import type { ComponentName } from '@guard/core';
import type { Detector, DetectorContext, Finding } from './detector.js';

/**
 * Options for {@link ManualDetector}.
 *
 * @example
 * new ManualDetector({ component: 'websocket', pattern: 'no_ack' });
 */
export interface ManualDetectorOptions {
  readonly component: ComponentName;
  /** The pattern its findings carry unless {@link ManualDetector.report} names another. Default `manual`. */
  readonly pattern?: string;
}

/**
 * A {@link Detector} that reports what it was told: `report()` adds a finding (and asks the chain to scan),
 * `clear()` removes it. It meets the same contract as the real trackers.
 *
 * @example
 * const detector = chain.add(new ManualDetector({ component: 'websocket', pattern: 'no_ack' }));
 * detector.report({ resourceId: 'ws_1', severity: 'critical' });
 * chain.scan(); // one detection for ws_1
 * detector.clear('ws_1');
 */
export class ManualDetector implements Detector {
  readonly component: ComponentName;
  readonly pattern: string;
  readonly #findings = new Map<string, Finding>();
  #trigger: (() => void) | undefined;

  constructor(options: ManualDetectorOptions) {
    this.component = options.component;
    this.pattern = options.pattern ?? 'manual';
  }

  /** Reports a finding for `resourceId` from the next scan on (replacing the one it had). */
  report(finding: Partial<Finding> & Pick<Finding, 'resourceId'>): void {
    this.#findings.set(finding.resourceId, {
      pattern: this.pattern,
      severity: 'critical',
      message: `${this.pattern} on ${finding.resourceId}`,
      details: {},
      ...finding,
    });
    this.#trigger?.();
  }

  /** Clears the finding of `resourceId`, or every finding. */
  clear(resourceId?: string): void {
    if (resourceId === undefined) this.#findings.clear();
    else this.#findings.delete(resourceId);
    this.#trigger?.();
  }

  /** True while `resourceId` has a finding: sanitizers route by it. */
  owns(resourceId: string): boolean {
    return this.#findings.has(resourceId);
  }

  attach(context: DetectorContext): void {
    this.#trigger = context.trigger;
  }

  scan(_now: number): Finding[] {
    return [...this.#findings.values()];
  }

  close(): Promise<void> {
    this.#findings.clear();
    return Promise.resolve();
  }
}
