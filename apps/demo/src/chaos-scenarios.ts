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

/** @returns true for a known scenario name. */
export function isScenarioName(value: string): value is ScenarioName {
  return (SCENARIOS as readonly string[]).includes(value);
}
