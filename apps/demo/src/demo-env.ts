import type { Env } from '@guard/core';

/**
 * The demo's defaults, applied under the real environment (a variable that is set always wins).
 * They shorten the production windows so each chaos scenario is detected and healed in seconds.
 */
export const DEMO_ENV_DEFAULTS: Readonly<Record<string, string>> = {
  PARASITE_GUARD_MODE: 'dry_run',
  PARASITE_LOG_LEVEL: 'warn',
  PARASITE_GUARD_WEBSOCKET_THRESHOLD: 'ack_timeout=3,ping_interval=30,max_buffered=1048576',
  PARASITE_GUARD_EVENTBUS_THRESHOLD: 'leak_threshold=1000,top_sites=5',
  PARASITE_GUARD_DB_THRESHOLD: 'max_pool_size=30,leak_threshold=3',
  PARASITE_GUARD_CIRCUIT_THRESHOLD: 'probe_timeout=2',
  PARASITE_GUARD_BATCH_THRESHOLD: 'max_age=1,max_buffer=10000,max_batch=100',
  PARASITE_GUARD_CONTEXT_THRESHOLD: 'max_age=3,max_depth=50',
  PARASITE_GUARD_HANDLES_THRESHOLD: 'window=10,growth=50',
  PARASITE_GUARD_WEBSOCKET_ASYNC_DELAY: '500ms',
  PARASITE_GUARD_EVENTBUS_ASYNC_DELAY: '500ms',
  PARASITE_GUARD_DB_ASYNC_DELAY: '500ms',
  PARASITE_GUARD_BATCH_ASYNC_DELAY: '500ms',
  PARASITE_GUARD_CONTEXT_ASYNC_DELAY: '500ms',
  MEMORY_CHECK_INTERVAL_SEC: '1',
  LEAK_DETECTION_WINDOW_MIN: '1',
  BASELINE_SAMPLE_COUNT: '5',
  MEMORY_RSS_THRESHOLD_MB: '700',
  CACHE_ENTRIES_THRESHOLD: '2200',
  // Postgres mode: the demo's statements are tiny, so a lost database fails a request (503) within ~2 s, or ~4 s
  // where a store retries once on a fresh connection (core's defaults are 5 s / 5 s / 6 s).
  GUARD_PG_CONNECT_TIMEOUT_MS: '1500',
  GUARD_PG_STATEMENT_TIMEOUT_MS: '1500',
  GUARD_PG_QUERY_TIMEOUT_MS: '2000',
};

/** The environment the demo reads: its defaults overlaid by `env`. */
export function demoEnv(env: Env = process.env): Env {
  return { ...DEMO_ENV_DEFAULTS, ...env };
}
