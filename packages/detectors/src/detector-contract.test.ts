import { COMPONENT_NAMES, GuardBus } from '@guard/core';
import type { Detection, DetectionCleared } from '@guard/core';
import { describe, expect, it } from 'vitest';
import { DetectorChain } from './detector-chain.js';
import { DETECTOR_FIXTURES } from './detector-fixtures.js';
import type { DetectorFixture } from './detector-fixtures.js';
import type { Detector, Finding } from './detector.js';
import * as api from './index.js';
import * as testing from './testing.js';

const SEVERITIES = ['info', 'warning', 'critical'];

/** The fault is reported (well-formed, owned by the detector), then gone once its owner fixed it. */
async function checkFaultCycle(fixture: DetectorFixture): Promise<void> {
  const { detector } = fixture;
  expect(detector.scan(Date.now())).toEqual([]);
  const findings: readonly Finding[] = detector.scan(await fixture.inject());
  expect(findings.length, 'the injected fault is reported').toBeGreaterThan(0);
  for (const finding of findings) {
    expect(finding.pattern).toMatch(/^[a-z_]+$/);
    expect(SEVERITIES).toContain(finding.severity);
    expect(finding.resourceId).not.toBe('');
    expect(typeof finding.message).toBe('string');
    const owns = (detector as { owns?: (id: string) => boolean }).owns;
    if (owns) expect(owns.call(detector, finding.resourceId), `owns(${finding.resourceId})`).toBe(true);
  }
  expect(detector.scan(await fixture.clear()), 'the fault is cleared').toEqual([]);
}

/** The same cycle through a chain: `detection` on the bus, then `detectionCleared` for the same id. */
async function checkChainCycle(fixture: DetectorFixture): Promise<void> {
  const bus = new GuardBus();
  const detected: Detection[] = [];
  const cleared: DetectionCleared[] = [];
  bus.subscribe('detection', (d) => detected.push(d));
  bus.subscribe('detectionCleared', (c) => cleared.push(c));
  await using chain = new DetectorChain({ scanIntervalMs: 0, bus, metrics: false });
  chain.add(fixture.detector);
  expect(chain.scan(Date.now()), 'nothing before the fault').toEqual([]);
  chain.scan(await fixture.inject());
  expect(detected.length, 'a detection on the bus').toBeGreaterThan(0);
  expect(detected.every((d) => d.component === fixture.detector.component)).toBe(true);
  chain.scan(await fixture.clear());
  expect(cleared.map((c) => c.id).sort()).toEqual(detected.map((d) => d.id).sort());
  expect(chain.active()).toEqual([]);
}

/** The shared contract every detector and the `./testing` fake run (STYLE §4), each with its own fault. */
function describeDetectorContract(name: string, make: () => Promise<DetectorFixture>): void {
  describe(`${name} meets the Detector contract`, () => {
    it('names a Parasite component and a pattern', async () => {
      await using fixture = await make();
      expect(COMPONENT_NAMES).toContain(fixture.detector.component);
      expect(fixture.detector.pattern).toMatch(/^[a-z_]+$/);
    });

    it('reports an injected fault, then clears it', async () => {
      await using fixture = await make();
      await checkFaultCycle(fixture);
    });

    it('through a DetectorChain: the fault is detected on the bus, then cleared', async () => {
      await using fixture = await make();
      await checkChainCycle(fixture);
    });

    it('closes idempotently', async () => {
      await using fixture = await make();
      await fixture.detector.close?.();
      await fixture.detector.close?.();
    });
  });
}

for (const [name, make] of DETECTOR_FIXTURES) describeDetectorContract(name, make);

/** A detector whose scan is replaced: the contract must fail on it. */
function tampered(detector: Detector, scan: (real: Detector['scan']) => Detector['scan']): Detector {
  const replaced = scan(detector.scan.bind(detector));
  return new Proxy(detector, {
    get(target, key) {
      if (key === 'scan') return replaced;
      const value: unknown = Reflect.get(target, key, target);
      return typeof value === 'function' ? (value as (...args: unknown[]) => unknown).bind(target) : value;
    },
  });
}

/** Reports nothing, ever. */
const silent = (): Detector['scan'] => () => [];
/** Keeps reporting the first findings it saw, as a detector whose condition never clears. */
const stuck = (real: Detector['scan']): Detector['scan'] => {
  let first: readonly Finding[] = [];
  return (now) => (first.length > 0 ? first : (first = real(now)));
};

describe('the Detector contract can fail', () => {
  for (const [name, make] of DETECTOR_FIXTURES) {
    it(`${name}: a copy that never reports, or never clears, fails it`, async () => {
      for (const broken of [silent, stuck]) {
        await using fixture = await make();
        const check = checkFaultCycle({ ...fixture, detector: tampered(fixture.detector, broken) });
        await expect(check, broken.name).rejects.toThrow();
      }
    });
  }
});

describe('@guard/detectors public API', () => {
  it('exports each concept by name', () => {
    expect(Object.keys(api).sort()).toEqual(
      [
        'BatchWriter',
        'ContextTracker',
        'DEFAULT_THRESHOLDS',
        'DbPoolTracker',
        'DetectorChain',
        'EventBusTracker',
        'HalfOpenDetector',
        'HandleTracker',
        'PARASITE_COMPONENTS',
        'WebSocketTracker',
        'createParasiteMetrics',
        'createParasiteMiddleware',
        'detectorChainOptionsFromEnv',
        'parasiteConfigFromEnv',
        'trackDialect',
      ].sort(),
    );
    expect(Object.keys(testing).sort()).toEqual(['ManualDetector', 'wsTestServer']);
  });
});
