export { SEVERITIES, GUARD_MODES, COMPONENT_NAMES, isGuardMode, isSeverity, compareSeverity } from './types.js';
export type { Severity, GuardMode, ComponentName, BuiltinComponentName, Detection, SanitizeOutcome, SanitizeResult } from './types.js';
export { createId } from './id.js';
export { Emitter, createSubscription } from './emitter.js';
export type { EmitterOptions, Subscription } from './emitter.js';
export { GuardBus } from './guard-bus.js';
export { BusNotices } from './bus-notices.js';
export type { BusNoticesOptions } from './bus-notices.js';
export { safeEmit } from './safe-emit.js';
export type { GuardEvents, GuardBusOptions, ModeChange, DetectionCleared } from './guard-bus.js';
export type { CircuitState, BreakerStateChange, MemoryAlarm, PlaybookRunNotice, PlaybookStepNotice, HeartbeatNotice } from './contract-events.js';
export { linkSignal, raceAbort } from './signals.js';
export type { LinkedSignal, LinkSignalOptions } from './signals.js';
export { sleep, waitUntil } from './time.js';
export type { SleepOptions, WaitUntilOptions } from './time.js';
export { parseDuration } from './duration.js';
export type { ParseDurationOptions } from './duration.js';
export { errorMessage } from './error-message.js';
export { CloseStack } from './close-stack.js';
export { scrapeGauge } from './scrape-gauge.js';
export type { ScrapeGaugeConfig, ScrapeRead } from './scrape-gauge.js';
export { TokenBucket } from './token-bucket.js';
export type { TokenBucketOptions } from './token-bucket.js';
export { terminateProcess } from './terminate-process.js';
export type { TerminateProcessOptions, TerminateOutcome } from './terminate-process.js';
export { GuardError, isGuardError, assertNumberOption } from './guard-error.js';
export type { GuardErrorCodes, GuardErrorCode, GuardErrorOptions } from './guard-error.js';
export { createJsonLogger, silentLogger, LOG_LEVELS } from './logger.js';
export type { Logger, LogLevel, JsonLoggerOptions } from './logger.js';
export { resolveRegistry, resolveMetricsPrefix, metricName, counter, gauge, histogram, summary, registryScoped } from './metrics.js';
export type { MetricsOptions, Registry } from './metrics.js';
export { envReader } from './env.js';
export type { Env, EnvNames, EnvReader, EnvNumberBounds, DurationUnit } from './env.js';
export { captureSource, createSourceCapture, parseStackFrames, shouldSampleSource, SOURCE_SAMPLE_FIRST, SOURCE_SAMPLE_EVERY, CapturedSource } from './source-frames.js';
export type { SourceOptions } from './source-frames.js';
export { closeOnce, assertOpen, unrefInterval, unrefTimeout } from './closeable.js';
export type { Closeable } from './closeable.js';
export { sendJson, sendProblem, httpError, problemFromError, readJsonBody, checkAdminToken, requireAdminToken } from './http.js';
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
export { guardPgPool, isPgUnavailableError, resolvePgTimeouts, pgPoolTimeoutConfig, PG_TIMEOUT_DEFAULTS } from './pg-pool-safety.js';
export type { PgPoolLike, PgClientLike, PgTimeouts, GuardPgPoolOptions, GuardedPgPool, GuardedPgClient } from './pg-pool-safety.js';
export { PgNotificationListener } from './pg-listener.js';
export { inPgTransaction, migrateUnderLock } from './pg-transaction.js';
export { withPgClient } from './pg-session.js';
export type { PgSessionClient, PgSessionPhase, WithPgClientOptions } from './pg-session.js';
export type { PgQueryable, PgRowsQuery } from './pg-transaction.js';
export type { PgNotificationListenerOptions, ListenPoolLike, ListenClientLike } from './pg-listener.js';
