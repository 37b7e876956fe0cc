import { assertNumberOption, createId, envReader, GuardError, isGuardError, silentLogger } from '@guard/core';
import type { Env, GuardBus, Logger, MetricsOptions, PlaybookStepNotice } from '@guard/core';
import type { ActionContext } from './action-registry.js';
import { ActionRegistry, ProbeRegistry } from './action-registry.js';
import { createActionRegistry } from './builtin-actions.js';
import { compare, conditionReads, evaluateCondition, resolveParams } from './conditions.js';
import type { FleetLock } from './fleet-lock.js';
import { playbooksCounter, playbooksHistogram } from './metrics.js';
import type { Playbook, PlaybookCheck, PlaybookStep, PlaybookTrigger } from './playbook-types.js';
import { checkSummary, failedChecks, summarize } from './run-notice.js';
import './declarations.js';

/** How a step ended. `planned` is a dry-run step. */
export type StepOutcome = PlaybookStepNotice['outcome'];

/** How a run ended. `rolled_back`: a step failed or verification failed, and the rollback steps ran. */
export type RunStatus = 'succeeded' | 'failed' | 'rolled_back' | 'skipped';

/** Why a run was skipped. */
export type SkipReason = 'cooldown' | 'running' | 'conditions' | 'steady_state';

/** The result of one step. */
export interface StepResult {
  readonly id: string;
  readonly action: string;
  readonly outcome: StepOutcome;
  readonly durationMs: number;
  readonly params: Readonly<Record<string, unknown>>;
  readonly output?: unknown;
  readonly error?: string;
  /** For fleet steps: ran here, or skipped because another instance holds or already ran it. */
  readonly fleet?: 'ran' | 'held' | 'done';
  /** Dry run: the `when` condition depends on earlier steps' outputs, so it is decided at run time. */
  readonly conditional?: boolean;
  /** Attempts made (more than 1 when `retry` kicked in; for `for_each` steps, the most any item needed). */
  readonly attempts?: number;
  /** `for_each` steps: the items the step ran for (per-item results are in `output.items`). */
  readonly items?: readonly unknown[];
}

/** One verification check's last evaluation. */
export interface CheckResult {
  readonly id: string;
  readonly probe: string;
  readonly op: string;
  readonly expected?: unknown;
  readonly value: unknown;
  readonly passed: boolean;
  readonly error?: string;
}

/** A steady-state measurement (`before` or `after`). */
export interface SteadyStateResult {
  readonly passed: boolean;
  readonly checks: readonly CheckResult[];
}

/** The verification phase of a run. */
export interface VerificationResult {
  readonly passed: boolean;
  readonly attempts: number;
  readonly checks: readonly CheckResult[];
}

/** Everything that happened in one run (also kept in {@link PlaybookEngine.runs}). */
export interface PlaybookRunResult {
  readonly runId: string;
  readonly playbook: string;
  readonly status: RunStatus;
  readonly dryRun: boolean;
  readonly reason?: string;
  readonly skipReason?: SkipReason;
  /** The resolved `concurrency_key` ('' when the playbook has none). */
  readonly key: string;
  readonly startedAt: number;
  readonly finishedAt: number;
  readonly durationMs: number;
  readonly steps: readonly StepResult[];
  readonly verification?: VerificationResult;
  /** Steady state before the steps (reported; fails the run only with `on_failure: skip`, as a skip). */
  readonly before?: SteadyStateResult;
  /** Steady state after verification (a failure fails the run). */
  readonly after?: SteadyStateResult;
  readonly rollback: readonly StepResult[];
  readonly error?: string;
}

/** Options of one run. */
export interface RunOptions {
  /** Why the run started (kept in notices and results). */
  readonly reason?: string;
  /** Plan only: evaluate conditions and params, change nothing. Default: the engine's `dryRun`. */
  readonly dryRun?: boolean;
  /** Ignore the cooldown (still one run at a time). */
  readonly force?: boolean;
  readonly signal?: AbortSignal;
}

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
    for (const playbook of options.playbooks ?? []) this.register(playbook);
  }

  /**
   * Reads `GUARD_PLAYBOOKS_DRY_RUN` (boolean, default false) and `GUARD_PLAYBOOKS_HISTORY` (runs kept, default 100).
   *
   * @example
   * const engine = new PlaybookEngine({ ...PlaybookEngine.optionsFromEnv(), actions, probes });
   */
  static optionsFromEnv(env: Env = process.env): Pick<PlaybookEngineOptions, 'dryRun' | 'historySize'> {
    const r = envReader(env);
    return {
      dryRun: r.boolean('GUARD_PLAYBOOKS_DRY_RUN', false),
      historySize: r.number('GUARD_PLAYBOOKS_HISTORY', 100, { min: 1, integer: true }),
    };
  }

  /** Adds a playbook. Throws `UNKNOWN_ACTION` for actions/probes not in the registries, `DUPLICATE` for a taken name. */
  register(playbook: Playbook): void {
    if (this.#closed) throw new GuardError('CLOSED', 'PlaybookEngine is closed');
    if (this.#playbooks.has(playbook.name)) throw new GuardError('DUPLICATE', `playbook "${playbook.name}" is already registered`, { details: { name: playbook.name } });
    const where = playbook.source ? ` (${playbook.source})` : '';
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

    const controller = new AbortController();
    const signals = [this.#abort.signal, ...(options.signal ? [options.signal] : [])];
    const onAbort = (): void => controller.abort(signals.find((s) => s.aborted)?.reason);
    for (const s of signals) s.addEventListener('abort', onAbort, { once: true });
    if (signals.some((s) => s.aborted)) onAbort();
    const runTimer = setTimeout(() => controller.abort(new GuardError('TIMEOUT', `playbook ${playbook.name} exceeded ${playbook.timeoutMs} ms`)), playbook.timeoutMs);
    const signal = controller.signal;

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
        before = await this.#steadyState(playbook, runId, 'before', playbook.before.checks, context, signal);
        if (!before.passed && playbook.before.onFailure === 'skip') skipped = true;
      }
      for (const step of skipped ? [] : playbook.steps) {
        if (signal.aborted) {
          failed = true;
          error = reasonText(signal.reason);
          break;
        }
        const result = await this.#step(playbook, runId, step, context, dryRun, signal);
        steps.push(result);
        context.steps[step.id] = { outcome: result.outcome, ...(result.output === undefined ? {} : { output: result.output }) };
        if ((result.outcome === 'failed' || result.outcome === 'timeout') && !step.continueOnError) {
          failed = true;
          error = `step ${step.id} ${result.outcome}: ${result.error ?? ''}`.trim();
          break;
        }
      }
      if (!skipped && !failed && !dryRun && playbook.verify) {
        verification = await this.#verify(playbook, runId, context, signal);
        if (!verification.passed) {
          failed = true;
          error = signal.aborted ? reasonText(signal.reason) : `verification failed after ${verification.attempts} attempts: ${failedChecks(verification.checks)}`;
        }
      }
      if (!skipped && !failed && !dryRun && playbook.after) {
        after = await this.#steadyState(playbook, runId, 'after', playbook.after.checks, context, signal);
        if (!after.passed) {
          failed = true;
          error = `steady state after the run does not hold: ${failedChecks(after.checks)}`;
        }
      }
      if (failed && !dryRun && playbook.rollback.length > 0 && !this.#abort.signal.aborted) {
        // Rollback gets its own budget: the run's signal may already be aborted by its timeout.
        const rollbackController = new AbortController();
        const onClose = (): void => rollbackController.abort(this.#abort.signal.reason);
        this.#abort.signal.addEventListener('abort', onClose, { once: true });
        try {
          for (const step of playbook.rollback) {
            const result = await this.#step(playbook, runId, step, context, false, rollbackController.signal);
            rollback.push(result);
            context.steps[step.id] = { outcome: result.outcome, ...(result.output === undefined ? {} : { output: result.output }) };
          }
        } finally {
          this.#abort.signal.removeEventListener('abort', onClose);
        }
      }
    } finally {
      clearTimeout(runTimer);
      for (const s of signals) s.removeEventListener('abort', onAbort);
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

  async #step(
    playbook: Playbook,
    runId: string,
    step: PlaybookStep,
    context: RunContext,
    dryRun: boolean,
    runSignal: AbortSignal,
  ): Promise<StepResult> {
    const t0 = performance.now();
    let items: unknown[] | undefined;
    let itemsError: string | undefined;
    if (step.forEach !== undefined) {
      const list: unknown = resolveParams(step.forEach, context);
      if (Array.isArray(list)) items = list.slice(0, MAX_ITEMS);
      else itemsError = `for_each ${step.forEach} is not a list (got ${list === undefined ? 'nothing' : typeof list})`;
    }
    const params = resolveParams(step.params, items && items.length > 0 ? { ...context, item: items[0], item_index: 0 } : context) as Record<string, unknown>;
    const base = { id: step.id, action: step.action, params, ...(items ? { items } : {}) };
    let result: StepResult;
    const conditional = dryRun && conditionReads(step.when, 'steps');
    if (!conditional && !evaluateCondition(step.when, context)) {
      result = { ...base, outcome: 'skipped', durationMs: 0 };
    } else if (itemsError !== undefined) {
      result = { ...base, outcome: dryRun ? 'planned' : 'failed', durationMs: 0, error: itemsError };
    } else if (dryRun) {
      result = { ...base, outcome: 'planned', durationMs: 0, ...(conditional ? { conditional } : {}), ...(step.fleet ? { fleet: 'ran' as const } : {}) };
    } else if (step.fleet && this.#fleetLock) {
      const lock = await this.#fleetLock
        .tryRun(`${playbook.name}:${step.id}`, () => this.#run(playbook, runId, step, items, context, runSignal, t0))
        .catch((error: unknown): { acquired: true; value: StepResult; lockError: true } => ({
          acquired: true,
          value: { ...base, outcome: 'failed', durationMs: performance.now() - t0, error: `fleet lock: ${reasonText(error)}` },
          lockError: true,
        }));
      if (!lock.acquired) result = { ...base, outcome: 'skipped', durationMs: performance.now() - t0, fleet: lock.reason };
      else result = 'lockError' in lock ? lock.value : { ...lock.value, fleet: 'ran' };
    } else {
      result = await this.#run(playbook, runId, step, items, context, runSignal, t0);
    }
    this.#stepMetric.observe({ playbook: playbook.name, action: step.action, outcome: result.outcome }, result.durationMs / 1000);
    this.#bus?.emit('playbookStep', {
      runId,
      playbook: playbook.name,
      step: step.id,
      action: step.action,
      outcome: result.outcome,
      durationMs: result.durationMs,
      ...(result.error === undefined ? {} : { error: result.error }),
    });
    return result;
  }

  /** Runs a step's action (once, or once per `for_each` item), with its retries. */
  async #run(
    playbook: Playbook,
    runId: string,
    step: PlaybookStep,
    items: unknown[] | undefined,
    context: RunContext,
    runSignal: AbortSignal,
    t0: number,
  ): Promise<StepResult> {
    if (items === undefined) {
      const params = resolveParams(step.params, context) as Record<string, unknown>;
      const r = await this.#attempts(playbook, runId, step, params, context, runSignal);
      return {
        id: step.id,
        action: step.action,
        params,
        outcome: r.outcome,
        durationMs: performance.now() - t0,
        attempts: r.attempts,
        ...(r.output === undefined ? {} : { output: r.output }),
        ...(r.error === undefined ? {} : { error: r.error }),
      };
    }
    const perItem: { item: unknown; outcome: StepOutcome; attempts: number; output?: unknown; error?: string }[] = [];
    let firstParams: Record<string, unknown> = {};
    for (const [index, item] of items.entries()) {
      if (runSignal.aborted) break;
      const itemContext = { ...context, item, item_index: index };
      const params = resolveParams(step.params, itemContext) as Record<string, unknown>;
      if (index === 0) firstParams = params;
      const r = await this.#attempts(playbook, runId, step, params, itemContext, runSignal);
      perItem.push({ item, ...r });
    }
    const failures = perItem.filter((r) => r.outcome !== 'succeeded');
    const outcome: StepOutcome = failures.length === 0 && perItem.length === items.length ? 'succeeded' : failures.every((f) => f.outcome === 'timeout') && failures.length > 0 ? 'timeout' : 'failed';
    return {
      id: step.id,
      action: step.action,
      params: firstParams,
      items,
      outcome,
      durationMs: performance.now() - t0,
      attempts: Math.max(0, ...perItem.map((r) => r.attempts)),
      output: { items: perItem, succeeded: perItem.length - failures.length, failed: failures.length },
      ...(outcome === 'succeeded'
        ? {}
        : { error: failures.length > 0 ? failures.map((f) => `${JSON.stringify(f.item)}: ${f.error ?? f.outcome}`).join('; ') : 'aborted before every item ran' }),
    };
  }

  /** One action call, repeated per `retry` after a failure or timeout (never after the run was aborted). */
  async #attempts(
    playbook: Playbook,
    runId: string,
    step: PlaybookStep,
    params: Record<string, unknown>,
    context: RunContext,
    runSignal: AbortSignal,
  ): Promise<{ outcome: StepOutcome; attempts: number; output?: unknown; error?: string }> {
    let attempts = 0;
    for (;;) {
      attempts++;
      const r = await this.#invoke(playbook, runId, step, params, context, runSignal);
      if (r.outcome === 'succeeded' || attempts > (step.retry?.count ?? 0) || runSignal.aborted) return { ...r, attempts };
      this.#logger.info({ runId, playbook: playbook.name, step: step.id, attempt: attempts, error: r.error }, 'playbook step failed; retrying');
      try {
        await sleep(step.retry?.delayMs ?? 0, runSignal);
      } catch {
        return { ...r, attempts };
      }
    }
  }

  async #invoke(
    playbook: Playbook,
    runId: string,
    step: PlaybookStep,
    params: Record<string, unknown>,
    context: RunContext,
    runSignal: AbortSignal,
  ): Promise<{ outcome: StepOutcome; output?: unknown; error?: string }> {
    const controller = new AbortController();
    const onRunAbort = (): void => controller.abort(runSignal.reason);
    runSignal.addEventListener('abort', onRunAbort, { once: true });
    if (runSignal.aborted) onRunAbort();
    const timer = setTimeout(() => controller.abort(new GuardError('TIMEOUT', `step ${step.id} exceeded ${step.timeoutMs} ms`)), step.timeoutMs);
    const actionContext: ActionContext = {
      runId,
      playbook: playbook.name,
      step: step.id,
      event: context.event,
      signal: controller.signal,
      logger: this.#logger,
      probe: (name, p = {}) => this.#probe(name, p, controller.signal),
    };
    try {
      const handler = this.#actions.get(step.action);
      const output = await abortable(Promise.resolve().then(() => handler(params, actionContext)), controller.signal);
      return { outcome: 'succeeded', ...(output === undefined ? {} : { output }) };
    } catch (error) {
      const timedOut = isGuardError(error, 'TIMEOUT');
      this.#logger.warn({ err: error, runId, playbook: playbook.name, step: step.id }, `playbook step ${timedOut ? 'timed out' : 'failed'}`);
      return { outcome: timedOut ? 'timeout' : 'failed', error: reasonText(error) };
    } finally {
      clearTimeout(timer);
      runSignal.removeEventListener('abort', onRunAbort);
    }
  }

  async #probe(name: string, params: Readonly<Record<string, unknown>>, signal: AbortSignal): Promise<unknown> {
    const handler = this.#probes.get(name);
    return abortable(Promise.resolve().then(() => handler(params, { signal })), signal);
  }

  /** Evaluates checks once. */
  async #checks(checks: readonly PlaybookCheck[], context: RunContext, signal: AbortSignal): Promise<CheckResult[]> {
    const out: CheckResult[] = [];
    for (const check of checks) {
      const expected = check.value === undefined ? {} : { expected: check.value };
      try {
        const value = await this.#probe(check.probe, resolveParams(check.params, context) as Record<string, unknown>, signal);
        out.push({ id: check.id, probe: check.probe, op: check.op, ...expected, value, passed: compare(value, check.op, check.value) });
      } catch (error) {
        out.push({ id: check.id, probe: check.probe, op: check.op, ...expected, value: undefined, passed: false, error: reasonText(error) });
      }
    }
    return out;
  }

  async #steadyState(playbook: Playbook, runId: string, phase: 'before' | 'after', checks: readonly PlaybookCheck[], context: RunContext, signal: AbortSignal): Promise<SteadyStateResult> {
    const t0 = performance.now();
    const results = await this.#checks(checks, context, signal);
    const passed = results.every((c) => c.passed);
    const durationMs = performance.now() - t0;
    if (!passed) this.#logger.warn({ runId, playbook: playbook.name, phase, checks: results }, `steady state ${phase} the run does not hold`);
    this.#stepMetric.observe({ playbook: playbook.name, action: phase, outcome: passed ? 'succeeded' : 'failed' }, durationMs / 1000);
    this.#bus?.emit('playbookStep', {
      runId,
      playbook: playbook.name,
      step: phase,
      action: phase,
      outcome: passed ? 'succeeded' : 'failed',
      durationMs,
      ...(passed ? {} : { error: failedChecks(results) }),
    });
    return { passed, checks: results };
  }

  async #verify(playbook: Playbook, runId: string, context: RunContext, signal: AbortSignal): Promise<VerificationResult> {
    const verify = playbook.verify!;
    const t0 = performance.now();
    const deadline = t0 + verify.deadlineMs;
    let attempts = 0;
    let checks: CheckResult[] = [];
    let passed = false;
    while (!signal.aborted) {
      attempts++;
      checks = await this.#checks(verify.checks, context, signal);
      passed = checks.every((c) => c.passed);
      if (passed || attempts > verify.retries || performance.now() + verify.intervalMs > deadline) break;
      await sleep(verify.intervalMs, signal).catch(() => undefined);
    }
    const durationMs = performance.now() - t0;
    this.#stepMetric.observe({ playbook: playbook.name, action: 'verify', outcome: passed ? 'succeeded' : 'failed' }, durationMs / 1000);
    this.#bus?.emit('playbookStep', {
      runId,
      playbook: playbook.name,
      step: 'verify',
      action: 'verify',
      outcome: passed ? 'succeeded' : 'failed',
      durationMs,
      ...(passed ? {} : { error: failedChecks(checks) }),
    });
    return { passed, attempts, checks };
  }

  #remember(result: PlaybookRunResult): void {
    this.#history.push(result);
    if (this.#history.length > this.#historySize) this.#history.shift();
  }
}

/**
 * Formats a run (usually a dry run) as a readable plan.
 *
 * @example
 * console.log(formatPlan(await engine.plan('resource_pressure_cpu', { level: 93 })));
 */
export function formatPlan(result: PlaybookRunResult): string {
  const lines = [`playbook ${result.playbook}${result.dryRun ? ' (dry run)' : ''}: ${result.status}`];
  result.steps.forEach((s, i) => {
    const note = s.outcome === 'skipped' ? ' [skipped: condition false]' : s.conditional ? ' [if condition holds]' : s.error ? ` [${s.error}]` : '';
    const each = s.items ? ` for each of ${JSON.stringify(s.items)}` : '';
    lines.push(`  ${i + 1}. ${s.id}: ${s.action} ${JSON.stringify(s.params)}${each}${note}`);
  });
  if (result.verification) lines.push(`  verify: ${result.verification.passed ? 'passed' : 'failed'} after ${result.verification.attempts} attempts`);
  for (const r of result.rollback) lines.push(`  rollback ${r.id}: ${r.action} ${r.outcome}`);
  return lines.join('\n');
}

/** Most items one `for_each` step runs for (the ACL contract caps offenders at 100). */
const MAX_ITEMS = 100;

interface RunContext {
  readonly event: Readonly<Record<string, unknown>>;
  readonly steps: Record<string, { outcome: StepOutcome; output?: unknown }>;
  readonly playbook: { readonly name: string };
  readonly run: { readonly id: string; readonly key: string; readonly reason?: string };
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

function reasonText(reason: unknown): string {
  if (reason instanceof Error) return reason.message;
  return String(reason);
}

function abortable<T>(promise: Promise<T>, signal: AbortSignal): Promise<T> {
  if (signal.aborted) return Promise.reject(signal.reason);
  return new Promise<T>((resolve, reject) => {
    const onAbort = (): void => reject(signal.reason);
    signal.addEventListener('abort', onAbort, { once: true });
    promise.then(
      (v) => {
        signal.removeEventListener('abort', onAbort);
        resolve(v);
      },
      (e: unknown) => {
        signal.removeEventListener('abort', onAbort);
        reject(e);
      },
    );
  });
}

function sleep(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise<void>((resolve, reject) => {
    const timer = setTimeout(() => {
      signal.removeEventListener('abort', onAbort);
      resolve();
    }, ms);
    const onAbort = (): void => {
      clearTimeout(timer);
      reject(signal.reason);
    };
    signal.addEventListener('abort', onAbort, { once: true });
  });
}
