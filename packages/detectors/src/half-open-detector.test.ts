import { GuardBus } from '@guard/core';
import { Registry } from 'prom-client';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { DetectorChain } from './detector-chain.js';
import { HalfOpenDetector } from './half-open-detector.js';
import { recordingScheduler } from './test-support.js';

function setup(mode: 'dry_run' | 'detect' | 'full' = 'detect') {
  const bus = new GuardBus();
  const scheduler = recordingScheduler();
  const chain = new DetectorChain({ mode, scanIntervalMs: 0, bus, registry: new Registry(), scheduler });
  const detector = chain.add(new HalfOpenDetector({ bus, probeTimeoutMs: 1_000 }));
  return { bus, chain, detector, scheduler };
}

afterEach(() => {
  vi.useRealTimers();
});

describe('HalfOpenDetector (C4) from breaker events on the GuardBus', () => {
  it('does not flag a breaker whose probe finishes in time', () => {
    const { bus, chain } = setup();
    const at = Date.now();
    bus.emit('breakerStateChange', { circuit: 'payments', from: 'open', to: 'half_open', at });
    expect(chain.scan(at + 900)).toEqual([]);
    bus.emit('breakerStateChange', { circuit: 'payments', from: 'half_open', to: 'closed', at: at + 950 });
    expect(chain.scan(at + 5_000)).toEqual([]);
  });

  it('flags a breaker half-open past the shorter of its own and the detector\'s probe timeout, and clears on the next transition', async () => {
    vi.useFakeTimers();
    const { bus, chain, detector } = setup();
    const at = Date.now();
    bus.emit('breakerStateChange', { circuit: 'payments', from: 'open', to: 'half_open', at });
    bus.emit('breakerStateChange', { circuit: 'search', from: 'open', to: 'half_open', at, probeTimeoutMs: 500 });
    bus.emit('breakerStateChange', { circuit: 'billing', from: 'open', to: 'half_open', at, probeTimeoutMs: 10_000 });
    await vi.advanceTimersByTimeAsync(600);
    expect(chain.scan()).toEqual([expect.objectContaining({ component: 'circuit', pattern: 'half_open_orphan', severity: 'critical', resourceId: 'search' })]);
    await vi.advanceTimersByTimeAsync(500);
    // billing's breaker would abandon its probe only at 10 s: the detector's 1 s catches it first.
    expect(chain.scan().map((d) => d.resourceId).sort()).toEqual(['billing', 'payments']);
    expect(chain.active().map((d) => d.resourceId).sort()).toEqual(['billing', 'payments', 'search']);
    expect(detector.halfOpen().map((h) => h.circuit).sort()).toEqual(['billing', 'payments', 'search']);
    bus.emit('breakerStateChange', { circuit: 'payments', from: 'half_open', to: 'open', at: Date.now() });
    await vi.advanceTimersByTimeAsync(0);
    expect(chain.active().map((d) => d.resourceId).sort()).toEqual(['billing', 'search']);
  });

  it('without a timeout of its own, the detector uses the one each breaker publishes', async () => {
    vi.useFakeTimers();
    const bus = new GuardBus();
    const chain = new DetectorChain({ mode: 'detect', scanIntervalMs: 0, bus, registry: new Registry(), scheduler: recordingScheduler() });
    chain.add(new HalfOpenDetector({ bus }));
    const at = Date.now();
    bus.emit('breakerStateChange', { circuit: 'search', from: 'open', to: 'half_open', at, probeTimeoutMs: 10_000 });
    await vi.advanceTimersByTimeAsync(9_000);
    expect(chain.scan()).toEqual([]);
    await vi.advanceTimersByTimeAsync(1_100);
    expect(chain.scan().map((d) => d.resourceId)).toEqual(['search']);
    await chain.close();
  });

  it('with a probesInFlight lookup, an idle half-open breaker is not an orphan but a stuck probe is', () => {
    const bus = new GuardBus();
    const chain = new DetectorChain({ mode: 'detect', scanIntervalMs: 0, bus, registry: new Registry() });
    const inFlight = new Map([['idle', 0], ['stuck', 1]]);
    chain.add(new HalfOpenDetector({ bus, probeTimeoutMs: 1_000, probesInFlight: (circuit) => inFlight.get(circuit) }));
    const at = Date.now();
    for (const circuit of ['idle', 'stuck', 'unknown']) bus.emit('breakerStateChange', { circuit, from: 'open', to: 'half_open', at });
    expect(chain.scan(at + 2_000).map((d) => d.resourceId).sort()).toEqual(['stuck', 'unknown']);
  });

  it('full schedules the orphan; dry_run and detect do not', () => {
    for (const mode of ['dry_run', 'detect', 'full'] as const) {
      const { bus, chain, scheduler } = setup(mode);
      const at = Date.now();
      bus.emit('breakerStateChange', { circuit: 'payments', from: 'open', to: 'half_open', at });
      chain.scan(at + 2_000);
      expect(scheduler.scheduled.map((d) => d.resourceId)).toEqual(mode === 'full' ? ['payments'] : []);
    }
  });

  it('unsubscribes on close and validates options', async () => {
    const bus = new GuardBus();
    const detector = new HalfOpenDetector({ bus });
    expect(bus.listenerCount('breakerStateChange')).toBe(1);
    await detector.close();
    await detector.close();
    expect(bus.listenerCount('breakerStateChange')).toBe(0);
    expect(() => new HalfOpenDetector({ bus, probeTimeoutMs: 0 })).toThrow(expect.objectContaining({ code: 'INVALID_OPTION' }));
  });
});
