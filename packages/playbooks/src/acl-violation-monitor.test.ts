import { GuardBus } from '@guard/core';
import type { Logger } from '@guard/core';
import { Registry } from 'prom-client';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import type { AclAlarm } from './acl-violation-monitor.js';
import { AclViolationMonitor, LEGACY_ACL_ALARM_REASONS } from './acl-violation-monitor.js';
import { MessageBus } from './message-bus.js';
import type { PlaybookTrigger } from './playbook-types.js';

beforeEach(() => {
  vi.useFakeTimers();
  vi.setSystemTime(5_000_000);
});
afterEach(() => {
  vi.useRealTimers();
});

function setup(options: Partial<ConstructorParameters<typeof AclViolationMonitor>[0]> = {}) {
  const messageBus = new MessageBus({ registry: new Registry(), acl: { good: ['orders.*'] } });
  const triggered: [string, Readonly<Record<string, unknown>>, unknown][] = [];
  const engine: PlaybookTrigger = {
    async trigger(event, data, opts) {
      triggered.push([event, data, opts]);
      return [];
    },
  };
  const monitor = new AclViolationMonitor({ messageBus, engine, ...options });
  const alarms: AclAlarm[] = [];
  monitor.onAlarm((a) => alarms.push(a));
  return {
    messageBus,
    monitor,
    alarms,
    triggered,
    advance: (ms: number) => vi.advanceTimersByTime(ms),
    deny: (actor: string, topic = 'billing.x') => expect(messageBus.publish(actor, topic)).toBe('denied'),
    of: (reason: AclAlarm['reason']) => alarms.filter((a) => a.reason === reason).map((a) => a.actor),
    async [Symbol.asyncDispose]() {
      await monitor.close();
      await messageBus.close();
    },
  };
}

describe('AclViolationMonitor', () => {
  it('a listener that throws or rejects is logged; the others still get the alarm; a subscription ends delivery', async () => {
    const errors: string[] = [];
    const logger = { error: (_: unknown, msg: string) => errors.push(msg), warn() {}, info() {}, debug() {} } as unknown as Logger;
    await using s = setup({ logger, spamThreshold: 1 });
    s.monitor.onAlarm(() => {
      throw new Error('broken dashboard');
    });
    s.monitor.onAlarm(() => Promise.reject(new Error('broken async dashboard')));
    const late: string[] = [];
    const sub = s.monitor.onAlarm((a) => late.push(a.actor));
    s.deny('x');
    await vi.advanceTimersByTimeAsync(0);
    expect(s.of('spam_attack')).toEqual(['x']);
    expect(late).toEqual(['x']);
    expect(errors.filter((m) => m === 'AclViolationMonitor listener threw')).toHaveLength(2);
    sub();
    s.advance(2_000);
    s.deny('y');
    expect(s.of('spam_attack')).toEqual(['x', 'y']);
    expect(late).toEqual(['x']);
  });

  it('raises spam_attack at the 10th violation of one actor within 1 s, with the full alarm contract', async () => {
    await using s = setup();
    for (let i = 0; i < 9; i++) s.deny('bot');
    expect(s.alarms).toHaveLength(0);
    s.deny('bot');
    expect(s.alarms).toEqual([
      {
        reason: 'spam_attack',
        actor: 'bot',
        offenders: ['bot'],
        topic: 'billing.x',
        violations: 10,
        totalViolations: 10,
        violationsPerSecond: 10,
        actorViolationsPerSecond: 10,
        controlViolations: 0,
        at: 5_000_000,
      },
    ]);
    expect(s.triggered).toEqual([['message_bus.acl_violation', expect.objectContaining({ reason: 'spam_attack', actor: 'bot' }), { reason: 'spam_attack' }]]);
    expect(s.monitor.violationsPerSecond()).toBe(10);
  });

  it('raises spam_attack for ten actors with one violation each within 1 s, one alarm per actor', async () => {
    await using s = setup();
    const actors = Array.from({ length: 10 }, (_, i) => `bot-${i}`);
    for (const actor of actors.slice(0, 9)) {
      s.deny(actor);
      s.advance(100);
    }
    expect(s.alarms).toHaveLength(0);
    s.deny(actors[9]!);
    expect(s.of('spam_attack').sort()).toEqual([...actors].sort());
    for (const alarm of s.alarms) {
      expect(alarm).toMatchObject({ violationsPerSecond: 10, totalViolations: 10, violations: 1, actorViolationsPerSecond: 1 });
      expect([...alarm.offenders].sort()).toEqual([...actors].sort());
    }
    expect(s.triggered).toHaveLength(10);
  });

  it('lists offenders most violations first, capped at maxOffenders', async () => {
    await using s = setup({ maxOffenders: 2 });
    for (let i = 0; i < 3; i++) s.deny('medium');
    for (let i = 0; i < 5; i++) s.deny('heavy');
    s.deny('light');
    s.deny('light');
    expect(s.alarms.length).toBeGreaterThan(0);
    expect(s.alarms.at(-1)!.offenders).toEqual(['heavy', 'medium']);
    expect(s.monitor.offenders()).toEqual(['heavy', 'medium']);
    // Only the two heaviest were alarmed when the shared rule first held; "light" is alarmed on its own violation.
    expect(new Set(s.of('spam_attack'))).toEqual(new Set(['heavy', 'medium', 'light']));
  });

  it('uses a sliding window, not fixed buckets', async () => {
    await using s = setup();
    for (let i = 0; i < 9; i++) s.deny('bot');
    s.advance(999);
    s.deny('bot');
    expect(s.of('spam_attack')).toEqual(['bot']);

    await using t = setup();
    for (let i = 0; i < 9; i++) t.deny('other');
    t.advance(1_000);
    t.deny('other');
    expect(t.of('spam_attack')).toEqual([]);
    expect(t.monitor.violationsPerSecond()).toBe(1);
  });

  it('raises actor_blacklist at 20 violations of one actor within the window, even when spread out', async () => {
    await using s = setup();
    for (let i = 0; i < 19; i++) {
      s.deny('slow');
      s.advance(2_000);
    }
    expect(s.alarms).toHaveLength(0);
    expect(s.monitor.violationsOf('slow')).toBe(19);
    s.deny('slow');
    expect(s.alarms.map((a) => [a.reason, a.actor, a.violations])).toEqual([['actor_blacklist', 'slow', 20]]);
  });

  it('raises control_topic_flood at 5 control-topic violations from any actors, alarming each of them', async () => {
    const bus = new GuardBus();
    const notices: AclAlarm[] = [];
    bus.on('aclAlarm', (a) => notices.push(a));
    await using s = setup({ bus });
    for (const actor of ['a', 'b', 'c', 'd']) s.deny(actor, 'control.shutdown');
    expect(s.alarms).toHaveLength(0);
    s.deny('e', 'control.shutdown');
    expect(s.of('control_topic_flood').sort()).toEqual(['a', 'b', 'c', 'd', 'e']);
    expect(s.alarms.every((a) => a.controlViolations === 5 && a.topic === 'control.shutdown')).toBe(true);
    expect(notices).toHaveLength(5);
  });

  it('alarms a second attacker who starts while the first attack goes on (armed per actor)', async () => {
    await using s = setup();
    for (let i = 0; i < 20; i++) s.deny('first');
    expect(s.of('spam_attack')).toEqual(['first']);
    expect(s.of('actor_blacklist')).toEqual(['first']);
    // The first attacker's playbook run is verifying; a second attacker starts within the same second.
    s.advance(300);
    for (let i = 0; i < 20; i++) {
      s.deny('second');
      s.deny('first');
    }
    expect(s.of('spam_attack')).toEqual(['first', 'second']);
    expect(s.of('actor_blacklist')).toEqual(['first', 'second']);
    const secondBlacklist = s.alarms.find((a) => a.reason === 'actor_blacklist' && a.actor === 'second')!;
    expect(secondBlacklist).toMatchObject({ violations: 20, offenders: ['first', 'second'] });
  });

  it('re-raises at most once per second per actor while the attack goes on, with updated counts', async () => {
    await using s = setup();
    // 50 violations per second for 6 s: one spam and one blacklist alarm per second at most.
    for (let second = 0; second < 6; second++) {
      for (let i = 0; i < 50; i++) {
        s.deny('flooder');
        s.advance(20);
      }
    }
    const spam = s.alarms.filter((a) => a.reason === 'spam_attack');
    const blacklist = s.alarms.filter((a) => a.reason === 'actor_blacklist');
    expect(spam.length).toBeGreaterThanOrEqual(5);
    expect(spam.length).toBeLessThanOrEqual(6);
    expect(blacklist.length).toBeGreaterThanOrEqual(5);
    expect(blacklist.length).toBeLessThanOrEqual(6);
    for (let i = 1; i < spam.length; i++) expect(spam[i]!.at - spam[i - 1]!.at).toBeGreaterThanOrEqual(1_000);
    // Counts grow with the attack, so a playbook condition `totalViolations > 200` becomes true.
    expect(blacklist.at(-1)!.totalViolations).toBeGreaterThan(200);
    expect(blacklist.at(-1)!.violations).toBeGreaterThan(200);
    // Once the attack stops, nothing more is raised.
    const before = s.alarms.length;
    s.advance(10_000);
    expect(s.alarms).toHaveLength(before);
  });

  it('caps alarms per second; actors over the budget are alarmed once there is room', async () => {
    await using s = setup({ maxAlarmsPerSecond: 5 });
    const actors = Array.from({ length: 12 }, (_, i) => `bot-${i}`);
    for (let round = 0; round < 10; round++) {
      for (const actor of actors) {
        s.deny(actor);
        s.advance(80);
      }
    }
    const times = s.alarms.map((a) => a.at);
    for (const t of times) expect(times.filter((u) => u > t - 1_000 && u <= t).length).toBeLessThanOrEqual(5);
    expect(new Set(s.of('spam_attack'))).toEqual(new Set(actors));
    expect(s.monitor.stats().suppressedAlarms).toBeGreaterThan(0);
  });

  it('stays fast under a flood of distinct actors', async () => {
    await using s = setup();
    const cpu = process.cpuUsage(); // real CPU time: the fake timers also fake performance.now()
    for (let i = 0; i < 20_000; i++) {
      s.messageBus.publish(`botnet-${i}`, 'billing.x');
      if (i % 20 === 0) s.advance(1);
    }
    const used = process.cpuUsage(cpu);
    const ms = (used.user + used.system) / 1000;
    console.log(`20 000 violations of 20 000 distinct actors: ${ms.toFixed(0)} ms of CPU, ${s.alarms.length} alarms, ${s.monitor.stats().suppressedAlarms} over budget`);
    expect(s.monitor.stats()).toMatchObject({ violations: 20_000, trackedActors: 10_000 });
    // At most 200 alarms in any second of the (fake) 1000 ms the flood took.
    expect(s.alarms.length).toBeLessThanOrEqual(400);
    expect(s.alarms.at(-1)!.offenders).toHaveLength(100);
  });

  it('takes thresholds from options and from the environment', async () => {
    await using s = setup({ spamThreshold: 3, spamWindowMs: 100 });
    for (let i = 0; i < 3; i++) s.deny('x');
    expect(s.of('spam_attack')).toEqual(['x']);
    await using u = setup({ actorSpamThreshold: 3, spamThreshold: 100 });
    for (let i = 0; i < 3; i++) u.deny('y');
    expect(u.of('spam_attack')).toEqual(['y']);
    expect(
      AclViolationMonitor.optionsFromEnv({ GUARD_ACL_THRESHOLDS: 'spam=5,actor_spam=4,blacklist=50,control_flood=2', GUARD_ACL_SPAM_WINDOW: '2s', GUARD_ACL_REALARM_INTERVAL: '5s' }),
    ).toMatchObject({
      spamThreshold: 5,
      actorSpamThreshold: 4,
      blacklistThreshold: 50,
      controlFloodThreshold: 2,
      spamWindowMs: 2_000,
      blacklistWindowMs: 60_000,
      reraiseIntervalMs: 5_000,
    });
    expect(() => AclViolationMonitor.optionsFromEnv({ GUARD_ACL_THRESHOLDS: 'spam=0' })).toThrow(expect.objectContaining({ code: 'INVALID_ENV' }));
    expect(() => AclViolationMonitor.optionsFromEnv({ GUARD_ACL_THRESHOLDS: 'nope=1' })).toThrow(expect.objectContaining({ code: 'INVALID_ENV' }));
    expect(LEGACY_ACL_ALARM_REASONS).toEqual({ spam: 'spam_attack', blacklist: 'actor_blacklist', control_flood: 'control_topic_flood' });
  });

  it('logs alarms without fields a pino logger owns', async () => {
    const logged: Record<string, unknown>[] = [];
    const logger = { warn: (obj: Record<string, unknown>) => logged.push(obj), info() {}, error() {}, debug() {} } as unknown as Logger;
    await using s = setup({ logger });
    for (let i = 0; i < 10; i++) s.deny('bot');
    expect(logged).toHaveLength(1);
    for (const key of ['level', 'time', 'msg', 'pid', 'hostname']) expect(logged[0]).not.toHaveProperty(key);
    expect(logged[0]).toMatchObject({ reason: 'spam_attack', actor: 'bot', violations: 10 });
  });

  it('validates options and stops listening on close', async () => {
    expect(() => new AclViolationMonitor({} as never)).toThrow(expect.objectContaining({ code: 'INVALID_OPTION' }));
    await using s = setup();
    expect(() => new AclViolationMonitor({ messageBus: s.messageBus, spamThreshold: 0 })).toThrow(expect.objectContaining({ code: 'INVALID_OPTION' }));
    expect(() => new AclViolationMonitor({ messageBus: s.messageBus, reraiseIntervalMs: 0.5 })).toThrow(expect.objectContaining({ code: 'INVALID_OPTION' }));
    await s.monitor.close();
    await s.monitor.close();
    for (let i = 0; i < 20; i++) s.deny('bot');
    expect(s.alarms).toHaveLength(0);
    expect(s.monitor.stats().violations).toBe(0);
  });

  it('forgets the least recently seen actors beyond maxTrackedActors', async () => {
    await using s = setup({ maxTrackedActors: 2 });
    s.deny('a');
    s.deny('b');
    s.deny('c');
    expect(s.monitor.stats().trackedActors).toBe(2);
    expect(s.monitor.violationsOf('a')).toBe(0);
    expect(s.monitor.violationsOf('c')).toBe(1);
    expect(s.monitor.violationsOf()).toBe(3);
  });
});
