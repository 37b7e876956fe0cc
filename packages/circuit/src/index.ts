export { CircuitBreaker } from './circuit-breaker.js';
export type { CircuitBreakerOptions, CircuitBreakerMode, CircuitBreakerSnapshot, StateChangeListener } from './circuit-breaker.js';
export { CircuitOpenError, BulkheadRejectedError, TaskCancelledError } from './errors.js';
export type { ExecuteOptions, Operation, Policy } from './policy.js';
export type { CircuitMetricsOptions, Registry } from './metrics.js';
