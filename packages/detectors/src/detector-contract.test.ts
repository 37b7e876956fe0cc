import { GuardBus } from '@guard/core';
import Database from 'better-sqlite3';
import { Kysely, SqliteDialect } from 'kysely';
import { EventEmitter } from 'node:events';
import { describe, expect, it } from 'vitest';
import { BatchWriter } from './batch-writer.js';
import { ContextTracker } from './context-tracker.js';
import { PARASITE_COMPONENTS } from './detector.js';
import type { Detector } from './detector.js';
import { EventBusTracker } from './event-bus-tracker.js';
import { HalfOpenDetector } from './half-open-detector.js';
import { HandleTracker } from './handle-tracker.js';
import { trackDialect } from './track-dialect.js';
import { WebSocketTracker } from './websocket-tracker.js';
import * as api from './index.js';

/** The shared contract every detector runs (STYLE §4). */
function describeDetectorContract(name: string, factory: () => { detector: Detector; cleanup?: () => Promise<void> }) {
  describe(`${name} meets the Detector contract`, () => {
    it('names a Parasite component and pattern, and a fresh resource has no findings', async () => {
      const { detector, cleanup } = factory();
      expect(PARASITE_COMPONENTS).toContain(detector.component);
      expect(detector.pattern).toMatch(/^[a-z_]+$/);
      const findings = detector.scan(Date.now());
      expect(Array.isArray(findings)).toBe(true);
      expect(findings).toEqual([]);
      await cleanup?.();
    });

    it('accepts attach once and closes idempotently', async () => {
      const { detector, cleanup } = factory();
      detector.attach?.({ trigger: () => {}, metrics: undefined });
      expect(detector.scan(Date.now())).toEqual([]);
      if (detector.close) {
        await detector.close();
        await detector.close();
      }
      await cleanup?.();
    });
  });
}

describeDetectorContract('WebSocketTracker', () => ({ detector: new WebSocketTracker(undefined, { pingIntervalMs: 0 }) }));
describeDetectorContract('EventBusTracker', () => {
  const detector = new EventBusTracker();
  detector.track(new EventEmitter());
  return { detector };
});
describeDetectorContract('DbPoolTracker', () => {
  const dialect = trackDialect(new SqliteDialect({ database: new Database(':memory:') }));
  const db = new Kysely<any>({ dialect });
  return { detector: dialect.tracker, cleanup: () => db.destroy() };
});
describeDetectorContract('HalfOpenDetector', () => ({ detector: new HalfOpenDetector({ bus: new GuardBus() }) }));
describeDetectorContract('BatchWriter', () => {
  const db = new Kysely<any>({ dialect: new SqliteDialect({ database: new Database(':memory:') }) });
  return { detector: new BatchWriter({ db, write: async () => {} }), cleanup: () => db.destroy() };
});
describeDetectorContract('ContextTracker', () => ({ detector: new ContextTracker() }));
describeDetectorContract('HandleTracker', () => ({ detector: new HandleTracker({ sample: () => ['Timeout'] }) }));

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
        'parasiteConfigFromEnv',
        'trackDialect',
      ].sort(),
    );
  });
});
