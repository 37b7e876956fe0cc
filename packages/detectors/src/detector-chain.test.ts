import { GuardBus, isGuardError } from '@guard/core';
import type { Detection, DetectionCleared, GuardError, ModeChange } from '@guard/core';
import { Registry } from 'prom-client';
import { afterEach, describe, expect, it, vi } from 'vitest';
import type { Detector, Finding } from './detector.js';
import { DetectorChain } from './detector-chain.js';
import { memoryLogger, recordingScheduler } from './test-support.js';

/** A real in-memory detector: reports whatever `findings` holds. */
function listDetector(component = 'websocket'): Detector & { findings: Finding[]; scans: number; trigger?: () => void } {
  const d = {
    component,
    pattern: 'no_ack',
    findings: [] as Finding[],
    scans: 0,
    trigger: undefined as undefined | (() => void),
    scan() {
      d.scans++;
      return d.findings;
    },
    attach(context: { trigger(): void }) {
      d.trigger = context.trigger;
    },
  };
  return d;
}

const critical: Finding = { pattern: 'no_ack', severity: 'critical', resourceId: 'ws_1', message: 'unacked', details: { pending: 2 }, source: ['/app/src/server.ts:10:5'] };

function setup(options: ConstructorParameters<typeof DetectorChain>[0] = {}) {
  const registry = new Registry();
  const bus = new GuardBus();
  const logger = memoryLogger();
  const scheduler = recordingScheduler();
  const chain = new DetectorChain({ scanIntervalMs: 0, bus, logger, registry, scheduler, ...options });
  const detections: Detection[] = [];
  const cleared: DetectionCleared[] = [];
  bus.subscribe('detection', (d) => detections.push(d));
  bus.subscribe('detectionCleared', (c) => cleared.push(c));
  return { chain, registry, bus, logger, scheduler, detections, cleared };
}

afterEach(() => {
  vi.useRealTimers();
});

describe('DetectorChain', () => {
  it('publishes a detection once, keeps its id while it holds, and clears it when it stops', async () => {
    const { chain, detections, cleared } = setup();
    const detector = chain.add(listDetector());
    expect(chain.scan()).toEqual([]);
    detector.findings = [critical];
    const [first] = chain.scan();
    expect(first).toMatchObject({ component: 'websocket', pattern: 'no_ack', severity: 'critical', resourceId: 'ws_1', source: critical.source });
    expect(first!.id).toMatch(/^det_/);
    expect(chain.scan()).toEqual([]);
    expect(chain.active('websocket').map((d) => d.id)).toEqual([first!.id]);
    expect(chain.criticalFor('websocket')?.id).toBe(first!.id);
    expect(detections).toHaveLength(1);
    detector.findings = [];
    chain.scan();
    expect(cleared).toEqual([expect.objectContaining({ id: first!.id, component: 'websocket', resourceId: 'ws_1' })]);
    expect(chain.criticalFor('websocket')).toBeUndefined();
    await chain.close();
  });

  it('treats a severity change as a new detection', () => {
    const { chain, detections, cleared } = setup();
    const detector = chain.add(listDetector());
    detector.findings = [{ ...critical, severity: 'warning' }];
    chain.scan();
    expect(chain.criticalFor('websocket')).toBeUndefined();
    detector.findings = [critical];
    chain.scan();
    expect(detections.map((d) => d.severity)).toEqual(['warning', 'critical']);
    expect(cleared).toHaveLength(1);
    expect(chain.criticalFor('websocket')?.severity).toBe('critical');
  });

  it('logs "Parasite detected" with component, pattern, severity, resource and source frames', () => {
    const { chain, logger } = setup();
    chain.add(listDetector()).findings = [critical];
    chain.scan();
    expect(logger.lines).toEqual([
      expect.objectContaining({ msg: 'Parasite detected', component: 'websocket', pattern: 'no_ack', severity: 'critical', resource: 'ws_1', source: critical.source }),
    ]);
  });

  it('records the seed metrics with the configured prefix', async () => {
    const { chain, registry } = setup();
    chain.add(listDetector()).findings = [critical];
    chain.scan();
    const text = await registry.metrics();
    expect(text).toContain('parasite_detected_total{component="websocket",pattern="no_ack",severity="critical"} 1');
    expect(text).toMatch(/parasite_detection_duration_seconds_count\{component="websocket"\} 1/);
    const other = setup({ metricsPrefix: 'guardx' });
    other.chain.add(listDetector()).findings = [critical];
    other.chain.scan();
    expect(await other.registry.metrics()).toContain('guardx_detected_total{component="websocket",pattern="no_ack",severity="critical"} 1');
    const off = setup({ metrics: false });
    off.chain.add(listDetector()).findings = [critical];
    off.chain.scan();
    expect(await off.registry.metrics()).toBe('\n');
  });

  it('dry_run logs and counts but publishes nothing and schedules nothing', async () => {
    const { chain, detections, scheduler, logger, registry } = setup({ mode: 'dry_run' });
    chain.add(listDetector()).findings = [critical];
    chain.scan();
    expect(detections).toEqual([]);
    expect(scheduler.scheduled).toEqual([]);
    expect(logger.lines[0]).toMatchObject({ msg: 'Parasite detected', mode: 'dry_run' });
    expect(await registry.metrics()).toContain('parasite_detected_total{component="websocket",pattern="no_ack",severity="critical"} 1');
  });

  it('detect publishes but never schedules; full schedules critical detections only', () => {
    const detect = setup({ mode: 'detect' });
    detect.chain.add(listDetector()).findings = [critical];
    detect.chain.scan();
    expect(detect.detections).toHaveLength(1);
    expect(detect.scheduler.scheduled).toEqual([]);

    const full = setup({ mode: 'full' });
    full.chain.add(listDetector()).findings = [critical, { ...critical, resourceId: 'ws_2', severity: 'warning' }];
    full.chain.scan();
    expect(full.scheduler.scheduled.map((d) => d.resourceId)).toEqual(['ws_1']);
  });

  it('offers a critical detection that still holds to the scheduler again after rescheduleIntervalMs', () => {
    const scheduled: string[] = [];
    const { chain } = setup({ mode: 'full', rescheduleIntervalMs: 5_000, scheduler: { schedule: (d) => (scheduled.push(d.id), true) } });
    chain.add(listDetector()).findings = [critical];
    const now = Date.now();
    const [detection] = chain.scan(now);
    chain.scan(now + 1_000);
    expect(scheduled).toEqual([detection!.id]);
    chain.scan(now + 5_000);
    expect(scheduled).toEqual([detection!.id, detection!.id]);
    chain.setMode('detect');
    chain.scan(now + 20_000);
    expect(scheduled).toHaveLength(2);
    expect(() => setup({ rescheduleIntervalMs: -1 })).toThrow(/rescheduleIntervalMs/);
  });

  it('changes modes at run time, globally and per component, and emits modeChange', () => {
    const { chain, bus, detections, cleared } = setup({ mode: 'detect' });
    const changes: ModeChange[] = [];
    bus.subscribe('modeChange', (c) => changes.push(c));
    const ws = chain.add(listDetector('websocket'));
    const db = chain.add(listDetector('db'));
    ws.findings = [critical];
    db.findings = [{ ...critical, resourceId: 'conn_1' }];
    chain.scan();
    expect(detections).toHaveLength(2);
    chain.setMode('disabled', 'db');
    expect(chain.modeOf('db')).toBe('disabled');
    expect(cleared.map((c) => c.component)).toEqual(['db']);
    const scansBefore = db.scans;
    chain.scan();
    expect(db.scans).toBe(scansBefore);
    chain.setMode('full');
    expect(chain.modeOf('websocket')).toBe('full');
    expect(chain.modeOf('db')).toBe('disabled');
    chain.setMode(null, 'db');
    expect(chain.modeOf('db')).toBe('full');
    chain.setMode('full');
    expect(changes).toEqual([
      { component: 'db', from: 'detect', to: 'disabled' },
      { component: '*', from: 'detect', to: 'full' },
      { component: 'db', from: 'disabled', to: 'full' },
    ]);
    chain.setMode('disabled');
    expect(chain.modeOf('websocket')).toBe('disabled');
    expect(chain.active()).toEqual([]);
  });

  it('caps a component without sanitization at detect', () => {
    const { chain, scheduler } = setup({ mode: 'full', components: { websocket: { sanitization: false } } });
    chain.add(listDetector()).findings = [critical];
    chain.scan();
    expect(chain.modeOf('websocket')).toBe('detect');
    expect(scheduler.scheduled).toEqual([]);
  });

  it('scans on its unref-ed loop and on detector events', async () => {
    vi.useFakeTimers();
    const { chain, detections } = setup({ scanIntervalMs: 1_000 });
    const detector = chain.add(listDetector());
    await vi.advanceTimersByTimeAsync(2_500);
    expect(detector.scans).toBe(2);
    detector.findings = [critical];
    detector.trigger!();
    detector.trigger!();
    await vi.advanceTimersByTimeAsync(0);
    expect(detector.scans).toBe(3);
    expect(detections).toHaveLength(1);
    await chain.close();
    await vi.advanceTimersByTimeAsync(5_000);
    expect(detector.scans).toBe(3);
  });

  it('keeps scanning when a detector throws, and logs it', () => {
    const { chain, logger } = setup();
    chain.add({ component: 'db', pattern: 'x', scan: () => { throw new Error('boom'); } });
    const ok = chain.add(listDetector());
    ok.findings = [critical];
    expect(chain.scan()).toHaveLength(1);
    expect(logger.lines.some((l) => l.msg === 'detector scan failed')).toBe(true);
  });

  it('removes detectors and clears their detections', () => {
    const { chain, cleared } = setup();
    const detector = chain.add(listDetector());
    detector.findings = [critical];
    chain.scan();
    expect(chain.remove(detector)).toBe(true);
    expect(chain.remove(detector)).toBe(false);
    expect(cleared).toHaveLength(1);
  });

  it('rejects bad options and use after close', async () => {
    expect(() => new DetectorChain({ mode: 'loud' as never })).toThrow(expect.objectContaining({ code: 'INVALID_OPTION' }));
    expect(() => new DetectorChain({ scanIntervalMs: -1, metrics: false })).toThrow(/scanIntervalMs/);
    expect(() => new DetectorChain({ metrics: false, components: { db: { mode: 'x' as never } } })).toThrow(/components\.db\.mode/);
    const { chain } = setup();
    expect(() => chain.setMode('nope' as never)).toThrow(/mode must be/);
    expect(() => chain.setMode(null)).toThrow(/global mode/);
    await chain.close();
    await chain.close();
    try {
      chain.add(listDetector());
      expect.unreachable();
    } catch (error) {
      expect(isGuardError(error, 'CLOSED')).toBe(true);
    }
    expect(chain.scan()).toEqual([]);
  });

  it('fromEnv logs JSON lines, text lines with PARASITE_LOG_STRUCTURED=false, nothing at silent', () => {
    const written: string[] = [];
    const spy = vi.spyOn(process.stdout, 'write').mockImplementation((chunk: string | Uint8Array) => {
      written.push(String(chunk));
      return true;
    });
    try {
      for (const env of [{}, { PARASITE_LOG_STRUCTURED: 'false' }, { PARASITE_LOG_LEVEL: 'silent' }, { PARASITE_LOG_LEVEL: 'fatal' }]) {
        const chain = DetectorChain.fromEnv(env, { registry: new Registry(), scanIntervalMs: 0 });
        chain.add(listDetector()).findings = [critical];
        chain.scan();
      }
    } finally {
      spy.mockRestore();
    }
    expect(written).toHaveLength(2);
    expect(JSON.parse(written[0]!)).toMatchObject({ msg: 'Parasite detected', component: 'websocket', pattern: 'no_ack', severity: 'critical', resource: 'ws_1' });
    expect(written[1]).toMatch(/Parasite detected component=websocket pattern=no_ack severity=critical resource=ws_1 /);
    expect(written[1]).toContain('source=["/app/src/server.ts:10:5"]');
  });

  it('builds from env names', async () => {
    const registry = new Registry();
    const chain = DetectorChain.fromEnv(
      { PARASITE_GUARD_MODE: 'full', PARASITE_GUARD_DB: 'dry_run', PARASITE_GUARD_EVENTBUS_SANITIZATION: 'false', PARASITE_METRICS_PREFIX: 'px', PARASITE_GUARD_WEBSOCKET_THRESHOLD: 'ack_timeout=5' },
      { registry, scanIntervalMs: 0, logger: memoryLogger(), scheduler: recordingScheduler() },
    );
    expect(chain.mode).toBe('full');
    expect(chain.modeOf('db')).toBe('dry_run');
    expect(chain.modeOf('eventbus')).toBe('detect');
    expect(chain.modeOf('websocket')).toBe('full');
    expect(chain.thresholds.websocket.ackTimeoutMs).toBe(5_000);
    chain.add(listDetector()).findings = [critical];
    chain.scan();
    expect(await registry.metrics()).toContain('px_detected_total');
    await chain.close();
    expect(() => DetectorChain.fromEnv({ PARASITE_GUARD_MODE: 'maybe' })).toThrow(/PARASITE_GUARD_MODE/);
  });

  it('full mode without a scheduler is refused with a typed error, globally, per component and at run time', async () => {
    const refused = (build: () => unknown, component?: string) => {
      try {
        build();
        expect.unreachable();
      } catch (error) {
        expect(isGuardError(error, 'INVALID_OPTION')).toBe(true);
        expect((error as GuardError).message).toMatch(/mode 'full'.*needs a sanitizer: pass scheduler/);
        expect((error as GuardError).details).toEqual({ field: 'scheduler', ...(component ? { component } : {}) });
      }
    };
    refused(() => new DetectorChain({ mode: 'full', metrics: false, scanIntervalMs: 0 }));
    refused(() => new DetectorChain({ metrics: false, scanIntervalMs: 0, components: { db: { mode: 'full' } } }), 'db');
    refused(() => DetectorChain.fromEnv({ PARASITE_GUARD_MODE: 'full' }, { metrics: false, scanIntervalMs: 0, logger: memoryLogger() }));
    // sanitization off caps the component at detect, so nothing is promised
    await using capped = new DetectorChain({ metrics: false, scanIntervalMs: 0, components: { db: { mode: 'full', sanitization: false } } });
    expect(capped.modeOf('db')).toBe('detect');
    await using chain = new DetectorChain({ mode: 'detect', metrics: false, scanIntervalMs: 0 });
    refused(() => chain.setMode('full'));
    refused(() => chain.setMode('full', 'websocket'), 'websocket');
    expect(chain.mode).toBe('detect');
    // with a scheduler every form works
    await using healing = new DetectorChain({ mode: 'full', metrics: false, scanIntervalMs: 0, scheduler: recordingScheduler() });
    expect(healing.modeOf('db')).toBe('full');
  });
});
