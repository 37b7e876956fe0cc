import type { Env } from '@guard/core';
import { selfCheckOptionsFromEnv, type MemoryGuardrail } from '@guard/memory';
import type { ImmuneService } from '@guard/immune';
import type { Fleet } from './fleet.js';
import type { HealthChecks } from './health-checks.js';

/** The parts whose health the guard's probes report. */
export interface GuardCheckParts {
  readonly shuttingDown: () => boolean;
  readonly immune: ImmuneService | undefined;
  readonly memory: MemoryGuardrail | undefined;
  /** The app set a memory budget (`rssThresholdMb`): only then does memory take the replica out of rotation. */
  readonly memoryBudgetSet: boolean;
  readonly fleet: Fleet | undefined;
  readonly env: Env;
}

/**
 * Registers the guard's own checks: readiness fails from the start of a shutdown; liveness answers while the loop
 * runs; the immune store, memory and the fleet database show in `/readyz?verbose`, and only what the app can fix by
 * taking the replica out of rotation (shutdown, memory over the budget it set) is critical.
 *
 * @example
 * addGuardChecks(checks, { shuttingDown: () => shutdown.shuttingDown, immune, memory, memoryBudgetSet: false, fleet, env });
 */
export function addGuardChecks(checks: HealthChecks, parts: GuardCheckParts): void {
  const { immune, memory, fleet } = parts;
  checks.add('shutdown', () => (parts.shuttingDown() ? Promise.reject(new Error('shutting down')) : true), { critical: true });
  checks.add('ping', () => true, { probe: 'liveness' });
  // Non-critical: a lost immune store shows in /readyz?verbose but does not take the service out of rotation.
  if (immune) checks.add('immune', (signal) => immune.healthSummary({ windowMs: 60_000, signal }), { critical: false });
  if (memory) {
    const failAt = selfCheckOptionsFromEnv(parts.env).readyzFailAt ?? 'critical';
    checks.add(
      'memory',
      () => {
        const status = memory.assess().status;
        if (status === 'critical' || status === failAt) throw new Error(`memory status ${status}`);
      },
      { critical: parts.memoryBudgetSet },
    );
  }
  if (fleet) {
    checks.add(
      'fleet',
      () => {
        if (fleet.membership?.reachable === false) throw new Error('fleet database unreachable: this replica runs on its own');
      },
      { critical: false },
    );
  }
}
