// The public API of @guard/playbooks; everything else is imported by path inside the package.
// Subpaths: `@guard/playbooks/postgres` (the Postgres fleet lock, loads pg) and `@guard/playbooks/scenarios`.

// Message bus
export { MessageBus, ACL_VIOLATION_TOPIC, CANARY_ACTOR, CANARY_TOPIC } from './message-bus.js';
export type {
  MessageBusOptions,
  AclRule,
  AclViolation,
  PublishOutcome,
  MessageHandler,
  MessageBusHealth,
  MessageBusStats,
  TopicRateLimit,
  ActorRateLimit,
  MessageBusRestartReport,
  CanaryResult,
} from './message-bus.js';

// Monitors
export { AclViolationMonitor, aclViolationMonitorOptionsFromEnv, ACL_ALARM_EVENT, LEGACY_ACL_ALARM_REASONS } from './acl-violation-monitor.js';
export type { AclViolationMonitorOptions, AclAlarm, AclAlarmReason } from './acl-violation-monitor.js';
export { ResourcePressureMonitor, resourcePressureMonitorOptionsFromEnv, PRESSURE_RESOURCES } from './resource-pressure-monitor.js';
export type { ResourcePressureMonitorOptions, PressureResource, PressureChange, PressureLevel } from './resource-pressure-monitor.js';
export { createSystemSampler } from './system-sampler.js';
export type { PressureReading, PressureDetails, PressureSampler, SystemSampler, SystemSamplerOptions } from './system-sampler.js';
export { HeartbeatWatchdog, heartbeatWatchdogOptionsFromEnv } from './heartbeat-watchdog.js';
export type {
  HeartbeatWatchdogOptions,
  WatchedComponentOptions,
  ComponentState,
  ComponentStatus,
  HeartbeatEvent,
  RecoveryRecord,
  RestartPolicy,
} from './heartbeat-watchdog.js';

// The objects the built-in actions act on
export { RateLimiter } from './rate-limiter.js';
export type { RateLimiterOptions, RateLimitEntry } from './rate-limiter.js';
export { TaskGate } from './task-gate.js';
export { ProcessRegistry } from './process-registry.js';
export type { ProcessRegistryOptions, GuardedProcess, ProcessUsage, WorkerPool, KillRunawayOptions, KillRunawayResult } from './process-registry.js';

// Actions and probes
export { ActionRegistry, ProbeRegistry } from './action-registry.js';
export type { ActionContext, ActionHandler, ProbeHandler } from './action-registry.js';
export { createActionRegistry, createProbeRegistry } from './builtin-actions.js';
export type { BuiltinActionDeps, BuiltinProbeDeps, ComponentRestarter, FollowUpTask, PlaybookNotification } from './builtin-actions.js';

// Engine
export { PlaybookEngine, playbookEngineOptionsFromEnv, formatPlan } from './playbook-engine.js';
export type {
  PlaybookEngineOptions,
  PlaybookRunResult,
  StepResult,
  StepOutcome,
  RunStatus,
  RunOptions,
  SkipReason,
  CheckResult,
  VerificationResult,
  SteadyStateResult,
} from './playbook-engine.js';

// Playbooks: types, schema and loader
export type { Playbook, PlaybookStep, PlaybookCheck, Condition, ConditionOp, PlaybookTrigger, SteadyState, RunStepSummary } from './playbook-types.js';
export type { RunCheckSummary } from './declarations.js';
export { parsePlaybook, loadPlaybookFile, loadPlaybooks, builtinPlaybooksDir } from './load-playbooks.js';
export type { ParsePlaybookOptions } from './load-playbooks.js';

// Fleet
export { createLocalFleetLock, fleetStepSucceeded } from './fleet-lock.js';
export type { FleetLock, FleetLockResult, FleetLockRunOptions } from './fleet-lock.js';
export { FleetDecisions } from './fleet-decisions.js';
export type { FleetDecisionsOptions, FleetDecision, FleetDecisionKind, FleetDecisionSink, FleetBusLike } from './fleet-decisions.js';
