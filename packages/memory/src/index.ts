export { MemoryGuardrail, BYTES_PER_MB } from './memory-guardrail.js';
export type {
  MemoryGuardrailOptions,
  MemoryStatus,
  MemorySnapshot,
  MemoryAssessment,
  MemoryBaseline,
  MemoryReport,
  MemoryRestartNotice,
  MemoryThresholds,
  MemoryThresholdsChange,
  SetThresholdsOptions,
  GrowthEstimate,
  CacheStatus,
  RestartDecision,
  ShutdownHook,
  FleetRestartWait,
} from './memory-guardrail.js';
export { PostgresRestartLease, createLocalRestartGate } from './fleet-restart-lease.js';
export type { RestartGate, RestartGateDecision, RestartGateOptions, PostgresRestartLeaseOptions } from './fleet-restart-lease.js';
export type { RestartReason, RestartRecord } from './restart-budget.js';
export { processMemorySampler } from './memory-sampler.js';
export type { MemorySampler, MemoryUsageSample, CacheProbe, Clock } from './memory-sampler.js';
export { fitLine } from './regression.js';
export type { LinearFit } from './regression.js';
export { memoryOptionsFromEnv, MEMORY_ENV } from './from-env.js';
export { createSelfCheckHandler, selfCheckOptionsFromEnv, SELF_CHECK_HTTP_STATUS } from './self-check-handler.js';
export type { SelfCheckHandlerOptions } from './self-check-handler.js';
export { runLoadTest, parseDurationMs, formatLoadTestReport } from './load-test.js';
export type { LoadTestOptions, LoadTestResult, LoadTestCriteria, LoadTestCheck, LatencySummary, LoadTestRss, RssSample, LoadTestProgress } from './load-test.js';
