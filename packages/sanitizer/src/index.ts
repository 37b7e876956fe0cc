export { DeferredSanitizer } from './deferred-sanitizer.js';
export type { DeferredSanitizerStats } from './deferred-sanitizer.js';
export type { DeferredSanitizerOptions } from './deferred-sanitizer-options.js';
export { deferredSanitizerOptionsFromEnv } from './sanitizer-env.js';
export type { DeferredSanitizerEnvOptions } from './sanitizer-env.js';
export { SANITIZER_COMPONENTS, DEFAULT_DELAYS_MS } from './components.js';
export type { Sanitizer, SanitizeContext, SanitizeReport } from './sanitizer.js';
export {
  createWebSocketSanitizer,
  defaultCloseCode,
  CLOSE_POLICY_VIOLATION,
  CLOSE_INTERNAL_ERROR,
} from './websocket-sanitizer.js';
export type { WebSocketDisconnectTarget, WebSocketSanitizerOptions, WebSocketSanitizeTarget } from './websocket-sanitizer.js';
export { createEventBusSanitizer } from './eventbus-sanitizer.js';
export { createDbSanitizer } from './db-sanitizer.js';
export { createCircuitSanitizer } from './circuit-sanitizer.js';
export { createBatchSanitizer } from './batch-sanitizer.js';
export { createContextSanitizer, ORPHAN_CLOSE_STATUS } from './context-sanitizer.js';
export { createHandleSanitizer, handleTypesOf } from './handle-sanitizer.js';
