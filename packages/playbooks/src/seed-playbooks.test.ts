import { join } from 'node:path';
import { GuardBus } from '@guard/core';
import type { PlaybookRunNotice, PlaybookStepNotice } from '@guard/core';
import { Registry } from 'prom-client';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { ACL_ALARM_EVENT, AclViolationMonitor } from './acl-violation-monitor.js';
import { createActionRegistry, createProbeRegistry } from './builtin-actions.js';
import type { FollowUpTask } from './builtin-actions.js';
import { builtinPlaybooksDir, loadPlaybookFile } from './load-playbooks.js';
import { MessageBus } from './message-bus.js';
import { PlaybookEngine } from './playbook-engine.js';

describe('message_bus_acl_violation_fix.yaml', () => {
  afterEach(() => {
    vi.useRealTimers();
  });

  it('blacklists every offender, throttles only the main offender, restarts the bus above 200 and verifies quiet + canary', async () => {
    vi.useFakeTimers();
    const bus = new GuardBus();
    const steps: PlaybookStepNotice[] = [];
    const notices: PlaybookRunNotice[] = [];
    bus.on('playbookStep', (s) => steps.push(s));
    bus.on('playbookRun', (n) => notices.push(n));
    await using messageBus = new MessageBus({ registry: new Registry(), acl: { api: ['orders.*'] } });
    await using monitor = new AclViolationMonitor({ messageBus });
    const followUps: FollowUpTask[] = [];
    await using engine = new PlaybookEngine({
      bus,
      registry: new Registry(),
      actions: createActionRegistry({ messageBus, onFollowUp: (t) => void followUps.push(t) }),
      probes: createProbeRegistry({ messageBus, aclMonitor: monitor }),
      playbooks: [await loadPlaybookFile(join(builtinPlaybooksDir(), 'message_bus_acl_violation_fix.yaml'))],
    });
    const delivered: string[] = [];
    messageBus.subscribe('orders.refund', (_p, actor) => delivered.push(actor));
    for (const actor of ['flood', 'flood', 'bot2', 'bot3']) messageBus.publish(actor, 'orders.refund');
    const alarm = { reason: 'actor_blacklist', actor: 'flood', offenders: ['flood', 'bot2', 'bot3'], topic: 'orders.refund', violations: 150, totalViolations: 250, violationsPerSecond: 40, actorViolationsPerSecond: 20, controlViolations: 0, at: Date.now() };
    const pending = engine.trigger('message_bus.acl_violation', alarm);
    await vi.advanceTimersByTimeAsync(2_500);
    const [run] = await pending;
    expect(run!.status).toBe('succeeded');
    expect(run!.steps.map((s) => `${s.id}:${s.outcome}`)).toEqual([
      'assess:succeeded',
      'blacklist:succeeded',
      'blacklist_offenders:succeeded',
      'rate_limit:succeeded',
      'restart_bus:succeeded',
      'notify:succeeded',
      'follow_up:succeeded',
    ]);
    expect(run!.before).toMatchObject({ passed: true, checks: [{ id: 'violations_present', value: 4 }] });
    expect(run!.verification).toMatchObject({ passed: true, checks: [{ id: 'no_new_violations', value: 0 }, { id: 'canary_delivered', value: true }] });
    expect(run!.after).toMatchObject({ passed: true });
    for (const actor of ['flood', 'bot2', 'bot3']) expect(messageBus.publish(actor, 'orders.refund')).toBe('blacklisted');
    // Only the offender is throttled on the topic; the legitimate publisher is not.
    expect(messageBus.health()).toMatchObject({ restarts: 1, rateLimits: [], actorRateLimits: [expect.objectContaining({ actor: 'flood', topic: 'orders.refund', ratePerSec: 1 })] });
    for (let i = 0; i < 30; i++) expect(messageBus.publish('api', 'orders.refund')).toBe('delivered');
    expect(delivered).toHaveLength(30);
    expect(run!.steps[4]!.output).toMatchObject({ subscribersReattached: 3, blacklistKept: 3, canaryDelivered: true });
    expect(followUps).toEqual([expect.objectContaining({ title: 'Review ACL violations of actor flood', queue: 'security', details: { actor: 'flood', offenders: ['flood', 'bot2', 'bot3'], topic: 'orders.refund', violations: 150 } })]);
    expect(steps.at(-1)).toMatchObject({ step: 'after', outcome: 'succeeded' });
    // The run notice (journaled by the immune bridge) carries every step's result.
    const notice = notices.find((n) => n.status === 'succeeded')!;
    expect(notice).toMatchObject({ key: 'flood', verification: { passed: true } });
    expect(notice.steps!.find((s) => s.id === 'blacklist_offenders')).toMatchObject({ status: 'succeeded', result: { succeeded: 3, failed: 0 } });
    // Other reasons are not this playbook's business; the 0.1 reason names are still accepted.
    expect(await engine.trigger('message_bus.acl_violation', { reason: 'other', actor: 'x' })).toEqual([]);
    const legacy = engine.trigger('message_bus.acl_violation', { reason: 'blacklist', actor: 'old-style', topic: 'orders.refund', violations: 21 });
    await vi.advanceTimersByTimeAsync(100);
    const [old] = await legacy;
    expect(old).toMatchObject({ status: 'succeeded', key: 'old-style' });
    expect(old!.steps.find((s) => s.id === 'blacklist_offenders')!.outcome).toBe('skipped');
  });

  it('the > 200 restart is reachable from the real monitor: a botnet of new actors whose total crosses 200 gets the bus restarted', async () => {
    vi.useFakeTimers();
    const bus = new GuardBus();
    await using messageBus = new MessageBus({ registry: new Registry(), acl: { api: ['orders.*'] } });
    await using monitor = new AclViolationMonitor({ messageBus, bus });
    await using engine = new PlaybookEngine({
      bus,
      registry: new Registry(),
      historySize: 1_000,
      actions: createActionRegistry({ messageBus, onFollowUp: () => undefined }),
      probes: createProbeRegistry({ messageBus, aclMonitor: monitor }),
      playbooks: [await loadPlaybookFile(join(builtinPlaybooksDir(), 'message_bus_acl_violation_fix.yaml'))],
    });
    const pending: Promise<unknown>[] = [];
    monitor.onAlarm((alarm) => void pending.push(engine.trigger(ACL_ALARM_EVENT, { ...alarm }, { reason: alarm.reason })));
    // New bots keep arriving (10 every 200 ms, one denied publish each): blacklisting the ones seen so far
    // cannot stop the ones to come, so the window's total crosses 200.
    for (let wave = 0; wave < 25; wave++) {
      for (let i = 0; i < 10; i++) messageBus.publish(`bot-${wave * 10 + i}`, 'orders.refund_all');
      await vi.advanceTimersByTimeAsync(200);
    }
    await vi.advanceTimersByTimeAsync(5_000);
    await Promise.all(pending);
    const runs = engine.runs().filter((r) => r.status !== 'skipped');
    expect(runs.length).toBeGreaterThan(0);
    expect(runs.every((r) => r.status === 'succeeded')).toBe(true);
    expect(runs.some((r) => r.steps.some((x) => x.id === 'restart_bus' && x.outcome === 'succeeded'))).toBe(true);
    expect(messageBus.health().restarts).toBeGreaterThan(0);
    for (let bot = 0; bot < 250; bot++) expect(messageBus.publish(`bot-${bot}`, 'orders.refund_all')).toBe('blacklisted');
  });

  it('fails verification while an offender keeps violating, and rolls back', async () => {
    vi.useFakeTimers();
    await using messageBus = new MessageBus({ registry: new Registry(), acl: { api: ['orders.*'] } });
    await using monitor = new AclViolationMonitor({ messageBus });
    const playbook = await loadPlaybookFile(join(builtinPlaybooksDir(), 'message_bus_acl_violation_fix.yaml'));
    await using engine = new PlaybookEngine({
      registry: new Registry(),
      actions: createActionRegistry({ messageBus }),
      probes: createProbeRegistry({ messageBus, aclMonitor: monitor }),
      playbooks: [playbook],
    });
    // An attacker the alarm does not name (not in offenders) keeps publishing: violations never stop.
    const attack = setInterval(() => messageBus.publish('unknown', 'control.x'), 100);
    await vi.advanceTimersByTimeAsync(300);
    const pending = engine.trigger('message_bus.acl_violation', { reason: 'spam_attack', actor: 'flood', offenders: ['flood'], topic: 'control.x', violations: 12, totalViolations: 12 });
    await vi.advanceTimersByTimeAsync(25_000);
    clearInterval(attack);
    const [run] = await pending;
    expect(run).toMatchObject({ status: 'rolled_back', verification: { passed: false } });
    expect(run!.rollback.map((s) => `${s.id}:${s.outcome}`)).toEqual(['lift_rate_limit:succeeded', 'escalate:succeeded']);
    expect(messageBus.health().actorRateLimits).toEqual([]);
  });

  it('dry-run prints the plan and changes nothing', async () => {
    await using messageBus = new MessageBus({ registry: new Registry() });
    await using monitor = new AclViolationMonitor({ messageBus });
    await using engine = new PlaybookEngine({
      registry: new Registry(),
      dryRun: true,
      actions: createActionRegistry({ messageBus }),
      probes: createProbeRegistry({ messageBus, aclMonitor: monitor }),
      playbooks: [await loadPlaybookFile(join(builtinPlaybooksDir(), 'message_bus_acl_violation_fix.yaml'))],
    });
    const lines: string[] = [];
    const logged = new PlaybookEngine({
      registry: new Registry(),
      dryRun: true,
      logger: { debug() {}, warn() {}, error() {}, info: (_o, msg) => void lines.push(msg ?? '') },
      actions: engine.actions,
      probes: engine.probes,
      playbooks: engine.playbooks(),
    });
    await using _l = logged;
    const [run] = await logged.trigger('message_bus.acl_violation', { reason: 'spam_attack', actor: 'bot', offenders: ['bot', 'bot2'], topic: 'control.x', violations: 12, totalViolations: 14 });
    expect(run!.steps.map((s) => s.outcome)).toEqual(['planned', 'planned', 'planned', 'planned', 'skipped', 'planned', 'planned']);
    expect(messageBus.isBlacklisted('bot')).toBe(false);
    expect(messageBus.health().actorRateLimits).toEqual([]);
    expect(lines.join('\n')).toContain('2. blacklist: blacklist_actor {"actor":"bot","duration":"10min"}');
    expect(lines.join('\n')).toContain('3. blacklist_offenders: blacklist_actor {"actor":"bot","duration":"10min"} for each of ["bot","bot2"]');
  });
});
