import { assertNumberOption, createId, envReader, errorMessage, GuardError, linkSignal, silentLogger } from '@guard/core';
import type { Env, GuardBus, Logger, MetricsOptions } from '@guard/core';
import { ActionRegistry, ProbeRegistry } from './action-registry.js';
import { createActionRegistry } from './builtin-actions.js';
import { evaluateCondition, resolveParams } from './conditions.js';
import type { FleetLock } from './fleet-lock.js';
import { playbooksCounter, playbooksHistogram } from './metrics.js';
import { checkReferences } from './playbook-schema.js';
import type { Playbook, PlaybookTrigger } from './playbook-types.js';
import { checkSummary, failedChecks, summarize } from './run-notice.js';
import { formatPlan } from './run-result.js';
import type { PlaybookRunResult, RunOptions, RunStatus, SkipReason, StepResult, SteadyStateResult, VerificationResult } from './run-result.js';
import { StepRunner } from './step-runner.js';
import type { RunContext } from './step-runner.js';
import type {} from './declarations.js';

export { formatPlan } from './run-result.js';
export type {
  StepOutcome,
  RunStatus,
  SkipReason,
  StepResult,
  CheckResult,
  SteadyStateResult,
  VerificationResult,
  PlaybookRunResult,
  RunOptions,
} from './run-result.js';

/** Options for {@link PlaybookEngine}. */
export interface PlaybookEngineOptions extends MetricsOptions {
  /** The actions playbooks may use. Default: {@link createActionRegistry} with no objects (notify, assess, wait, ...). */
  readonly actions?: ActionRegistry;
  /** The probes verification checks may use. Default: none. */
  readonly probes?: ProbeRegistry;
  /** Playbooks to register at once. */
  readonly playbooks?: readonly Playbook[];
  /** Every run is a dry run (plans are logged, nothing changes). Default false. */
  readonly dryRun?: boolean;
  /** Runs `fleet: true` steps on exactly one instance; without it, fleet steps run locally. */
  readonly fleetLock?: FleetLock;
  /** How many runs {@link PlaybookEngine.runs} keeps. Default 100. */
  readonly historySize?: number;
  /** Where `playbookRun` and `playbookStep` notices go (the immune bridge records them). */
  readonly bus?: GuardBus;
  readonly logger?: Logger;
  readonly now?: () => number;
}

/**
 * Runs YAML playbooks: a trigger, ordered steps with declarative `when` conditions and timeouts,
 * verification checks with retries and a deadline, and rollback when verification fails. One run at a
 * time per playbook, a cooldown between runs, dry-run plans, and a `playbookRun`/`playbookStep` notice
 * on the `GuardBus` for every run and step.
 *
 * @example
 * await using engine = new PlaybookEngine({ actions, probes, bus, playbooks: await loadPlaybooks(builtinPlaybooksDir()) });
 * const [run] = await engine.trigger('message_bus.acl_violation', { actor: 'bot', topic: 'control.x', violations: 25 });
 * console.log(run?.status);
 */
export class PlaybookEngine implements PlaybookTrigger, AsyncDisposable {
  readonly #actions: ActionRegistry;
  readonly #probes: ProbeRegistry;
  readonly #playbooks = new Map<string, Playbook>();
  readonly #running = new Map<string, Promise<PlaybookRunResult>>();
  readonly #lastFinished = new Map<string, number>();
  readonly #history: PlaybookRunResult[] = [];
  readonly #historySize: number;
  readonly #dryRun: boolean;
  readonly #fleetLock: FleetLock | undefined;
  readonly #bus: GuardBus | undefined;
  readonly #logger: Logger;
  readonly #now: () => number;
  readonly #abort = new AbortController();
  readonly #runsMetric;
  readonly #stepMetric;
  readonly #runMetric;
  readonly #runner: StepRunner;
  #closed = false;

  constructor(options: PlaybookEngineOptions = {}) {
    this.#actions = options.actions ?? createActionRegistry();
    this.#probes = options.probes ?? new ProbeRegistry();
    if (!(this.#actions instanceof ActionRegistry)) throw new GuardError('INVALID_OPTION', 'actions must be an ActionRegistry', { details: { field: 'actions' } });
    this.#historySize = options.historySize ?? 100;
    assertNumberOption('historySize', this.#historySize, { min: 1, integer: true });
    this.#dryRun = options.dryRun ?? false;
    this.#fleetLock = options.fleetLock;
    this.#bus = options.bus;
    this.#logger = options.logger ?? silentLogger;
    this.#now = options.now ?? Date.now;
    this.#runsMetric = playbooksCounter(options, 'runs_total', 'Playbook runs by status', ['playbook', 'status']);
    this.#stepMetric = playbooksHistogram(options, 'step_duration_seconds', 'Playbook step duration by outcome', ['playbook', 'action', 'outcome']);
    this.#runMetric = playbooksHistogram(options, 'run_duration_seconds', 'Playbook run duration by status', ['playbook', 'status']);
    this.#runner = new StepRunner({
      actions: this.#actions,
      probes: this.#probes,
      fleetLock: this.#fleetLock,
      bus: this.#bus,
      logger: this.#logger,
      stepMetric: this.#stepMetric,
    });
    for (const playbook of options.playbooks ?? []) this.register(playbook);
  }

  /**
   * An engine configured from the environment (see {@link playbookEngineOptionsFromEnv}); `overrides`, given in
   * code, win over the environment.
   *
   * @example
   * const engine = PlaybookEngine.fromEnv(process.env, { actions, probes, bus });
   */
  static fromEnv(env: Env = process.env, overrides: PlaybookEngineOptions = {}): PlaybookEngine {
    return new PlaybookEngine({ ...playbookEngineOptionsFromEnv(env), ...overrides });
  }

  /** @deprecated use {@link playbookEngineOptionsFromEnv} (or {@link PlaybookEngine.fromEnv}). */
  static optionsFromEnv(env: Env = process.env): Pick<PlaybookEngineOptions, 'dryRun' | 'historySize'> {
    return playbookEngineOptionsFromEnv(env);
  }

  /** Adds a playbook. Throws `UNKNOWN_ACTION` for actions/probes not in the registries, `INVALID_INPUT` for a taken name. */
  register(playbook: Playbook): void {
    if (this.#closed) throw new GuardError('CLOSED', 'PlaybookEngine is closed');
    if (this.#playbooks.has(playbook.name)) throw new GuardError('INVALID_INPUT', `playbook "${playbook.name}" is already registered`, { details: { field: 'name', name: playbook.name } });
    const where = playbook.source ? ` (${playbook.source})` : '';
    const [problem] = checkReferences(playbook);
    if (problem) {
      throw new GuardError('INVALID_PLAYBOOK', `${problem.message}${where} at ${problem.path.join('.')}`, {
        details: { playbook: playbook.name, path: problem.path.join('.'), ...(problem.field === undefined ? {} : { field: problem.field }), file: playbook.source },
      });
    }
    for (const step of [...playbook.steps, ...playbook.rollback]) {
      if (!this.#actions.has(step.action)) {
        throw new GuardError('UNKNOWN_ACTION', `playbook "${playbook.name}"${where} step "${step.id}" uses unknown action "${step.action}"; known: ${this.#actions.names().join(', ')}`, {
          details: { playbook: playbook.name, step: step.id, action: step.action, file: playbook.source },
        });
      }
    }
    for (const check of playbook.verify?.checks ?? []) {
      if (!this.#probes.has(check.probe)) {
        throw new GuardError('UNKNOWN_ACTION', `playbook "${playbook.name}"${where} check "${check.id}" uses unknown probe "${check.probe}"; known: ${this.#probes.names().join(', ') || '(none)'}`, {
          details: { playbook: playbook.name, check: check.id, probe: check.probe, file: playbook.source },
        });
      }
    }
    this.#playbooks.set(playbook.name, playbook);
  }

  /** Removes a playbook. @returns true when it was registered. */
  unregister(name: string): boolean {
    return this.#playbooks.delete(name);
  }

  /** Registered playbooks. */
  playbooks(): Playbook[] {
    return [...this.#playbooks.values()];
  }

  /** The action registry (to check names or add actions). */
  get actions(): ActionRegistry {
    return this.#actions;
  }

  /** The probe registry. */
  get probes(): ProbeRegistry {
    return this.#probes;
  }

  /** True while a run of `name` is in progress (for `key`, or for any key when omitted). */
  isRunning(name: string, key?: string): boolean {
    if (key !== undefined) return this.#running.has(slot(name, key));
    for (const k of this.#running.keys()) if (k.startsWith(`${name}\u0000`)) return true;
    return false;
  }

  /** Recent runs, newest last. */
  runs(): readonly PlaybookRunResult[] {
    return [...this.#history];
  }

  /**
   * Starts every playbook whose trigger matches `event` and whose conditions hold for `data`
   * (conditions read `event.<field>`). Resolves with their results (skipped ones included).
   */
  async trigger(event: string, data: Readonly<Record<string, unknown>> = {}, options: RunOptions = {}): Promise<PlaybookRunResult[]> {
    if (this.#closed) throw new GuardError('CLOSED', 'PlaybookEngine is closed');
    options.signal?.throwIfAborted();
    const matching = [...this.#playbooks.values()].filter((p) => p.trigger.event === event && evaluateCondition(p.trigger.conditions, { event: data }));
    return Promise.all(matching.map((p) => this.#start(p, data, options)));
  }

  /** Runs one playbook by name, bypassing its trigger conditions. Throws `UNKNOWN_PLAYBOOK`. */
  async run(name: string, data: Readonly<Record<string, unknown>> = {}, options: RunOptions = {}): Promise<PlaybookRunResult> {
    if (this.#closed) throw new GuardError('CLOSED', 'PlaybookEngine is closed');
    options.signal?.throwIfAborted();
    const playbook = this.#playbooks.get(name);
    if (!playbook) throw new GuardError('UNKNOWN_PLAYBOOK', `no playbook named "${name}"`, { details: { playbook: name } });
    return this.#start(playbook, data, options);
  }

  /** A dry run of `name`: the plan, with nothing changed. */
  plan(name: string, data: Readonly<Record<string, unknown>> = {}): Promise<PlaybookRunResult> {
    return this.run(name, data, { dryRun: true });
  }

  /** Aborts runs in flight (their rollbacks are skipped) and waits for them. */
  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    this.#abort.abort(new GuardError('CLOSED', 'PlaybookEngine is closed'));
    await Promise.allSettled([...this.#running.values()]);
  }

  [Symbol.asyncDispose](): Promise<void> {
    return this.close();
  }

  #start(playbook: Playbook, data: Readonly<Record<string, unknown>>, options: RunOptions): Promise<PlaybookRunResult> {
    const dryRun = options.dryRun ?? this.#dryRun;
    const runId = createId('run');
    const now = this.#now();
    const key = runKey(playbook, data);
    const id = slot(playbook.name, key);
    if (!dryRun) {
      if (this.#running.has(id)) return Promise.resolve(this.#skip(playbook, runId, key, 'running', options.reason, now));
      const last = this.#lastFinished.get(id);
      if (!options.force && last !== undefined && now - last < playbook.cooldownMs) {
        return Promise.resolve(this.#skip(playbook, runId, key, 'cooldown', options.reason, now));
      }
    }
    const promise = this.#execute(playbook, runId, key, data, dryRun, options)
      .finally(() => {
        if (!dryRun) this.#running.delete(id);
      })
      .then((result) => {
      if (!dryRun) {
        if (result.status !== 'skipped') this.#lastFinished.set(id, this.#now());
        // Keys come from events: forget expired cooldowns so the map stays bounded.
        if (this.#lastFinished.size > 10_000) {
          const cutoff = this.#now() - playbook.cooldownMs;
          for (const [k, t] of this.#lastFinished) if (t < cutoff) this.#lastFinished.delete(k);
        }
      }
      return result;
    });
    if (!dryRun) this.#running.set(id, promise);
    return promise;
  }

  #skip(playbook: Playbook, runId: string, key: string, skipReason: SkipReason, reason: string | undefined, at: number): PlaybookRunResult {
    const result: PlaybookRunResult = {
      runId,
      playbook: playbook.name,
      status: 'skipped',
      dryRun: false,
      ...(reason === undefined ? {} : { reason }),
      skipReason,
      key,
      startedAt: at,
      finishedAt: at,
      durationMs: 0,
      steps: [],
      rollback: [],
    };
    this.#remember(result);
    this.#runsMetric.inc({ playbook: playbook.name, status: 'skipped' });
    this.#bus?.emit('playbookRun', {
      runId,
      playbook: playbook.name,
      status: 'skipped',
      dryRun: false,
      reason: reason ? `${reason} (skipped: ${skipReason})` : `skipped: ${skipReason}`,
      ...(key === '' ? {} : { key }),
      startedAt: at,
      finishedAt: at,
      steps: [],
    });
    return result;
  }

  async #execute(playbook: Playbook, runId: string, key: string, data: Readonly<Record<string, unknown>>, dryRun: boolean, options: RunOptions): Promise<PlaybookRunResult> {
    const startedAt = this.#now();
    const t0 = performance.now();
    const reason = options.reason;
    this.#bus?.emit('playbookRun', { runId, playbook: playbook.name, status: 'started', dryRun, ...(reason === undefined ? {} : { reason }), ...(key === '' ? {} : { key }), startedAt });
    this.#logger.info({ runId, playbook: playbook.name, dryRun, reason, key }, 'playbook run started');

    // The run ends on close(), on the caller's signal or at the playbook's timeout.
    const run = linkSignal([this.#abort.signal, options.signal], {
      timeoutMs: playbook.timeoutMs,
      timeoutReason: () => new GuardError('TIMEOUT', `playbook ${playbook.name} exceeded ${playbook.timeoutMs} ms`),
    });
    const signal = run.signal;

    const context: RunContext = {
      event: data,
      steps: {},
      playbook: { name: playbook.name },
      run: { id: runId, key, ...(reason === undefined ? {} : { reason }) },
    };
    const steps: StepResult[] = [];
    const rollback: StepResult[] = [];
    let verification: VerificationResult | undefined;
    let before: SteadyStateResult | undefined;
    let after: SteadyStateResult | undefined;
    let error: string | undefined;
    let failed = false;
    let skipped = false;

    try {
      if (!dryRun && playbook.before) {
        before = await this.#runner.steadyState(playbook, runId, 'before', playbook.before.checks, context, signal);
        if (!before.passed && playbook.before.onFailure === 'skip') skipped = true;
      }
      for (const step of skipped ? [] : playbook.steps) {
        if (signal.aborted) {
          failed = true;
          error = errorMessage(signal.reason);
          break;
        }
        const result = await this.#runner.step(playbook, runId, step, context, dryRun, signal);
        steps.push(result);
        context.steps[step.id] = { outcome: result.outcome, ...(result.output === undefined ? {} : { output: result.output }) };
        if ((result.outcome === 'failed' || result.outcome === 'timeout') && !step.continueOnError) {
          failed = true;
          error = `step ${step.id} ${result.outcome}: ${result.error ?? ''}`.trim();
          break;
        }
      }
      if (!skipped && !failed && !dryRun && playbook.verify) {
        verification = await this.#runner.verify(playbook, runId, context, signal);
        if (!verification.passed) {
          failed = true;
          error = signal.aborted ? errorMessage(signal.reason) : `verification failed after ${verification.attempts} attempts: ${failedChecks(verification.checks)}`;
        }
      }
      if (!skipped && !failed && !dryRun && playbook.after) {
        after = await this.#runner.steadyState(playbook, runId, 'after', playbook.after.checks, context, signal);
        if (!after.passed) {
          failed = true;
          error = `steady state after the run does not hold: ${failedChecks(after.checks)}`;
        }
      }
      if (failed && !dryRun && playbook.rollback.length > 0 && !this.#abort.signal.aborted) {
        // Rollback gets its own budget (only close() stops it): the run's signal may already be aborted by its timeout.
        for (const step of playbook.rollback) {
          const result = await this.#runner.step(playbook, runId, step, context, false, this.#abort.signal);
          rollback.push(result);
          context.steps[step.id] = { outcome: result.outcome, ...(result.output === undefined ? {} : { output: result.output }) };
        }
      }
    } finally {
      run.dispose();
    }

    const status: RunStatus = skipped
      ? 'skipped'
      : !failed
        ? 'succeeded'
        : rollback.length > 0 && rollback.every((r) => r.outcome === 'succeeded' || r.outcome === 'skipped')
          ? 'rolled_back'
          : 'failed';
    if (skipped) error = `steady state before the run does not hold: ${failedChecks(before!.checks)}`;
    const finishedAt = this.#now();
    const result: PlaybookRunResult = {
      runId,
      playbook: playbook.name,
      status,
      dryRun,
      ...(reason === undefined ? {} : { reason }),
      ...(skipped ? { skipReason: 'steady_state' as const } : {}),
      key,
      startedAt,
      finishedAt,
      durationMs: performance.now() - t0,
      steps,
      ...(verification ? { verification } : {}),
      ...(before ? { before } : {}),
      ...(after ? { after } : {}),
      rollback,
      ...(error === undefined ? {} : { error }),
    };
    this.#remember(result);
    this.#runsMetric.inc({ playbook: playbook.name, status });
    this.#runMetric.observe({ playbook: playbook.name, status }, result.durationMs / 1000);
    this.#bus?.emit('playbookRun', {
      runId,
      playbook: playbook.name,
      status,
      dryRun,
      ...(reason === undefined ? {} : { reason }),
      ...(key === '' ? {} : { key }),
      startedAt,
      finishedAt,
      ...(error === undefined ? {} : { error }),
      steps: steps.map(summarize),
      ...(rollback.length > 0 ? { rollback: rollback.map(summarize) } : {}),
      ...(verification ? { verification: { passed: verification.passed, attempts: verification.attempts, checks: verification.checks.map(checkSummary) } } : {}),
      ...(before ? { before: { passed: before.passed, checks: before.checks.map(checkSummary) } } : {}),
      ...(after ? { after: { passed: after.passed, checks: after.checks.map(checkSummary) } } : {}),
    });
    if (dryRun) this.#logger.info({ runId, playbook: playbook.name }, formatPlan(result));
    else this.#logger.info({ runId, playbook: playbook.name, status, error }, `playbook run ${status}`);
    return result;
  }

  #remember(result: PlaybookRunResult): void {
    this.#history.push(result);
    if (this.#history.length > this.#historySize) this.#history.shift();
  }
}

/** The resolved `concurrency_key` ('' without one; objects as JSON, so two different values never share a key). */
function runKey(playbook: Playbook, data: Readonly<Record<string, unknown>>): string {
  if (playbook.concurrencyKey === undefined) return '';
  const value: unknown = resolveParams(playbook.concurrencyKey, { event: data, playbook: { name: playbook.name } });
  if (value === undefined || value === null) return '';
  return typeof value === 'object' ? JSON.stringify(value) : String(value as string | number | boolean);
}

function slot(name: string, key: string): string {
  return `${name}\u0000${key}`;
}

/**
 * Reads `GUARD_PLAYBOOKS_DRY_RUN` (boolean, default false) and `GUARD_PLAYBOOKS_HISTORY` (runs kept, default 100).
 * A bad value throws `INVALID_ENV` naming the variable.
 *
 * @example
 * const engine = new PlaybookEngine({ ...playbookEngineOptionsFromEnv(process.env), actions, probes });
 */
export function playbookEngineOptionsFromEnv(env: Env = process.env): Pick<PlaybookEngineOptions, 'dryRun' | 'historySize'> {
  const r = envReader(env);
  return {
    dryRun: r.boolean('GUARD_PLAYBOOKS_DRY_RUN', false),
    historySize: r.number('GUARD_PLAYBOOKS_HISTORY', 100, { min: 1, integer: true }),
  };
}
