export { SEVERITIES, GUARD_MODES, isGuardMode, isSeverity, compareSeverity } from './types.js';
export type { Severity, GuardMode, ComponentName, Detection, SanitizeOutcome, SanitizeResult } from './types.js';
export { createId } from './id.js';
export { GuardBus } from './guard-bus.js';
export { safeEmit } from './safe-emit.js';
export type {
  GuardEvents,
  GuardBusOptions,
  Subscription,
  CircuitState,
  BreakerStateChange,
  MemoryAlarm,
  ImmuneEventNotice,
  PlaybookRunNotice,
  PlaybookStepNotice,
  ModeChange,
  DetectionCleared,
} from './guard-bus.js';
export { GuardError, isGuardError, assertNumberOption } from './guard-error.js';
export type { GuardErrorCodes, GuardErrorCode, GuardErrorOptions } from './guard-error.js';
export { createJsonLogger, silentLogger, LOG_LEVELS } from './logger.js';
export type { Logger, LogLevel, JsonLoggerOptions } from './logger.js';
export { resolveRegistry, metricName, counter, gauge, histogram, summary, registryScoped } from './metrics.js';
export type { MetricsOptions, Registry } from './metrics.js';
export { envReader } from './env.js';
export type { Env, EnvNames, EnvReader, EnvNumberBounds, DurationUnit } from './env.js';
export { captureSource, createSourceCapture, parseStackFrames, shouldSampleSource, SOURCE_SAMPLE_FIRST, SOURCE_SAMPLE_EVERY, CapturedSource } from './source-frames.js';
export type { SourceOptions } from './source-frames.js';
export { closeOnce, assertOpen, unrefInterval, unrefTimeout } from './closeable.js';
export type { Closeable } from './closeable.js';
export { sendJson, sendProblem, httpError, problemFromError, readJsonBody, checkAdminToken } from './http.js';
export type { HttpHandler, Problem, ReadJsonBodyOptions } from './http.js';
export type {
  WebSocketTarget,
  EventBusTarget,
  DbPoolTarget,
  CircuitTarget,
  BatchTarget,
  ContextTarget,
  SanitizationScheduler,
} from './sanitize-targets.js';
export { raceAbort } from './abort.js';
export { guardPgPool, isPgUnavailableError, resolvePgTimeouts, pgPoolTimeoutConfig, PG_TIMEOUT_DEFAULTS } from './pg-pool-safety.js';
export type { PgPoolLike, PgClientLike, PgTimeouts, GuardPgPoolOptions, GuardedPgPool, GuardedPgClient } from './pg-pool-safety.js';
export { PgNotificationListener } from './pg-listener.js';
export { inPgTransaction, migrateUnderLock } from './pg-transaction.js';
export type { PgQueryable, PgRowsQuery } from './pg-transaction.js';
export type { PgNotificationListenerOptions, ListenPoolLike, ListenClientLike } from './pg-listener.js';
