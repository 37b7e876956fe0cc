import { join } from 'node:path';
import { GuardBus } from '@guard/core';
import type { PlaybookStepNotice } from '@guard/core';
import { Registry } from 'prom-client';
import { describe, expect, it } from 'vitest';
import { AclViolationMonitor } from './acl-violation-monitor.js';
import { createActionRegistry, createProbeRegistry } from './builtin-actions.js';
import type { FollowUpTask } from './builtin-actions.js';
import { builtinPlaybooksDir, loadPlaybookFile } from './load-playbooks.js';
import { MessageBus } from './message-bus.js';
import { PlaybookEngine } from './playbook-engine.js';

describe('message_bus_acl_violation_fix.yaml', () => {
  it('restarts the bus above 200 violations, rate-limits the topic and files a follow-up', async () => {
    const bus = new GuardBus();
    const steps: PlaybookStepNotice[] = [];
    bus.on('playbookStep', (s) => steps.push(s));
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
    const [run] = await engine.trigger('message_bus.acl_violation', { reason: 'blacklist', actor: 'flood', topic: 'orders.refund', violations: 250 });
    expect(run!.status).toBe('succeeded');
    expect(run!.steps.map((s) => `${s.id}:${s.outcome}`)).toEqual([
      'assess:succeeded',
      'blacklist:succeeded',
      'rate_limit:succeeded',
      'restart_bus:succeeded',
      'notify:succeeded',
      'follow_up:succeeded',
    ]);
    expect(messageBus.isBlacklisted('flood')).toBe(true);
    expect(messageBus.health()).toMatchObject({ restarts: 1, rateLimits: [expect.objectContaining({ topic: 'orders.refund', ratePerSec: 10 })] });
    expect(followUps).toEqual([expect.objectContaining({ title: 'Review ACL violations of actor flood', queue: 'security', details: { actor: 'flood', topic: 'orders.refund', violations: 250 } })]);
    expect(steps.at(-1)).toMatchObject({ step: 'verify', outcome: 'succeeded' });
    // Other reasons are not this playbook's business.
    expect(await engine.trigger('message_bus.acl_violation', { reason: 'other', actor: 'x' })).toEqual([]);
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
    const [run] = await logged.trigger('message_bus.acl_violation', { reason: 'spam', actor: 'bot', topic: 'control.x', violations: 12 });
    expect(run!.steps.map((s) => s.outcome)).toEqual(['planned', 'planned', 'planned', 'skipped', 'planned', 'planned']);
    expect(messageBus.isBlacklisted('bot')).toBe(false);
    expect(messageBus.health().rateLimits).toEqual([]);
    expect(lines.join('\n')).toContain('2. blacklist: blacklist_actor {"actor":"bot","duration":"10min"}');
  });
});
