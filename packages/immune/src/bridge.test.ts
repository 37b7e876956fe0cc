import { describe, expect, it } from 'vitest';
import { createJsonLogger, GuardBus } from '@guard/core';
import type { Detection, SanitizeResult } from '@guard/core';
import { bridgeGuardBus, classifyDetection } from './bridge.js';
import { ImmuneService } from './immune-service.js';

const detection = (overrides: Partial<Detection> = {}): Detection => ({
  id: 'det_1',
  component: 'websocket',
  pattern: 'no_ack',
  severity: 'critical',
  resourceId: 'conn-42',
  message: '3 messages unacked for 3s',
  details: { pending: 3 },
  detectedAt: 1_700_000_000_000,
  source: ['src/server.ts:10:5'],
  ...overrides,
});

const sanitization = (overrides: Partial<SanitizeResult> = {}): SanitizeResult => ({
  detectionId: 'det_1',
  component: 'websocket',
  resourceId: 'conn-42',
  outcome: 'success',
  actions: ['close(1008)', 'terminate'],
  details: { droppedMessages: 3 },
  startedAt: 1_000,
  finishedAt: 1_250,
  ...overrides,
});

async function setup(options: Parameters<typeof bridgeGuardBus>[2] = {}) {
  const bus = new GuardBus();
  const service = new ImmuneService();
  const bridge = bridgeGuardBus(bus, service, options);
  return {
    bus,
    service,
    bridge,
    async events() {
      await bridge.settled();
      return (await service.getRecentEvents({ limit: 100 })).reverse();
    },
    async [Symbol.asyncDispose]() {
      bridge();
      await service.close();
    },
  };
}

describe('bridgeGuardBus', () => {
  it('turns detections into ERROR_SPIKE or POLICY_VIOLATION events with mapped severity', async () => {
    await using t = await setup({ agentId: 'api-1' });
    t.bus.emit('detection', detection());
    t.bus.emit('detection', detection({ id: 'det_2', severity: 'warning', component: 'messagebus', pattern: 'acl_violation' }));
    t.bus.emit('detection', detection({ id: 'det_3', severity: 'info', component: 'handles', pattern: 'handle_leak', source: undefined }));
    const [a, b, c] = await t.events();
    expect(a).toMatchObject({ agentId: 'api-1', module: 'websocket', severity: 'CRITICAL', type: 'ERROR_SPIKE', message: '3 messages unacked for 3s' });
    expect(a!.meta).toMatchObject({ source: 'detection', detection_id: 'det_1', pattern: 'no_ack', resource_id: 'conn-42', details: { pending: 3 }, frames: ['src/server.ts:10:5'] });
    expect(b).toMatchObject({ severity: 'WARNING', type: 'POLICY_VIOLATION', module: 'messagebus' });
    expect(c).toMatchObject({ severity: 'INFO', type: 'ERROR_SPIKE' });
  });

  it('skips info detections when asked and uses a custom classifier', async () => {
    await using t = await setup({ includeInfoDetections: false, classifyDetection: () => 'POLICY_VIOLATION' });
    t.bus.emit('detection', detection({ severity: 'info' }));
    t.bus.emit('detection', detection());
    const events = await t.events();
    expect(events).toHaveLength(1);
    expect(events[0]!.type).toBe('POLICY_VIOLATION');
  });

  it('turns sanitizations into SELF_HEALING_ACTION events (failed ones are warnings)', async () => {
    await using t = await setup();
    t.bus.emit('sanitization', sanitization());
    t.bus.emit('sanitization', sanitization({ outcome: 'failed', error: 'socket gone', actions: [] }));
    const [ok, failed] = await t.events();
    expect(ok).toMatchObject({ severity: 'INFO', type: 'SELF_HEALING_ACTION', module: 'websocket', message: 'sanitization success on websocket conn-42: close(1008), terminate' });
    expect(ok!.meta).toMatchObject({ outcome: 'success', duration_ms: 250, actions: ['close(1008)', 'terminate'] });
    expect(failed).toMatchObject({ severity: 'WARNING', type: 'SELF_HEALING_ACTION' });
    expect(failed!.meta).toMatchObject({ error: 'socket gone' });
  });

  it('records finished playbook runs (starts only when asked)', async () => {
    await using t = await setup();
    const run = { runId: 'run_1', playbook: 'resource_pressure_cpu', dryRun: false, startedAt: 1_000 } as const;
    t.bus.emit('playbookRun', { ...run, status: 'started' });
    t.bus.emit('playbookRun', { ...run, status: 'succeeded', finishedAt: 3_000, reason: 'cpu > 90%' });
    t.bus.emit('playbookRun', { ...run, runId: 'run_2', status: 'rolled_back', finishedAt: 4_000, error: 'verify failed' });
    const events = await t.events();
    expect(events).toHaveLength(2);
    expect(events[0]).toMatchObject({ module: 'playbooks', severity: 'INFO', type: 'SELF_HEALING_ACTION', message: 'playbook resource_pressure_cpu succeeded: cpu > 90%' });
    expect(events[0]!.meta).toMatchObject({ run_id: 'run_1', duration_ms: 2_000, dry_run: false });
    expect(events[1]).toMatchObject({ severity: 'WARNING' });
  });

  it('turns memory alarms and breakers opening into ERROR_SPIKE events', async () => {
    await using t = await setup();
    t.bus.emit('memoryAlarm', { status: 'healthy', reasons: [], rssBytes: 1, growthMbPerMin: 0, at: 1 });
    t.bus.emit('memoryAlarm', { status: 'critical', reasons: ['rss 800 MB > 700 MB'], rssBytes: 800e6, growthMbPerMin: 12, at: 2 });
    t.bus.emit('breakerStateChange', { circuit: 'payments', from: 'half_open', to: 'closed', at: 3 });
    t.bus.emit('breakerStateChange', { circuit: 'payments', from: 'closed', to: 'open', at: 4 });
    const events = await t.events();
    expect(events.map((e) => [e.module, e.severity, e.type])).toEqual([
      ['memory', 'CRITICAL', 'ERROR_SPIKE'],
      ['circuit', 'WARNING', 'ERROR_SPIKE'],
    ]);
    expect(events[0]!.message).toBe('memory critical: rss 800 MB > 700 MB');
  });

  it('can leave memory alarms and breakers alone', async () => {
    await using t = await setup({ memoryAlarms: false, breakerOpens: false });
    t.bus.emit('memoryAlarm', { status: 'critical', reasons: [], rssBytes: 1, growthMbPerMin: 0, at: 1 });
    t.bus.emit('breakerStateChange', { circuit: 'p', from: 'closed', to: 'open', at: 4 });
    expect(await t.events()).toEqual([]);
  });

  it('shrinks oversized or too deep details instead of losing the event', async () => {
    await using t = await setup();
    let deep: Record<string, unknown> = { x: 1 };
    for (let i = 0; i < 20; i++) deep = { deep };
    t.bus.emit('detection', detection({ details: { blob: 'x'.repeat(100_000) } }));
    t.bus.emit('detection', detection({ id: 'det_deep', details: deep, message: '' }));
    const [big, nested] = await t.events();
    expect(big!.meta).toMatchObject({ truncated: true, detection_id: 'det_1' });
    expect(big!.meta).not.toHaveProperty('details');
    expect(nested!.meta).toMatchObject({ truncated: true, detection_id: 'det_deep' });
    expect(nested!.message).toBe('websocket no_ack on conn-42');
  });

  it('never throws into the bus: malformed payloads and a closed service are logged', async () => {
    const lines: string[] = [];
    const bus = new GuardBus({ logger: createJsonLogger({ level: 'error', write: (l) => lines.push(l) }) });
    const service = new ImmuneService();
    const bridge = bridgeGuardBus(bus, service, { logger: createJsonLogger({ level: 'warn', write: (l) => lines.push(l) }) });
    expect(() => bus.emit('sanitization', { component: 'x' } as never)).not.toThrow();
    await service.close();
    expect(() => bus.emit('detection', detection())).not.toThrow();
    await bridge.settled();
    expect(lines.some((l) => l.includes('immune bridge could not map an event'))).toBe(true);
    expect(lines.some((l) => l.includes('GuardBus listener threw'))).toBe(false);
    bridge();
  });

  it('unsubscribes when disposed', async () => {
    const bus = new GuardBus();
    await using service = new ImmuneService();
    {
      using _bridge = bridgeGuardBus(bus, service);
      expect(bus.listenerCount('detection')).toBe(1);
    }
    expect(bus.listenerCount('detection')).toBe(0);
    expect(bus.listenerCount('sanitization')).toBe(0);
    expect(bus.listenerCount('breakerStateChange')).toBe(0);
  });

  it('classifies policy breaches by pattern or component', () => {
    expect(classifyDetection(detection({ pattern: 'rate_limit_exceeded' }))).toBe('POLICY_VIOLATION');
    expect(classifyDetection(detection({ component: 'acl' }))).toBe('POLICY_VIOLATION');
    expect(classifyDetection(detection({ component: 'db', pattern: 'connection_orphan' }))).toBe('ERROR_SPIKE');
  });
});
