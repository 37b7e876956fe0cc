import type {} from './errors.js';

export { createGuard } from './create-guard.js';
export { protect } from './protect.js';
export type { Guard } from './guard.js';
export type { GuardOptions } from './guard-options.js';
export { DEFAULT_ENDPOINTS } from './guard-handler.js';
export type { GuardEndpoints, ResolvedEndpoints } from './guard-handler.js';
export { HealthChecks } from './health-checks.js';
export type { HealthCheck, HealthCheckOptions, CheckResult, HealthReport, ProbeKind } from './health-checks.js';
export { verboseReport } from './health-handler.js';
export type { ImmuneStoreOptions } from './immune-store.js';
export type { PlaybooksOptions, SelfHealing } from './self-healing.js';
export { createFleet } from './fleet.js';
export type { Fleet, FleetOptions, FleetParts } from './fleet.js';
export { GracefulShutdown } from './shutdown.js';
export type { ShutdownOptions, ShutdownReport, ShutdownParts } from './shutdown.js';
/** Re-exported from `@guard/core`, where it lives (the stack `createGuard` closes its parts with). */
export { CloseStack } from '@guard/core';
export { RequestTracker } from './request-tracker.js';
export { nodeEnv } from './node-env.js';
export type { NodeEnvConfig } from './node-env.js';
export type { DbInput, PgPool, TrackedResources } from './trackers.js';
export type { OneOrMany } from './named.js';
export type { Rejection } from './admission.js';
