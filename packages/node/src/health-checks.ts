import { GuardError, assertNumberOption, errorMessage, linkSignal, raceAbort } from '@guard/core';

/**
 * A health check: resolves (any value but `false`) when healthy; throws or resolves `false` when not.
 * It gets an AbortSignal that fires at its timeout.
 *
 * @example
 * const check: HealthCheck = async (signal) => { await db.selectFrom('t').select('id').limit(1).execute(); };
 */
export type HealthCheck = (signal: AbortSignal) => unknown;

/** Which probe a check belongs to. */
export type ProbeKind = 'readiness' | 'liveness';

/**
 * Options of {@link HealthChecks.add}.
 *
 * @example
 * guard.addCheck('cache', () => redis.ping(), { critical: false, timeoutMs: 500 });
 */
export interface HealthCheckOptions {
  /** A failing critical check fails the probe; a non-critical one is reported and the probe still passes. Default true. */
  readonly critical?: boolean;
  /** The check fails when it takes longer than this. Default: the guard's `healthCheckTimeoutMs` (1000). */
  readonly timeoutMs?: number;
  /** Which probe runs it. Default `readiness`. */
  readonly probe?: ProbeKind | 'both';
}

/**
 * One check's outcome.
 *
 * @example
 * report.checks.filter((c: CheckResult) => !c.ok);
 */
export interface CheckResult {
  readonly name: string;
  readonly ok: boolean;
  readonly critical: boolean;
  readonly durationMs: number;
  /** Why it failed. */
  readonly message?: string;
}

/**
 * A probe's outcome: `ok` unless a critical check failed.
 *
 * @example
 * const report: HealthReport = await checks.run('readiness');
 */
export interface HealthReport {
  readonly probe: ProbeKind;
  readonly ok: boolean;
  readonly checks: readonly CheckResult[];
}

interface Registered {
  readonly fn: HealthCheck;
  readonly critical: boolean;
  readonly timeoutMs: number;
  readonly probes: ReadonlySet<ProbeKind>;
}

const NAME = /^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$/;

/**
 * Named readiness and liveness checks, run concurrently, each under its own timeout (the kube-apiserver's
 * `/readyz` model: every check has a name and can be excluded with `?exclude=name`).
 *
 * @example
 * const checks = new HealthChecks({ defaultTimeoutMs: 1_000 });
 * checks.add('db', (signal) => pool.query('select 1'), { critical: true });
 * const report = await checks.run('readiness');
 */
export class HealthChecks {
  readonly #checks = new Map<string, Registered>();
  readonly #defaultTimeoutMs: number;

  constructor(options: { readonly defaultTimeoutMs?: number } = {}) {
    this.#defaultTimeoutMs = options.defaultTimeoutMs ?? 1_000;
    assertNumberOption('healthCheckTimeoutMs', this.#defaultTimeoutMs, { min: 1 });
  }

  /** Adds a check; returns a function that removes it. A name can be registered once. */
  add(name: string, fn: HealthCheck, options: HealthCheckOptions = {}): () => void {
    if (typeof name !== 'string' || !NAME.test(name)) {
      throw new GuardError('INVALID_OPTION', `check name must match ${NAME}, got ${JSON.stringify(name)}`, { details: { field: 'name' } });
    }
    if (typeof fn !== 'function') throw new GuardError('INVALID_OPTION', `check ${name} needs a function`, { details: { field: 'fn' } });
    if (this.#checks.has(name)) throw new GuardError('INVALID_OPTION', `a check named ${name} already exists`, { details: { field: 'name' } });
    const timeoutMs = options.timeoutMs ?? this.#defaultTimeoutMs;
    assertNumberOption('timeoutMs', timeoutMs, { min: 1 });
    const probe = options.probe ?? 'readiness';
    if (probe !== 'readiness' && probe !== 'liveness' && probe !== 'both') {
      throw new GuardError('INVALID_OPTION', `probe must be readiness, liveness or both, got ${String(probe)}`, { details: { field: 'probe' } });
    }
    const registered: Registered = {
      fn,
      critical: options.critical ?? true,
      timeoutMs,
      probes: new Set<ProbeKind>(probe === 'both' ? ['readiness', 'liveness'] : [probe]),
    };
    this.#checks.set(name, registered);
    return () => {
      if (this.#checks.get(name) === registered) this.#checks.delete(name);
    };
  }

  /** Names of the checks of a probe, in registration order. */
  names(probe: ProbeKind): string[] {
    return [...this.#checks].filter(([, c]) => c.probes.has(probe)).map(([name]) => name);
  }

  /** Runs the probe's checks (minus `exclude`) concurrently. Never throws. */
  async run(probe: ProbeKind, options: { readonly exclude?: readonly string[] } = {}): Promise<HealthReport> {
    const excluded = new Set(options.exclude ?? []);
    const entries = [...this.#checks].filter(([name, c]) => c.probes.has(probe) && !excluded.has(name));
    const checks = await Promise.all(entries.map(([name, check]) => runOne(name, check)));
    return { probe, ok: checks.every((c) => c.ok || !c.critical), checks };
  }
}

async function runOne(name: string, check: Registered): Promise<CheckResult> {
  const started = performance.now();
  // linkSignal's timer is the global setTimeout (not AbortSignal.timeout), so tests drive it with fake timers.
  const deadline = linkSignal(undefined, {
    timeoutMs: check.timeoutMs,
    timeoutReason: () => new GuardError('TIMEOUT', `check ${name} timed out after ${check.timeoutMs} ms`),
  });
  const signal = deadline.signal;
  const done = (ok: boolean, message?: string): CheckResult => ({
    name,
    ok,
    critical: check.critical,
    durationMs: Math.round((performance.now() - started) * 1000) / 1000,
    ...(message === undefined ? {} : { message }),
  });
  try {
    const value = await raceAbort(Promise.resolve().then(() => check.fn(signal)), signal);
    return value === false ? done(false, 'check returned false') : done(true);
  } catch (error) {
    if (signal.aborted) return done(false, `timed out after ${check.timeoutMs} ms`);
    return done(false, errorMessage(error));
  } finally {
    deadline.dispose();
  }
}
