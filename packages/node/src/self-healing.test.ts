import { Registry } from 'prom-client';
import { describe, expect, it } from 'vitest';
import { silentLogger, type PlaybookRunNotice } from '@guard/core';
import { createGuard } from './index.js';
import { until } from '../test/support.js';

describe('playbooks: true', () => {
  it('wires the ACL monitor to the built-in playbook: an actor spamming a denied topic is blacklisted, and the run is in the immune log', async () => {
    await using guard = await createGuard({
      env: {},
      logger: silentLogger,
      registry: new Registry(),
      immune: { store: 'memory' },
      playbooks: { acl: { api: ['orders.*'], bot: ['orders.*'] } },
    });
    const runs: PlaybookRunNotice[] = [];
    guard.bus.subscribe('playbookRun', (run) => runs.push(run));
    const bus = guard.healing!.messageBus;
    bus.subscribe('orders.created', () => {});
    expect(bus.publish('api', 'orders.created', { id: 1 })).toBe('delivered');
    for (let i = 0; i < 30; i++) bus.publish('bot', 'control.shutdown', {});
    await until(() => bus.isBlacklisted('bot'), 'the playbook to blacklist the spammer');
    // Its verification (no new violations for 2 s, a canary delivered) then passes.
    await until(() => runs.some((r) => r.status === 'succeeded'), 'the ACL playbook to succeed', 10_000);
    expect(runs.find((r) => r.status === 'succeeded')).toMatchObject({ playbook: 'message_bus_acl_violation_fix', reason: 'control_topic_flood' });
    expect(bus.publish('bot', 'orders.created', {})).toBe('blacklisted');
    expect(bus.publish('api', 'orders.created', { id: 2 })).toBe('delivered');
    await until(async () => (await guard.immune!.getRecentEvents()).some((e) => e.type === 'SELF_HEALING_ACTION'), 'the run in the immune log');
  });
});
