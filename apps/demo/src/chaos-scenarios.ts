/** Every fault the chaos CLI can inject, in the order `all` runs them. */
export const SCENARIOS = [
  'ws-no-ack',
  'ws-slow-consumer',
  'bus-leak',
  'db-orphan',
  'half-open',
  'batch-loss',
  'context-leak',
  'handle-leak',
  'memory-leak',
  'downstream-outage',
  'heartbeat-pause',
  'acl-spam',
  'cpu-spike',
] as const;

/** The name of one chaos scenario. */
export type ScenarioName = (typeof SCENARIOS)[number];

/**
 * What the guard is expected to do about a scenario, and so what its verdict requires:
 * - `healed`: a remedy the guard takes only in `full` mode (a sanitizer, a playbook, a restart, an eviction) ends the
 *   fault's effect; detection, the remedy and recovery must each be seen, the remedy caused by the guard.
 * - `protected`: a resilience policy that is always on in the call path (the breaker, the batch writer's dead letters)
 *   contains the fault while it lasts; the protection and the recovery after the fault ends must each be seen.
 * - `reported`: Guard has no safe automatic fix; the finding must be detected and recorded, and nothing "heals" it.
 */
export type ScenarioClaim = 'healed' | 'protected' | 'reported';

/** The claim of each scenario. */
export const SCENARIO_CLAIMS: Readonly<Record<ScenarioName, ScenarioClaim>> = {
  'ws-no-ack': 'healed',
  'ws-slow-consumer': 'healed',
  'bus-leak': 'healed',
  'db-orphan': 'healed',
  'half-open': 'healed',
  'batch-loss': 'protected',
  'context-leak': 'healed',
  'handle-leak': 'reported',
  'memory-leak': 'healed',
  'downstream-outage': 'protected',
  'heartbeat-pause': 'healed',
  'acl-spam': 'healed',
  'cpu-spike': 'healed',
};

/** @returns true for a known scenario name. */
export function isScenarioName(value: string): value is ScenarioName {
  return (SCENARIOS as readonly string[]).includes(value);
}
