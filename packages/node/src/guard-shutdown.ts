import type { CloseStack, Logger } from '@guard/core';
import type { DeferredSanitizer } from '@guard/sanitizer';
import type { GuardOptions } from './guard-options.js';
import type { NodeEnvConfig } from './node-env.js';
import type { RequestTracker } from './request-tracker.js';
import { GracefulShutdown } from './shutdown.js';
import type { TrackerSet } from './trackers.js';

/** What the guard's shutdown drains and closes. */
export interface GuardShutdownParts {
  readonly requests: RequestTracker;
  readonly stack: CloseStack;
  readonly trackers: TrackerSet;
  readonly sanitizer: DeferredSanitizer | undefined;
  readonly logger: Logger;
}

/**
 * The guard's graceful shutdown (settings: `shutdown` over `GUARD_SHUTDOWN_*`): it drains requests, the tracked
 * WebSocket servers' clients and running sanitizations, closes every part, and ends the pg pools the app handed
 * over last, after everything that could still query them.
 *
 * @example
 * const shutdown = createGuardShutdown({ requests, stack, trackers, sanitizer, logger }, options, nodeEnv(env));
 */
export function createGuardShutdown(parts: GuardShutdownParts, options: GuardOptions, own: NodeEnvConfig): GracefulShutdown {
  const { trackers, sanitizer, logger } = parts;
  const shutdown = new GracefulShutdown(
    {
      requests: parts.requests,
      stack: parts.stack,
      webSocketServers: trackers.webSocketServers,
      ...(sanitizer ? { waitForSanitization: (ms: number) => sanitizer.waitForSanitization(ms) } : {}),
      logger,
    },
    { timeoutMs: own.shutdownTimeoutMs, delayMs: own.shutdownDelayMs, ...options.shutdown },
  );
  for (const [name, { pool, end }] of Object.entries(trackers.pgPools)) {
    shutdown.onShutdown(() => (pool.ended ? undefined : end().catch((error: unknown) => logger.warn({ err: error, pool: name }, 'guard: ending pool failed'))));
  }
  return shutdown;
}

/** Installs the signal handlers `handleSignals` or `shutdown.handleSignals` asks for (done last, once the guard started). */
export function handleShutdownSignals(shutdown: GracefulShutdown, options: GuardOptions): void {
  if (!options.handleSignals && !options.shutdown?.handleSignals) return;
  shutdown.handleSignals(Array.isArray(options.shutdown?.handleSignals) ? options.shutdown.handleSignals : undefined);
}
