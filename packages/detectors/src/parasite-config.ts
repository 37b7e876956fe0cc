import { COMPONENT_NAMES, GUARD_MODES, GuardError, LOG_LEVELS, createJsonLogger, envReader, silentLogger } from '@guard/core';
import type { Env, GuardMode, LogLevel, Logger } from '@guard/core';
import type { DetectorChainOptions } from './detector-chain.js';
import type { ParasiteComponent } from './detector.js';

/**
 * Per-component thresholds, in the units the trackers take.
 *
 * @example
 * new WebSocketTracker(wss, chain.thresholds.websocket);
 */
export interface ParasiteThresholds {
  readonly websocket: { readonly ackTimeoutMs: number; readonly pingIntervalMs: number; readonly maxBufferedBytes: number };
  readonly eventbus: { readonly leakThreshold: number; readonly topSites: number };
  readonly db: { readonly maxPoolSize: number; readonly leakThresholdMs: number };
  readonly circuit: { readonly probeTimeoutMs: number };
  readonly batch: { readonly maxAgeMs: number; readonly maxBufferSize: number; readonly maxBatchSize: number };
  readonly context: { readonly maxAgeMs: number; readonly maxDepth: number };
  readonly handles: { readonly windowMs: number; readonly growthThreshold: number };
}

/**
 * The defaults of {@link ParasiteThresholds} (DESIGN.md: ack 3 s, 1000 listeners, pool 30).
 *
 * @example
 * DEFAULT_THRESHOLDS.db.maxPoolSize; // 30
 */
export const DEFAULT_THRESHOLDS: ParasiteThresholds = {
  websocket: { ackTimeoutMs: 3_000, pingIntervalMs: 30_000, maxBufferedBytes: 1_048_576 },
  eventbus: { leakThreshold: 1_000, topSites: 5 },
  db: { maxPoolSize: 30, leakThresholdMs: 30_000 },
  circuit: { probeTimeoutMs: 30_000 },
  batch: { maxAgeMs: 5_000, maxBufferSize: 10_000, maxBatchSize: 100 },
  context: { maxAgeMs: 60_000, maxDepth: 50 },
  handles: { windowMs: 60_000, growthThreshold: 100 },
};

/**
 * Settings of one component.
 *
 * @example
 * new DetectorChain({ components: { db: { mode: 'full', sanitization: false } } });
 */
export interface ComponentConfig {
  /** The component's own mode; unset means "follow the global mode". */
  readonly mode?: GuardMode;
  /** False caps the component at `detect`: it never responds early nor sanitizes. Default true. */
  readonly sanitization?: boolean;
}

/**
 * Everything {@link parasiteConfigFromEnv} reads.
 *
 * @example
 * const { mode, thresholds } = parasiteConfigFromEnv(process.env);
 */
export interface ParasiteConfig {
  readonly mode: GuardMode;
  readonly components: Readonly<Record<ParasiteComponent, ComponentConfig>>;
  readonly thresholds: ParasiteThresholds;
  readonly logLevel: LogLevel;
  readonly logStructured: boolean;
  readonly metrics: boolean;
  readonly metricsPrefix: string;
}

/** `PARASITE_LOG_LEVEL`: our names or the seed's (DEBUG, INFO, WARNING, ERROR, CRITICAL), any case. */
function logLevelFromEnv(env: Env): LogLevel {
  const raw = env.PARASITE_LOG_LEVEL;
  if (raw === undefined || raw.trim() === '') return 'info';
  const value = raw.trim().toLowerCase();
  const level = SEED_LOG_LEVELS[value] ?? value;
  if ((LOG_LEVELS as readonly string[]).includes(level)) return level as LogLevel;
  throw new GuardError('INVALID_ENV', `PARASITE_LOG_LEVEL=${JSON.stringify(raw)} is invalid: expected one of ${[...LOG_LEVELS, 'warning', 'critical'].join(', ')}`, {
    details: { variable: 'PARASITE_LOG_LEVEL', value: raw },
  });
}

/** `key` in `..._THRESHOLD` → [field, multiplier to the field's unit]. Seconds for durations, as the seed. */
const THRESHOLD_KEYS: { readonly [C in ParasiteComponent]: Readonly<Record<string, readonly [keyof ParasiteThresholds[C], number]>> } = {
  websocket: { ack_timeout: ['ackTimeoutMs', 1_000], ping_interval: ['pingIntervalMs', 1_000], max_buffered: ['maxBufferedBytes', 1] },
  eventbus: { leak_threshold: ['leakThreshold', 1], top_sites: ['topSites', 1] },
  db: { max_pool_size: ['maxPoolSize', 1], leak_threshold: ['leakThresholdMs', 1_000] },
  circuit: { probe_timeout: ['probeTimeoutMs', 1_000] },
  batch: { max_age: ['maxAgeMs', 1_000], max_buffer: ['maxBufferSize', 1], max_batch: ['maxBatchSize', 1] },
  context: { max_age: ['maxAgeMs', 1_000], max_depth: ['maxDepth', 1] },
  handles: { window: ['windowMs', 1_000], growth: ['growthThreshold', 1] },
};

/** The seed's Python-style level names, mapped to ours (`WARNING` is `warn`, `CRITICAL` is `fatal`). */
const SEED_LOG_LEVELS: Readonly<Record<string, LogLevel>> = { warning: 'warn', critical: 'fatal' };

const BOOLEAN_TRUE = new Set(['1', 'true', 'yes', 'on', 'enabled']);
const BOOLEAN_FALSE = new Set(['0', 'false', 'no', 'off', 'disabled']);

/**
 * Reads the seed's Parasite Guard variables. Every bad value throws `INVALID_ENV` naming the variable.
 *
 * - `PARASITE_GUARD` (boolean, default true), `PARASITE_GUARD_DISABLE` (boolean), `PARASITE_GUARD_MODE` (default `detect`)
 * - `PARASITE_GUARD_<C>` (boolean or a mode), `PARASITE_GUARD_<C>_SANITIZATION`, `PARASITE_GUARD_<C>_DISABLE`,
 *   `PARASITE_GUARD_<C>_THRESHOLD` (`ack_timeout=3,...`) for C in WEBSOCKET, EVENTBUS, DB, CIRCUIT, BATCH, CONTEXT, HANDLES
 * - `PARASITE_LOG_LEVEL` (ours or the seed's DEBUG, INFO, WARNING, ERROR, CRITICAL), `PARASITE_LOG_STRUCTURED`, `PARASITE_METRICS`, `PARASITE_METRICS_PREFIX`
 *
 * @example
 * const config = parasiteConfigFromEnv({ PARASITE_GUARD_MODE: 'full', PARASITE_GUARD_WEBSOCKET_THRESHOLD: 'ack_timeout=5' });
 * config.thresholds.websocket.ackTimeoutMs; // 5000
 */
export function parasiteConfigFromEnv(env: Env = process.env): ParasiteConfig {
  const read = envReader(env);
  const enabled = read.boolean('PARASITE_GUARD', true) && !read.boolean('PARASITE_GUARD_DISABLE', false);
  const mode: GuardMode = enabled ? read.oneOf('PARASITE_GUARD_MODE', GUARD_MODES, 'detect') : 'disabled';
  const components = {} as Record<ParasiteComponent, ComponentConfig>;
  const thresholds: Record<string, Record<string, number>> = {};
  for (const component of COMPONENT_NAMES) {
    const base = `PARASITE_GUARD_${component.toUpperCase()}`;
    let componentMode: GuardMode | undefined;
    const raw = read.string(base);
    if (raw !== undefined) {
      const value = raw.toLowerCase();
      if (BOOLEAN_FALSE.has(value)) componentMode = 'disabled';
      else if ((GUARD_MODES as readonly string[]).includes(value)) componentMode = value as GuardMode;
      else if (!BOOLEAN_TRUE.has(value)) {
        throw new GuardError('INVALID_ENV', `${base}=${JSON.stringify(raw)} is invalid: expected a boolean or one of ${GUARD_MODES.join(', ')}`, {
          details: { variable: base, value: raw },
        });
      }
    }
    if (read.boolean(`${base}_DISABLE`, false)) componentMode = 'disabled';
    const sanitization = read.boolean(`${base}_SANITIZATION`, true);
    components[component] = componentMode === undefined ? { sanitization } : { mode: componentMode, sanitization };

    const keys = THRESHOLD_KEYS[component] as Readonly<Record<string, readonly [string, number]>>;
    const variable = `${base}_THRESHOLD`;
    const given = read.thresholds(variable, Object.keys(keys));
    const merged: Record<string, number> = { ...(DEFAULT_THRESHOLDS[component] as unknown as Record<string, number>) };
    for (const [key, value] of Object.entries(given)) {
      const [field, multiplier] = keys[key]!;
      if (!(value > 0)) {
        throw new GuardError('INVALID_ENV', `${variable}: ${key} must be > 0, got ${value}`, { details: { variable, value: env[variable] } });
      }
      merged[field] = value * multiplier;
    }
    thresholds[component] = merged;
  }
  const metricsPrefix = read.metricsPrefix('PARASITE_METRICS_PREFIX', 'parasite');
  return {
    mode,
    components,
    thresholds: thresholds as unknown as ParasiteThresholds,
    logLevel: logLevelFromEnv(env),
    logStructured: read.boolean('PARASITE_LOG_STRUCTURED', true),
    metrics: read.boolean('PARASITE_METRICS', true),
    metricsPrefix,
  };
}

/**
 * The {@link DetectorChainOptions} the environment sets (see {@link parasiteConfigFromEnv}).
 *
 * @example
 * const fromEnv: DetectorChainEnvOptions = detectorChainOptionsFromEnv(process.env);
 */
export type DetectorChainEnvOptions = Pick<DetectorChainOptions, 'mode' | 'components' | 'thresholds' | 'metrics' | 'metricsPrefix' | 'logger'>;

/**
 * The chain's options from the seed's variables ({@link parasiteConfigFromEnv}), with a logger that writes JSON lines
 * (or text with `PARASITE_LOG_STRUCTURED=false`) to stdout at `PARASITE_LOG_LEVEL` (none at `silent`).
 * `DetectorChain.fromEnv(env, overrides)` is `new DetectorChain({ ...detectorChainOptionsFromEnv(env), ...overrides })`.
 *
 * @example
 * const chain = new DetectorChain({ ...detectorChainOptionsFromEnv(process.env), scheduler });
 */
export function detectorChainOptionsFromEnv(env: Env = process.env): DetectorChainEnvOptions {
  const config = parasiteConfigFromEnv(env);
  return {
    mode: config.mode,
    components: config.components,
    thresholds: config.thresholds,
    metrics: config.metrics,
    metricsPrefix: config.metricsPrefix,
    logger: config.logLevel === 'silent' ? silentLogger : config.logStructured ? createJsonLogger({ level: config.logLevel }) : textLogger(config.logLevel),
  };
}

/** One `time message key=value ...` line per entry on stdout. */
function textLogger(level: LogLevel): Logger {
  return createJsonLogger({
    level,
    write: (line) => {
      const { level: _l, time, msg, ...rest } = JSON.parse(line) as Record<string, unknown>;
      const fields = Object.entries(rest).map(([k, v]) => `${k}=${typeof v === 'string' ? v : JSON.stringify(v)}`);
      process.stdout.write(`${new Date(time as number).toISOString()} ${String(msg ?? '')} ${fields.join(' ')}\n`);
    },
  });
}
