// The `@guard/playbooks/scenarios` entry: the S01-S03 stress scenarios and their timelines. Each scenario lives in
// its own file; what they share is in scenario-timeline.ts (the verdict and its table) and scenario-harness.ts.
export { runS01 } from './heartbeat-pause-scenario.js';
export type { S01Options } from './heartbeat-pause-scenario.js';
export { runS02 } from './acl-spam-scenario.js';
export type { S02Options } from './acl-spam-scenario.js';
export { runS03 } from './cpu-spike-scenario.js';
export type { S03Options } from './cpu-spike-scenario.js';
export { formatTimelines } from './scenario-timeline.js';
export type { ScenarioTimeline } from './scenario-timeline.js';
