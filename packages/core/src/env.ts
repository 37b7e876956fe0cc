import { parseDuration } from './duration.js';
import { GuardError, isGuardError } from './guard-error.js';

/** A read-only view of environment variables, e.g. `process.env`. */
export type Env = Readonly<Record<string, string | undefined>>;

/** One variable name, or a name and its accepted aliases (first set wins). */
export type EnvNames = string | readonly string[];

/** Bounds for numeric variables. */
export interface EnvNumberBounds {
  readonly min?: number;
  readonly max?: number;
  readonly integer?: boolean;
}

/** The unit of a bare number in a duration variable. */
export type DurationUnit = 'ms' | 's' | 'min' | 'h';

/** ms per {@link DurationUnit}: a variable's name may imply the unit of a bare number (`..._SEC=30`). */
const UNIT_MS: Record<DurationUnit, number> = { ms: 1, s: 1_000, min: 60_000, h: 3_600_000 };
const BARE_NUMBER = /^(\d+(?:\.\d*)?|\.\d+)$/;
const TRUE = new Set(['1', 'true', 'yes', 'on', 'enabled']);
const FALSE = new Set(['0', 'false', 'no', 'off', 'disabled']);

/**
 * Typed, validated reads of environment variables. Every bad value throws `INVALID_ENV` naming the variable.
 *
 * @example
 * const env = envReader(process.env);
 * const thresholdMb = env.number('MEMORY_RSS_THRESHOLD_MB', 700, { min: 1 });
 * const interval = env.durationMs('MEMORY_CHECK_INTERVAL_SEC', 60_000, 's');
 * const enabled = env.boolean('AUTO_RESTART_ENABLED', false);
 */
export interface EnvReader {
  /** The first set name among `names`, or undefined. */
  nameOf(names: EnvNames): string | undefined;
  string(names: EnvNames): string | undefined;
  string(names: EnvNames, fallback: string): string;
  /** Accepts 1/0, true/false, yes/no, on/off, enabled/disabled (any case). */
  boolean(names: EnvNames, fallback: boolean): boolean;
  number(names: EnvNames, fallback: number, bounds?: EnvNumberBounds): number;
  /** A duration in ms as {@link parseDuration} reads it (`250ms`, `5s`, `10min`, `1h`, `1d`), but a bare number is in `unit`. */
  durationMs(names: EnvNames, fallbackMs: number, unit?: DurationUnit, bounds?: EnvNumberBounds): number;
  oneOf<const T extends string>(names: EnvNames, allowed: readonly T[], fallback: NoInfer<T>): T;
  /** A Prometheus metric-name prefix (`[a-zA-Z_:][a-zA-Z0-9_:]*`), e.g. `PARASITE_METRICS_PREFIX=api`. */
  metricsPrefix(names: EnvNames, fallback: string): string;
  /** `key=value` pairs separated by commas, e.g. `ack_timeout=3,leak_threshold=1000`. */
  thresholds(names: EnvNames, allowedKeys?: readonly string[]): Readonly<Record<string, number>>;
}

const PROMETHEUS_PREFIX = /^[a-zA-Z_:][a-zA-Z0-9_:]*$/;

function invalid(name: string, value: string, expected: string): GuardError {
  return new GuardError('INVALID_ENV', `${name}=${JSON.stringify(value)} is invalid: expected ${expected}`, {
    details: { variable: name, value, expected },
  });
}

function checkBounds(name: string, raw: string, value: number, bounds: EnvNumberBounds, what = 'a number'): number {
  const { min = -Infinity, max = Infinity, integer = false } = bounds;
  if (!Number.isFinite(value) || value < min || value > max || (integer && !Number.isInteger(value))) {
    const range = `${integer ? 'an integer' : what}${min > -Infinity ? ` >= ${min}` : ''}${max < Infinity ? ` <= ${max}` : ''}`;
    throw invalid(name, raw, range);
  }
  return value;
}

/** The ms of a duration with a unit, NaN when unreadable (checkBounds turns it into INVALID_ENV naming the variable). */
function parsedDuration(raw: string): number {
  try {
    return parseDuration(raw);
  } catch (error) {
    if (isGuardError(error, 'INVALID_INPUT')) return NaN;
    throw error;
  }
}

/** Creates an {@link EnvReader} over `env` (default `process.env`). Empty values count as unset. */
export function envReader(env: Env = process.env): EnvReader {
  const lookup = (names: EnvNames): [string, string] | undefined => {
    for (const name of typeof names === 'string' ? [names] : names) {
      const raw = env[name];
      if (raw !== undefined && raw.trim() !== '') return [name, raw.trim()];
    }
    return undefined;
  };

  function string(names: EnvNames): string | undefined;
  function string(names: EnvNames, fallback: string): string;
  function string(names: EnvNames, fallback?: string): string | undefined {
    return lookup(names)?.[1] ?? fallback;
  }

  return {
    nameOf: (names) => lookup(names)?.[0],
    string,
    boolean(names, fallback) {
      const found = lookup(names);
      if (!found) return fallback;
      const [name, raw] = found;
      const lower = raw.toLowerCase();
      if (TRUE.has(lower)) return true;
      if (FALSE.has(lower)) return false;
      throw invalid(name, raw, 'a boolean (true/false, 1/0, yes/no, on/off)');
    },
    number(names, fallback, bounds = {}) {
      const found = lookup(names);
      if (!found) return fallback;
      const [name, raw] = found;
      return checkBounds(name, raw, /^[-+]?(\d+\.?\d*|\.\d+)(e[-+]?\d+)?$/i.test(raw) ? Number(raw) : NaN, bounds);
    },
    durationMs(names, fallbackMs, unit = 'ms', bounds = { min: 0 }) {
      const found = lookup(names);
      if (!found) return fallbackMs;
      const [name, raw] = found;
      const ms = BARE_NUMBER.test(raw) ? Number(raw) * UNIT_MS[unit] : parsedDuration(raw);
      return checkBounds(name, raw, ms, bounds, `a duration like 500ms, 5s, 10min or a number of ${unit}`);
    },
    oneOf(names, allowed, fallback) {
      const found = lookup(names);
      if (!found) return fallback;
      const [name, raw] = found;
      const value = raw.toLowerCase();
      if ((allowed as readonly string[]).includes(value)) return value as (typeof allowed)[number];
      throw invalid(name, raw, `one of ${allowed.join(', ')}`);
    },
    metricsPrefix(names, fallback) {
      const found = lookup(names);
      if (!found) return fallback;
      const [name, raw] = found;
      if (PROMETHEUS_PREFIX.test(raw)) return raw;
      throw invalid(name, raw, 'a Prometheus name prefix');
    },
    thresholds(names, allowedKeys) {
      const found = lookup(names);
      if (!found) return {};
      const [name, raw] = found;
      const result: Record<string, number> = {};
      for (const pair of raw.split(',')) {
        const match = /^\s*([a-z][a-z0-9_]*)\s*=\s*([-+]?\d+(?:\.\d+)?)\s*$/i.exec(pair);
        if (!match) throw invalid(name, raw, 'comma-separated key=number pairs, e.g. ack_timeout=3');
        const key = match[1]!.toLowerCase();
        if (allowedKeys && !allowedKeys.includes(key)) throw invalid(name, raw, `keys among ${allowedKeys.join(', ')}`);
        result[key] = Number(match[2]);
      }
      return result;
    },
  };
}
