import { GuardBus } from '@guard/core';
import { Registry } from 'prom-client';
import { describe, expect, it } from 'vitest';
import type { AclAlarm } from './acl-violation-monitor.js';
import { AclViolationMonitor } from './acl-violation-monitor.js';
import { MessageBus } from './message-bus.js';
import type { PlaybookTrigger } from './playbook-types.js';

function setup(options: Partial<ConstructorParameters<typeof AclViolationMonitor>[0]> = {}) {
  let t = 5_000_000;
  const now = (): number => t;
  const messageBus = new MessageBus({ registry: new Registry(), acl: { good: ['orders.*'] }, now });
  const triggered: [string, Readonly<Record<string, unknown>>, unknown][] = [];
  const engine: PlaybookTrigger = {
    async trigger(event, data, opts) {
      triggered.push([event, data, opts]);
      return [];
    },
  };
  const monitor = new AclViolationMonitor({ messageBus, engine, now, ...options });
  const alarms: AclAlarm[] = [];
  monitor.onAlarm((a) => alarms.push(a));
  return {
    messageBus,
    monitor,
    alarms,
    triggered,
    advance: (ms: number) => void (t += ms),
    deny: (actor: string, topic = 'billing.x') => messageBus.publish(actor, topic),
    async [Symbol.asyncDispose]() {
      await monitor.close();
      await messageBus.close();
    },
  };
}

describe('AclViolationMonitor', () => {
  it('raises spam at the 10th violation within 1 s and triggers the ACL playbook with the reason', async () => {
    await using s = setup();
    for (let i = 0; i < 9; i++) s.deny('bot');
    expect(s.alarms).toHaveLength(0);
    s.deny('bot');
    expect(s.alarms.map((a) => a.reason)).toEqual(['spam']);
    expect(s.alarms[0]).toMatchObject({ actor: 'bot', topic: 'billing.x', violationsPerSecond: 10, violations: 10 });
    expect(s.triggered).toEqual([['message_bus.acl_violation', expect.objectContaining({ reason: 'spam', actor: 'bot' }), { reason: 'spam' }]]);
    expect(s.monitor.violationsPerSecond()).toBe(10);
  });

  it('uses a sliding window, not fixed buckets', async () => {
    await using s = setup();
    for (let i = 0; i < 9; i++) s.deny('bot');
    s.advance(999);
    s.deny('bot');
    expect(s.alarms.map((a) => a.reason)).toEqual(['spam']);

    await using t = setup();
    for (let i = 0; i < 9; i++) t.deny('bot');
    t.advance(1_000);
    t.deny('bot');
    expect(t.alarms).toHaveLength(0);
    expect(t.monitor.violationsPerSecond()).toBe(1);
  });

  it('counts per actor and re-arms after the count falls below the threshold', async () => {
    await using s = setup();
    for (let i = 0; i < 5; i++) {
      s.deny('a');
      s.deny('b');
    }
    expect(s.alarms).toHaveLength(0);
    for (let i = 0; i < 5; i++) s.deny('a');
    expect(s.alarms.map((a) => [a.reason, a.actor])).toEqual([['spam', 'a']]);
    for (let i = 0; i < 3; i++) s.deny('a');
    expect(s.alarms).toHaveLength(1);
    s.advance(1_500);
    s.deny('a');
    for (let i = 0; i < 9; i++) s.deny('a');
    expect(s.alarms.map((a) => a.reason)).toEqual(['spam', 'blacklist', 'spam']);
  });

  it('raises blacklist at 20 violations of one actor within the window, even when spread out', async () => {
    await using s = setup();
    for (let i = 0; i < 19; i++) {
      s.deny('slow');
      s.advance(2_000);
    }
    expect(s.alarms).toHaveLength(0);
    expect(s.monitor.violationsOf('slow')).toBe(19);
    s.deny('slow');
    expect(s.alarms.map((a) => [a.reason, a.violations])).toEqual([['blacklist', 20]]);
  });

  it('raises control_flood at 5 control-topic violations from any actors', async () => {
    const bus = new GuardBus();
    const notices: AclAlarm[] = [];
    bus.on('aclAlarm', (a) => notices.push(a));
    await using s = setup({ bus });
    for (const actor of ['a', 'b', 'c', 'd']) s.deny(actor, 'control.shutdown');
    expect(s.alarms).toHaveLength(0);
    s.deny('e', 'control.shutdown');
    expect(s.alarms.map((a) => [a.reason, a.actor, a.controlViolations])).toEqual([['control_flood', 'e', 5]]);
    expect(notices).toHaveLength(1);
  });

  it('takes thresholds from options and from the environment', async () => {
    await using s = setup({ spamThreshold: 3, spamWindowMs: 100 });
    for (let i = 0; i < 3; i++) s.deny('x');
    expect(s.alarms.map((a) => a.reason)).toEqual(['spam']);
    expect(AclViolationMonitor.optionsFromEnv({ GUARD_ACL_THRESHOLDS: 'spam=5,blacklist=50,control_flood=2', GUARD_ACL_SPAM_WINDOW: '2s' })).toMatchObject({
      spamThreshold: 5,
      blacklistThreshold: 50,
      controlFloodThreshold: 2,
      spamWindowMs: 2_000,
      blacklistWindowMs: 60_000,
    });
    expect(() => AclViolationMonitor.optionsFromEnv({ GUARD_ACL_THRESHOLDS: 'spam=0' })).toThrow(expect.objectContaining({ code: 'INVALID_ENV' }));
    expect(() => AclViolationMonitor.optionsFromEnv({ GUARD_ACL_THRESHOLDS: 'nope=1' })).toThrow(expect.objectContaining({ code: 'INVALID_ENV' }));
  });

  it('validates options and stops listening on close', async () => {
    expect(() => new AclViolationMonitor({} as never)).toThrow(expect.objectContaining({ code: 'INVALID_OPTION' }));
    await using s = setup();
    expect(() => new AclViolationMonitor({ messageBus: s.messageBus, spamThreshold: 0 })).toThrow(expect.objectContaining({ code: 'INVALID_OPTION' }));
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
  });
});
