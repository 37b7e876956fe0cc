import { afterEach, describe, expect, it, vi } from 'vitest';
import { createJsonLogger, GuardBus } from '@guard/core';
import type { Detection, SanitizeResult } from '@guard/core';
import { bridgeGuardBus, classifyDetection } from './bridge.js';
import { ImmuneService } from './immune-service.js';

/** Emits an event another package declares on the GuardBus (immune does not depend on playbooks). */
function emitLoose(bus: GuardBus, event: string, payload: unknown): boolean {
  return (bus as unknown as { emit(event: string, payload: unknown): boolean }).emit(event, payload);
}

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

  it('records watchdog restarts, crash loops and recoveries (backoff notices are not rows)', async () => {
    await using t = await setup({ agentId: 'api-1' });
    const at = 1_700_000_000_000;
    emitLoose(t.bus, 'heartbeat', { kind: 'missed', component: 'ingest', reason: 'heartbeat_missed', at, attempt: 0 });
    emitLoose(t.bus, 'heartbeat', { kind: 'restarted', component: 'ingest', reason: 'heartbeat_missed', at: at + 5, attempt: 1, recoveryMs: 5 });
    emitLoose(t.bus, 'heartbeat', { kind: 'backoff', component: 'ingest', reason: 'heartbeat_missed', at: at + 10, delayMs: 1_000, attempt: 1 });
    emitLoose(t.bus, 'heartbeat', { kind: 'restart_failed', component: 'ingest', reason: 'heartbeat_missed', at: at + 20, error: 'port in use', attempt: 2 });
    emitLoose(t.bus, 'heartbeat', { kind: 'crash_loop', component: 'ingest', reason: 'too_many_restarts', at: at + 30, restartsInWindow: 5, windowMs: 300_000 });
    emitLoose(t.bus, 'heartbeat', { kind: 'recovered', component: 'ingest', reason: 'heartbeat_after_crash_loop', at: at + 40, recoveryMs: 40 });
    emitLoose(t.bus, 'heartbeat', { kind: 'reset', component: 'ingest', reason: 'reset', at: at + 50 });
    const events = await t.events();
    expect(events.map((e) => [e.meta.kind, e.type, e.severity])).toEqual([
      ['missed', 'ERROR_SPIKE', 'WARNING'],
      ['restarted', 'SELF_HEALING_ACTION', 'INFO'],
      ['restart_failed', 'SELF_HEALING_ACTION', 'WARNING'],
      ['crash_loop', 'ERROR_SPIKE', 'CRITICAL'],
      ['recovered', 'SELF_HEALING_ACTION', 'INFO'],
      ['reset', 'SELF_HEALING_ACTION', 'INFO'],
    ]);
    expect(events.every((e) => e.module === 'watchdog' && e.agentId === 'api-1')).toBe(true);
    expect(events[3]!.message).toBe('component ingest is in crash_loop: 5 restarts within 300 s; restarts stopped');
    expect(events[3]!.meta).toMatchObject({ source: 'watchdog', component: 'ingest', restarts_in_window: 5, window_ms: 300_000 });
    expect(events[2]!.meta).toMatchObject({ error: 'port in use', attempt: 2 });
  });

  it('records pressure alarms and clears', async () => {
    await using t = await setup();
    emitLoose(t.bus, 'resourcePressure', { resource: 'cpu', state: 'alarm', percent: 92.345, level: 92.345, thresholdPercent: 80, sustainedMs: 10_000, at: 1 });
    emitLoose(t.bus, 'resourcePressure', { resource: 'disk', state: 'alarm', percent: 97, thresholdPercent: 90, sustainedMs: 10_000, at: 2 });
    emitLoose(t.bus, 'resourcePressure', { resource: 'cpu', state: 'cleared', percent: 20, thresholdPercent: 80, sustainedMs: 3_000, at: 3 });
    const events = await t.events();
    expect(events.map((e) => [e.module, e.type, e.severity, e.message])).toEqual([
      ['resources', 'ERROR_SPIKE', 'WARNING', 'cpu pressure: 92.3 % >= 80 % for 10 s'],
      ['resources', 'ERROR_SPIKE', 'CRITICAL', 'disk pressure: 97 % >= 90 % for 10 s'],
      ['resources', 'ERROR_SPIKE', 'INFO', 'cpu pressure cleared: 20 %'],
    ]);
    expect(events[0]!.meta).toEqual({ source: 'pressure', resource: 'cpu', state: 'alarm', percent: 92.345, threshold_percent: 80, sustained_ms: 10_000, at: 1 });
  });

  describe('ACL violations', () => {
    afterEach(() => {
      vi.useRealTimers();
    });

    it('aggregates a flood of 10,000 violations into one row per actor per window', async () => {
      vi.useFakeTimers();
      await using t = await setup({ aclWindowMs: 10_000 });
      const actors = ['bot-a', 'bot-b', 'bot-c'];
      for (let i = 0; i < 10_000; i++) {
        const actor = actors[i % 3]!;
        emitLoose(t.bus, 'aclViolation', { bus: 'main', actor, topic: i % 10 === 0 ? 'control.shutdown' : `billing.${i % 4}`, control: i % 10 === 0, at: Date.now() });
      }
      expect(await t.events()).toEqual([]);
      await vi.advanceTimersByTimeAsync(10_000);
      const events = await t.events();
      expect(events).toHaveLength(3);
      const total = events.reduce((sum, e) => sum + (e.meta.count as number), 0);
      expect(total).toBe(10_000);
      const a = events.find((e) => e.meta.actor === 'bot-a')!;
      expect(a).toMatchObject({ module: 'message_bus', type: 'POLICY_VIOLATION', severity: 'CRITICAL' });
      expect(a.meta).toMatchObject({ source: 'acl_violations', count: 3_334, bus: 'main', window_ms: 10_000 });
      expect(a.message).toMatch(/^actor bot-a: 3334 ACL violations in 10 s \(\d+ on control topics\) on /);
      // The next window starts with the next violation; nothing is published while it is quiet.
      await vi.advanceTimersByTimeAsync(60_000);
      expect(await t.events()).toHaveLength(3);
      emitLoose(t.bus, 'aclViolation', { actor: 'bot-a', topic: 'billing.1', control: false });
      await vi.advanceTimersByTimeAsync(10_000);
      const after = await t.events();
      expect(after).toHaveLength(4);
      expect(after[3]).toMatchObject({ severity: 'WARNING', message: 'actor bot-a: 1 ACL violation in 10 s on billing.1' });
    });

    it('keeps rows bounded when thousands of actors violate: the rest share one row', async () => {
      vi.useFakeTimers();
      await using t = await setup({ aclMaxActorsPerWindow: 5 });
      for (let i = 0; i < 10_000; i++) emitLoose(t.bus, 'aclViolation', { actor: `actor-${i}`, topic: 'x', control: false });
      t.bridge.flush();
      const events = await t.events();
      expect(events).toHaveLength(6);
      expect(events.at(-1)!.meta).toMatchObject({ actor: '(other actors)', count: 9_995 });
    });

    it('records ACL alarms at most once per actor and reason per window', async () => {
      vi.useFakeTimers();
      await using t = await setup({ aclViolations: false });
      const alarm = (actor: string, reason = 'spam_attack', violations = 10) => ({
        reason,
        actor,
        offenders: ['bot', 'other'],
        topic: 'billing.x',
        violations,
        totalViolations: violations,
        violationsPerSecond: 10,
        controlViolations: 0,
        at: Date.now(),
      });
      for (let s = 0; s < 5; s++) {
        emitLoose(t.bus, 'aclAlarm', alarm('bot', 'spam_attack', 10 + s * 50));
        emitLoose(t.bus, 'aclAlarm', alarm('bot', 'actor_blacklist', 20 + s * 50));
        await vi.advanceTimersByTimeAsync(1_000);
      }
      emitLoose(t.bus, 'aclAlarm', alarm('other', 'control_topic_flood'));
      let events = await t.events();
      expect(events.map((e) => [e.meta.reason, e.meta.actor, e.severity])).toEqual([
        ['spam_attack', 'bot', 'WARNING'],
        ['actor_blacklist', 'bot', 'WARNING'],
        ['control_topic_flood', 'other', 'CRITICAL'],
      ]);
      expect(events[0]!.meta).toMatchObject({ source: 'acl_alarm', offenders: ['bot', 'other'], violations_per_second: 10 });
      await vi.advanceTimersByTimeAsync(10_000);
      emitLoose(t.bus, 'aclAlarm', alarm('bot', 'spam_attack', 900));
      events = await t.events();
      expect(events).toHaveLength(4);
      expect(events[3]!.message).toBe('ACL spam_attack by actor bot: 900 violations (10/s across all actors)');
    });

    it('publishes the open window when the bridge stops', async () => {
      const bus = new GuardBus();
      await using service = new ImmuneService();
      const bridge = bridgeGuardBus(bus, service);
      emitLoose(bus, 'aclViolation', { actor: 'late', topic: 'x', control: false });
      bridge();
      await bridge.settled();
      expect((await service.getRecentEvents({ limit: 10 })).map((e) => e.meta.actor)).toEqual(['late']);
    });
  });

  it('records playbook runs with their step results and whatever else the notice carries', async () => {
    await using t = await setup();
    const steps = [
      { id: 'blacklist', action: 'blacklist_actor', outcome: 'succeeded', durationMs: 2, output: { nested: true } },
      { id: 'rate_limit', action: 'rate_limit_topic', outcome: 'succeeded', durationMs: 1 },
      { id: 'restart_bus', action: 'restart_message_bus', outcome: 'skipped', durationMs: 0 },
      { id: 'notify', action: 'notify', outcome: 'failed', durationMs: 3, error: 'webhook 500' },
    ];
    // `steps` and `key` may not be declared on PlaybookRunNotice yet: the bridge maps whatever the notice carries.
    emitLoose(t.bus, 'playbookRun', {
      runId: 'run_9',
      playbook: 'message_bus_acl_violation_fix',
      status: 'succeeded',
      dryRun: false,
      startedAt: 1_000,
      finishedAt: 1_500,
      reason: 'spam_attack',
      steps,
      key: 'bot',
    });
    const [event] = await t.events();
    expect(event!.message).toBe('playbook message_bus_acl_violation_fix succeeded: spam_attack [4 steps: 2 succeeded, 1 skipped, 1 failed]');
    expect(event!.meta).toMatchObject({ run_id: 'run_9', key: 'bot', duration_ms: 500 });
    expect(event!.meta.steps).toEqual([
      { id: 'blacklist', action: 'blacklist_actor', outcome: 'succeeded', durationMs: 2, output: { nested: true } },
      { id: 'rate_limit', action: 'rate_limit_topic', outcome: 'succeeded', durationMs: 1 },
      { id: 'restart_bus', action: 'restart_message_bus', outcome: 'skipped', durationMs: 0 },
      { id: 'notify', action: 'notify', outcome: 'failed', durationMs: 3, error: 'webhook 500' },
    ]);
  });

  it("records the engine's run notice as it is: steps with status, rollback, verification; large results are dropped before the steps", async () => {
    await using t = await setup();
    const big = { rows: 'x'.repeat(2_000) };
    emitLoose(t.bus, 'playbookRun', {
      runId: 'run_10',
      playbook: 'resource_pressure_cpu',
      status: 'rolled_back',
      dryRun: false,
      startedAt: 0,
      finishedAt: 45_000,
      key: 'cpu',
      steps: Array.from({ length: 12 }, (_, i) => ({ id: `s${i}`, action: 'throttle', status: 'succeeded', durationMs: i, result: big })),
      rollback: [{ id: 'undo', action: 'clear_rate_limit', status: 'succeeded', durationMs: 1 }],
      verification: { passed: false, attempts: 45, checks: [{ id: 'cpu', probe: 'pressure.cpu_percent', value: 97, passed: false }] },
    });
    const [event] = await t.events();
    expect(event).toMatchObject({ severity: 'WARNING', type: 'SELF_HEALING_ACTION' });
    expect(event!.message).toBe('playbook resource_pressure_cpu rolled_back [12 steps: 12 succeeded; verification failed after 45 attempts]');
    const steps = event!.meta.steps as Record<string, unknown>[];
    expect(steps).toHaveLength(12);
    expect(steps[3]).toEqual({ id: 's3', action: 'throttle', status: 'succeeded', durationMs: 3 });
    expect(event!.meta).toMatchObject({ key: 'cpu', rollback: [{ id: 'undo', status: 'succeeded' }], verification: { passed: false, attempts: 45 } });
  });

  it('turns each source off on request', async () => {
    vi.useFakeTimers();
    try {
      await using t = await setup({ heartbeats: false, pressure: false, aclViolations: false, aclAlarms: false, playbookRuns: false });
      emitLoose(t.bus, 'heartbeat', { kind: 'crash_loop', component: 'x', reason: 'r', at: 1 });
      emitLoose(t.bus, 'resourcePressure', { resource: 'cpu', state: 'alarm', percent: 99, thresholdPercent: 80, sustainedMs: 1, at: 1 });
      emitLoose(t.bus, 'aclViolation', { actor: 'a', topic: 'x', control: false });
      emitLoose(t.bus, 'aclAlarm', { reason: 'spam_attack', actor: 'a' });
      t.bus.emit('playbookRun', { runId: 'r', playbook: 'p', status: 'succeeded', dryRun: false, startedAt: 1, finishedAt: 2 });
      await vi.advanceTimersByTimeAsync(20_000);
      expect(await t.events()).toEqual([]);
    } finally {
      vi.useRealTimers();
    }
  });

  it('logs malformed monitor payloads instead of throwing into the bus', async () => {
    const lines: string[] = [];
    await using t = await setup({ logger: createJsonLogger({ level: 'warn', write: (l) => lines.push(l) }) });
    expect(() => emitLoose(t.bus, 'heartbeat', { kind: 'missed' } as never)).not.toThrow();
    expect(() => emitLoose(t.bus, 'resourcePressure', { resource: 'cpu', state: 'alarm' } as never)).not.toThrow();
    expect(() => emitLoose(t.bus, 'aclViolation', null as never)).not.toThrow();
    expect(await t.events()).toEqual([]);
    expect(lines.filter((l) => l.includes('immune bridge could not map an event'))).toHaveLength(3);
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
    for (const event of ['heartbeat', 'resourcePressure', 'aclViolation', 'aclAlarm', 'playbookRun']) expect(bus.listenerCount(event as never)).toBe(0);
  });

  it('classifies policy breaches by pattern or component', () => {
    expect(classifyDetection(detection({ pattern: 'rate_limit_exceeded' }))).toBe('POLICY_VIOLATION');
    expect(classifyDetection(detection({ component: 'acl' }))).toBe('POLICY_VIOLATION');
    expect(classifyDetection(detection({ component: 'db', pattern: 'connection_orphan' }))).toBe('ERROR_SPIKE');
  });
  it('records the memory guardrail audit: threshold changes and failed restarts', async () => {
    await using t = await setup();
    emitLoose(t.bus, 'memoryThresholdsChanged', {
      name: 'api',
      previous: { rssThresholdMb: 700 },
      current: { rssThresholdMb: 900 },
      changed: ['rssThresholdMb'],
      source: 'http',
      remoteAddress: '127.0.0.1',
      at: 5,
    });
    emitLoose(t.bus, 'memoryRestart', { name: 'api', reason: 'rss_threshold', outcome: 'failed', failure: 'survived', retryAfterMs: 1_000, at: 6 });
    const [change, restart] = await t.events();
    expect(change).toMatchObject({ module: 'memory', severity: 'INFO', meta: { source: 'memory_thresholds', changed: ['rssThresholdMb'], changed_by: 'http', current: { rssThresholdMb: 900 } } });
    expect(restart).toMatchObject({ module: 'memory', severity: 'CRITICAL', type: 'SELF_HEALING_ACTION', meta: { outcome: 'failed', failure: 'survived' } });
    expect(restart!.message).toContain('failed (survived)');
  });

  it('says in the immune log that a restart waits for the fleet restart budget', async () => {
    await using t = await setup();
    emitLoose(t.bus, 'memoryRestart', { name: 'api', reason: 'predicted_breach', outcome: 'skipped', skipped: 'fleet_budget', retryAfterMs: 60_000, at: 7 });
    const [wait] = await t.events();
    expect(wait).toMatchObject({ module: 'memory', severity: 'WARNING', meta: { outcome: 'skipped', skipped: 'fleet_budget', retry_after_ms: 60_000 } });
    expect(wait!.message).toContain('waiting for the fleet restart budget');
  });

  it('leaves the memory audit out when memoryAudit is false', async () => {
    await using t = await setup({ memoryAudit: false });
    emitLoose(t.bus, 'memoryRestart', { name: 'api', reason: 'manual', outcome: 'started', at: 1 });
    expect(await t.events()).toEqual([]);
  });
});
