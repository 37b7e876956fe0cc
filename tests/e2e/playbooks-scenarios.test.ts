import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { builtinPlaybooksDir, loadPlaybookFile } from '../../packages/playbooks/src/load-playbooks.js';
import type { Playbook } from '../../packages/playbooks/src/playbook-types.js';
import { formatTimelines, runS01, runS02, runS03 } from '../../packages/playbooks/src/scenarios.js';
import type { ScenarioTimeline } from '../../packages/playbooks/src/scenarios.js';
import { reportFigure } from './report.js';

/** The mutation of the issue: the same playbook (trigger, verification) whose only step is a notification. */
async function notifyOnly(file: string): Promise<Playbook> {
  const playbook = await loadPlaybookFile(join(builtinPlaybooksDir(), file));
  return {
    ...playbook,
    steps: [{ id: 'notify', action: 'notify', params: { message: 'mutant: notify only' }, timeoutMs: 5_000, continueOnError: false, fleet: false, retry: { count: 0, delayMs: 0 } }],
    rollback: [],
  };
}

/** Reports a scenario's detected/remediated/recovered times; the assertions are about verdicts, not wall-clock bounds. */
function report(t: ScenarioTimeline, label = ''): void {
  console.log(`${formatTimelines([t])}\n${t.scenario} details: ${JSON.stringify(t.details)}`);
  for (const phase of ['detectedMs', 'remediatedMs', 'recoveredMs'] as const) {
    const ms = t[phase];
    if (ms !== undefined) reportFigure(`playbooks ${t.scenario}${label} ${phase.replace('Ms', '')} after injection`, ms, 'ms');
  }
}

describe('stress scenarios', () => {
  it('S01 heartbeat pause: the watchdog restarts the component soon after the missed deadline', async () => {
    const t = await runS01({ metrics: false, deadlineMs: 200 });
    report(t);
    expect(t.misses).toEqual([]);
    expect(t.passed).toBe(true);
    expect(t.detectedMs).toBeGreaterThan(0);
    expect(t.remediatedMs!).toBeGreaterThanOrEqual(t.detectedMs!);
    expect(t.recoveredMs!).toBeGreaterThanOrEqual(t.remediatedMs!);
    expect(t.details.state).toBe('healthy');
  });

  describe.concurrent('S02 ACL spam', () => {
    it('passes: both attackers stopped by the playbook while still publishing, verified, legitimate traffic untouched', async () => {
      // Generous targets for a loaded CI machine; the CLI run reports the real figures against the seed's.
      const t = await runS02({ metrics: false, detectTargetMs: 3_000, recoverTargetMs: 15_000 });
      report(t);
      expect(t.misses).toEqual([]);
      expect(t.passed).toBe(true);
      const attackers = t.details.attackers as { actor: string; refused: number; other: number }[];
      expect(attackers.map((a) => a.actor)).toEqual(['rogue-1', 'rogue-2']);
      for (const a of attackers) expect(a.refused).toBeGreaterThan(0);
      const runs = t.details.runs as { key: string; status: string; steps: string[] }[];
      expect(new Set(runs.filter((r) => r.status === 'succeeded').map((r) => r.key))).toEqual(new Set(['rogue-1', 'rogue-2']));
      expect(runs.find((r) => r.status === 'succeeded')!.steps).toContain('blacklist:succeeded');
    });

    it('mutation: a notify-only ACL playbook makes S02 FAIL', async () => {
      const t = await runS02({ metrics: false, playbook: await notifyOnly('message_bus_acl_violation_fix.yaml'), recoverTargetMs: 5_000 });
      report(t, ' (notify-only mutant)');
      expect(t.passed).toBe(false);
      expect(t.misses).toContain('every attacker stopped by the playbook\'s blacklist while still publishing (0/2)');
      expect(formatTimelines([t])).toContain('MISS');
    });

    it('mutation: the guard in detect mode (dry run) makes S02 FAIL', async () => {
      const t = await runS02({ metrics: false, dryRun: true, recoverTargetMs: 4_000 });
      expect(t.passed).toBe(false);
      expect(t.detectedMs).toBeDefined();
      expect(t.remediatedMs).toBeUndefined();
      // A plan is not a verified run.
      expect(t.recoveredMs).toBeUndefined();
      expect(t.misses).toContain('ACL playbook verified: no new violations for 2 s and a canary delivered');
    });
  });

  describe('S03 CPU spike (real runaway child processes)', () => {
    const fast = { intervalMs: 200, sustainMs: 1_000, clearSustainMs: 600 };

    it('passes: kill_runaway and scale_down stop the burn, jobs throttled, heavy tasks paused, CPU verified from the sampler', async () => {
      const t = await runS03({ metrics: false, ...fast, recoveryTargetMs: 30_000 });
      report(t);
      expect(t.misses).toEqual([]);
      expect(t.details).toMatchObject({ runStatus: 'succeeded', workers: { before: 3, after: 1, removed: 2 }, apiLimited: true });
      expect((t.details.killed as unknown[]).length).toBe(2);
      expect(t.remediatedMs!).toBeGreaterThan(t.detectedMs!);
      expect(t.recoveredMs!).toBeGreaterThan(t.remediatedMs!);
    }, 60_000);

    it('mutation: a notify-only CPU playbook makes S03 FAIL (the runaways keep burning)', async () => {
      const t = await runS03({ metrics: false, ...fast, recoveryTargetMs: 5_000, playbook: await notifyOnly('resource_pressure_cpu.yaml') });
      report(t, ' (notify-only mutant)');
      expect(t.passed).toBe(false);
      expect(t.detectedMs).toBeDefined();
      expect(t.misses).toEqual(
        expect.arrayContaining([
          "kill_runaway killed every runaway, each exited on the guard's SIGTERM (0/2)",
          'CPU playbook verified (CPU < 60 % from the sampler until the alarm cleared, health endpoint 200)',
        ]),
      );
    }, 60_000);

    it('mutation: the guard in detect mode (dry run) makes S03 FAIL', async () => {
      const t = await runS03({ metrics: false, ...fast, recoveryTargetMs: 4_000, dryRun: true });
      expect(t.passed).toBe(false);
      expect(t.detectedMs).toBeDefined();
      expect(t.remediatedMs).toBeUndefined();
      expect(t.misses).toContain('CPU playbook verified (CPU < 60 % from the sampler until the alarm cleared, health endpoint 200)');
    }, 60_000);
  });
});
