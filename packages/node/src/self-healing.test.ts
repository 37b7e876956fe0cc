import { describe, expect, it } from 'vitest';
import type { PlaybookRunNotice } from '@guard/core';
import { createGuard, type Guard } from './index.js';
import { listen, testGuardOptions, until } from '../test/support.js';

/** Every playbook run the guard's bus announces, as they come. */
function playbookRuns(guard: Guard): PlaybookRunNotice[] {
  const runs: PlaybookRunNotice[] = [];
  guard.bus.subscribe('playbookRun', (run) => runs.push(run));
  return runs;
}

/** 30 publishes to a control topic: an ACL violation flood by `actor`. */
function floodControlTopic(bus: NonNullable<Guard['healing']>['messageBus'], actor: string): void {
  for (let i = 0; i < 30; i++) bus.publish(actor, 'control.shutdown', {});
}

describe('playbooks: true', () => {
  it('wires the ACL monitor to the built-in playbook: an actor spamming a denied topic is blacklisted, and the run is in the immune log', async () => {
    await using guard = await createGuard(testGuardOptions({ playbooks: { acl: { api: ['orders.*'], bot: ['orders.*'] } } }));
    const runs = playbookRuns(guard);
    const bus = guard.healing!.messageBus;
    bus.subscribe('orders.created', () => {});
    expect(bus.publish('api', 'orders.created', { id: 1 })).toBe('delivered');
    floodControlTopic(bus, 'bot');
    await until(() => bus.isBlacklisted('bot'), 'the playbook to blacklist the spammer');
    // Its verification (no new violations for 2 s, a canary delivered) then passes.
    await until(() => runs.some((r) => r.status === 'succeeded'), 'the ACL playbook to succeed', 10_000);
    expect(runs.find((r) => r.status === 'succeeded')).toMatchObject({ playbook: 'message_bus_acl_violation_fix', reason: 'control_topic_flood' });
    expect(bus.publish('bot', 'orders.created', {})).toBe('blacklisted');
    expect(bus.publish('api', 'orders.created', { id: 2 })).toBe('delivered');
    await until(async () => (await guard.immune!.getRecentEvents()).some((e) => e.type === 'SELF_HEALING_ACTION'), 'the run in the immune log');
  });
});

/** A playbook that only notifies (log, immune and webhook) when an actor floods a control topic. */
async function notifyPlaybookDir(): Promise<string> {
  const { mkdtemp, writeFile } = await import('node:fs/promises');
  const { tmpdir } = await import('node:os');
  const { join } = await import('node:path');
  const dir = await mkdtemp(join(tmpdir(), 'guard-node-playbooks-'));
  await writeFile(
    join(dir, 'acl_notify.yaml'),
    [
      'name: acl_notify',
      'trigger:',
      '  event: message_bus.acl_violation',
      'steps:',
      '  - id: tell',
      '    action: notify',
      '    params: { message: "ACL {{ event.reason }} by {{ event.actor }}", severity: warning, channels: [log, immune, webhook] }',
      '',
    ].join('\n'),
  );
  return dir;
}

describe('playbooks: followMode', () => {
  it('outside full mode for `playbooks` every run is a dry run (nothing blacklisted); switched to full, the remedy runs', async () => {
    await using guard = await createGuard(testGuardOptions({ playbooks: { acl: { api: ['orders.*'] }, followMode: true } }));
    const runs = playbookRuns(guard);
    const bus = guard.healing!.messageBus;
    floodControlTopic(bus, 'bot');
    const finished = () => runs.find((r) => r.status !== 'started' && r.status !== 'skipped');
    await until(() => finished() !== undefined, 'the dry run of the ACL playbook');
    expect(finished()).toMatchObject({ dryRun: true });
    expect(bus.isBlacklisted('bot')).toBe(false);

    guard.chain.setMode('full', 'playbooks');
    floodControlTopic(bus, 'bot-2');
    await until(() => bus.isBlacklisted('bot-2'), 'the playbook to blacklist the second spammer');
  });
});

describe('playbooks: notifications', () => {
  it('without a webhook URL the webhook channel is dropped (the step succeeds) and the notification is in the immune log', async () => {
    await using guard = await createGuard(testGuardOptions({ playbooks: { dir: await notifyPlaybookDir(), acl: {} } }));
    const runs = playbookRuns(guard);
    floodControlTopic(guard.healing!.messageBus, 'bot');
    await until(() => runs.some((r) => r.status === 'succeeded'), 'the notify playbook to succeed');
    const events = await guard.immune!.getRecentEvents();
    expect(events.find((e) => e.module === 'playbooks.notify')).toMatchObject({ type: 'SELF_HEALING_ACTION', severity: 'WARNING', message: expect.stringContaining('by bot') });
  });

  it('GUARD_NOTIFY_WEBHOOK_URL receives the notification', async () => {
    const received: Record<string, unknown>[] = [];
    await using hook = await listen((req, res) => {
      let body = '';
      req.setEncoding('utf8').on('data', (chunk: string) => (body += chunk));
      req.on('end', () => {
        received.push(JSON.parse(body) as Record<string, unknown>);
        res.writeHead(204).end();
      });
    });
    await using guard = await createGuard(testGuardOptions({ env: { GUARD_NOTIFY_WEBHOOK_URL: `${hook.base}/hooks` }, playbooks: { dir: await notifyPlaybookDir(), acl: {} } }));
    floodControlTopic(guard.healing!.messageBus, 'bot');
    await until(() => received.length > 0, 'the webhook to receive the notification');
    expect(received[0]).toMatchObject({ playbook: 'acl_notify', severity: 'warning' });
  });
});
