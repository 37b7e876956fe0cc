import { join } from 'node:path';
import { GuardBus, sleep } from '@guard/core';
import type { MetricsOptions } from '@guard/core';
import { ACL_ALARM_EVENT, AclViolationMonitor } from './acl-violation-monitor.js';
import { createActionRegistry, createProbeRegistry } from './builtin-actions.js';
import { builtinPlaybooksDir, loadPlaybookFile } from './load-playbooks.js';
import { MessageBus } from './message-bus.js';
import { PlaybookEngine } from './playbook-engine.js';
import type { PlaybookRunResult } from './playbook-engine.js';
import type { Playbook } from './playbook-types.js';
import { metricOptionsOf, waitFor } from './scenario-harness.js';
import { scenarioTimeline, since } from './scenario-timeline.js';
import type { ScenarioTimeline } from './scenario-timeline.js';

/** Options for {@link runS02}. */
export interface S02Options extends MetricsOptions {
  /** Attackers; the second starts `secondAttackerDelayMs` after the first (while the first one's run verifies). Default 2. */
  readonly attackers?: number;
  /** Default 1500. */
  readonly secondAttackerDelayMs?: number;
  /** Denied publishes per second of each attacker, until the guard stops it. Default 100. */
  readonly attackRatePerSec?: number;
  /** Publishes per second of the legitimate publisher on the same topics' family. Default 50. */
  readonly legitRatePerSec?: number;
  /** Detection target. Default 1000. */
  readonly detectTargetMs?: number;
  /** Every run verified (no new violations for 2 s, canary delivered) within this long of the injection. Default 8000. */
  readonly recoverTargetMs?: number;
  /** Folder holding `message_bus_acl_violation_fix.yaml`. Default: the package's built-in playbooks. */
  readonly playbooksDir?: string;
  /** Use this playbook instead (mutation tests: a notify-only playbook must make S02 fail). */
  readonly playbook?: Playbook;
  /** Plan only (the guard in `detect` mode): S02 must fail. */
  readonly dryRun?: boolean;
}

/**
 * S02 ACL spam: attackers keep making denied publishes (100/s each; the second starts while the first
 * one's run is verifying) until something stops them. Passes only when the monitor detects within 1 s,
 * the ACL playbook's own blacklist steps stop every attacker (their publishes are refused while they keep
 * trying), its verification (no new violations for 2 s, a canary delivered) passes, and the legitimate
 * publisher is never throttled.
 *
 * @example
 * const t = await runS02();
 */
export async function runS02(options: S02Options = {}): Promise<ScenarioTimeline> {
  const detectTarget = options.detectTargetMs ?? 1_000;
  const recoverTarget = options.recoverTargetMs ?? 8_000;
  const attackerCount = options.attackers ?? 2;
  const attackEveryMs = 1_000 / (options.attackRatePerSec ?? 100);
  const legitEveryMs = 1_000 / (options.legitRatePerSec ?? 50);
  const bus = new GuardBus();
  await using messageBus = new MessageBus({ ...metricOptionsOf(options), name: 's02', acl: { api: ['orders.*'] }, bus });
  await using monitor = new AclViolationMonitor({ messageBus, bus });
  const playbook = options.playbook ?? (await loadPlaybookFile(join(options.playbooksDir ?? builtinPlaybooksDir(), 'message_bus_acl_violation_fix.yaml')));
  await using engine = new PlaybookEngine({
    ...metricOptionsOf(options),
    bus,
    ...(options.dryRun ? { dryRun: true } : {}),
    actions: createActionRegistry({ messageBus, onFollowUp: () => undefined }),
    probes: createProbeRegistry({ messageBus, aclMonitor: monitor }),
    playbooks: [playbook],
  });

  let detectedAt: number | undefined;
  const results: PlaybookRunResult[] = [];
  let pending = 0;
  const alarms: string[] = [];
  using _alarm = monitor.onAlarm((alarm) => {
    detectedAt ??= performance.now();
    alarms.push(`${alarm.reason}:${alarm.actor}`);
    pending++;
    engine
      .trigger(ACL_ALARM_EVENT, { ...alarm }, { reason: alarm.reason })
      .then((rs) => void results.push(...rs), () => undefined)
      .finally(() => pending--);
  });
  let remediatedAt: number | undefined;
  const onStep = (n: { action: string; outcome: string }): void => {
    if (n.action === 'blacklist_actor' && n.outcome === 'succeeded') remediatedAt ??= performance.now();
  };
  bus.on('playbookStep', onStep);

  const legit = { delivered: 0, other: 0 };
  using _orders = messageBus.subscribe('orders.created', () => undefined);
  const attackers = Array.from({ length: attackerCount }, (_, i) => ({ actor: `rogue-${i + 1}`, sent: 0, denied: 0, refused: 0, other: 0, refusedAt: undefined as number | undefined }));
  const timers: NodeJS.Timeout[] = [];
  const attack = (a: (typeof attackers)[number]): void => {
    timers.push(
      setInterval(() => {
        const outcome = messageBus.publish(a.actor, a.sent++ % 2 === 0 ? 'control.shutdown' : 'orders.refund_all', { n: a.sent });
        if (outcome === 'denied') a.denied++;
        else if (outcome === 'blacklisted') {
          a.refused++;
          a.refusedAt ??= performance.now();
        } else a.other++;
      }, attackEveryMs),
    );
  };
  const injectedAt = performance.now();
  try {
    timers.push(
      setInterval(() => {
        if (messageBus.publish('api', 'orders.created', { at: performance.now() }) === 'delivered') legit.delivered++;
        else legit.other++;
      }, legitEveryMs),
    );
    attack(attackers[0]!);
    if (attackers.length > 1) {
      await sleep(options.secondAttackerDelayMs ?? 1_500);
      for (const a of attackers.slice(1)) attack(a);
    }
    // Every attacker keeps trying; the scenario waits for the guard, never stops an attacker itself.
    const settled = (): boolean => results.length > 0 && pending === 0 && attackers.every((a) => a.refusedAt !== undefined);
    await waitFor(settled, Math.max(0, injectedAt + recoverTarget - performance.now()), 20);
    const finished = results.filter((r) => r.status !== 'skipped');
    // Run times are epoch ms; convert the last run's end to this clock.
    // A dry run (the guard in detect mode) "succeeds" as a plan: only real, verified runs count.
    const verified = finished.length > 0 && finished.every((r) => r.status === 'succeeded' && !r.dryRun);
    const recoveredAt = verified ? performance.now() - (Date.now() - Math.max(...finished.map((r) => r.finishedAt))) : undefined;
    // Attackers still publishing: are they all refused, with no violation in the last 500 ms?
    await sleep(500);
    const quietWhileAttacked = messageBus.violationsWithin(500) === 0 && attackers.every((a) => a.refused > 0);
    const canary = messageBus.canary().delivered;
    const blacklistedByGuard = (actor: string): boolean =>
      finished.some((r) =>
        r.steps.some(
          (s) =>
            s.action === 'blacklist_actor' &&
            s.outcome === 'succeeded' &&
            ((s.output as { actor?: string } | undefined)?.actor === actor ||
              ((s.output as { items?: { item: unknown; outcome: string }[] } | undefined)?.items ?? []).some((i) => i.item === actor && i.outcome === 'succeeded')),
        ),
      );
    const stopped = attackers.filter((a) => a.refusedAt !== undefined && blacklistedByGuard(a.actor) && messageBus.isBlacklisted(a.actor));
    const verifiedAt = recoveredAt;
    return scenarioTimeline(
      'S02',
      'ACL spam',
      { injectedAt, detectedAt, remediatedAt, recoveredAt: verifiedAt },
      [
        [`detected within ${detectTarget} ms`, detectedAt !== undefined && detectedAt - injectedAt <= detectTarget],
        [`every attacker stopped by the playbook's blacklist while still publishing (${stopped.length}/${attackers.length})`, stopped.length === attackers.length],
        ['ACL playbook verified: no new violations for 2 s and a canary delivered', verified],
        [`recovered within ${recoverTarget} ms`, verifiedAt !== undefined && verifiedAt - injectedAt <= recoverTarget],
        ['attackers still refused, no violation in the last 500 ms', quietWhileAttacked],
        [`legitimate traffic never throttled (${legit.delivered}/${legit.delivered + legit.other} delivered)`, legit.other === 0 && legit.delivered > 0],
        ['canary delivered at the end', canary],
      ],
      {
        alarms,
        attackers: attackers.map((a) => ({ actor: a.actor, sent: a.sent, denied: a.denied, refused: a.refused, other: a.other, stoppedMs: since(injectedAt, a.refusedAt) })),
        legit,
        runs: results.map((r) => ({
          key: r.key,
          status: r.status,
          ...(r.skipReason ? { skipReason: r.skipReason } : {}),
          durationMs: Math.round(r.durationMs),
          verificationAttempts: r.verification?.attempts,
          steps: r.steps.map((x) => `${x.id}:${x.outcome}`),
        })),
      },
    );
  } finally {
    for (const t of timers) clearInterval(t);
    bus.off('playbookStep', onStep);
  }
}
