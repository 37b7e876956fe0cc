import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { loadPlaybooks } from '@guard/playbooks';

const DEMO_PLAYBOOKS = fileURLToPath(new URL('../playbooks/', import.meta.url));
const NOTIFY_ONLY = fileURLToPath(new URL('./mutations/notify-only/', import.meta.url));

describe('demo playbooks', () => {
  it("carry the seed's reason names and CPU steps", async () => {
    const playbooks = await loadPlaybooks(DEMO_PLAYBOOKS);
    const acl = playbooks.find((p) => p.name === 'message_bus_acl_violation_fix')!;
    expect(JSON.stringify(acl.trigger)).toContain('spam_attack');
    expect(JSON.stringify(acl.trigger)).toContain('actor_blacklist');
    expect(JSON.stringify(acl.trigger)).toContain('control_topic_flood');
    const cpu = playbooks.find((p) => p.name === 'resource_pressure_cpu')!;
    expect(cpu.steps.map((s) => s.action)).toEqual(
      expect.arrayContaining(['identify_hogs', 'throttle', 'pause_tasks', 'kill_runaway', 'scale_down', 'enable_rate_limit', 'notify']),
    );
  });

  it('the notify-only mutation keeps the real triggers and verification, and only notifies', async () => {
    const real = await loadPlaybooks(DEMO_PLAYBOOKS);
    const mutated = await loadPlaybooks(NOTIFY_ONLY);
    expect(mutated.map((p) => p.name).sort()).toEqual(real.map((p) => p.name).sort());
    for (const m of mutated) {
      const r = real.find((p) => p.name === m.name)!;
      expect(m.trigger, m.name).toEqual(r.trigger);
      expect(m.verify, m.name).toEqual(r.verify);
      expect(m.steps.map((s) => s.action)).toEqual(['notify']);
    }
  });
});
