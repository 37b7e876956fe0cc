import { errorMessage, GuardError, isGuardError, linkSignal, raceAbort, sleep } from '@guard/core';
import type { GuardBus, Logger } from '@guard/core';
import type { Histogram } from 'prom-client';
import type { ActionContext, ActionRegistry, ProbeRegistry } from './action-registry.js';
import { compare, conditionReads, evaluateCondition, resolveParams } from './conditions.js';
import type { FleetLock } from './fleet-lock.js';
import type { Playbook, PlaybookCheck, PlaybookStep } from './playbook-types.js';
import type { CheckResult, StepOutcome, StepResult, SteadyStateResult, VerificationResult } from './run-result.js';
import { failedChecks } from './run-notice.js';
import type {} from './declarations.js';

/** What templates and conditions of one run read. */
export interface RunContext {
  readonly event: Readonly<Record<string, unknown>>;
  readonly steps: Record<string, { outcome: StepOutcome; output?: unknown }>;
  readonly playbook: { readonly name: string };
  readonly run: { readonly id: string; readonly key: string; readonly reason?: string };
}

/** One step of one run, as the runner passes it between its phases. */
interface StepCall {
  readonly playbook: Playbook;
  readonly runId: string;
  readonly step: PlaybookStep;
  readonly context: RunContext;
  /** The run's signal (aborted by close, the caller or the run timeout). */
  readonly signal: AbortSignal;
}

/** The objects a {@link StepRunner} acts through (the engine's). */
export interface StepRunnerDeps {
  readonly actions: ActionRegistry;
  readonly probes: ProbeRegistry;
  readonly fleetLock: FleetLock | undefined;
  readonly bus: GuardBus | undefined;
  readonly logger: Logger;
  readonly stepMetric: Histogram<'playbook' | 'action' | 'outcome'>;
}

/**
 * Runs one step of a playbook run (its `when`, `for_each` items, `retry` attempts, timeout and fleet lock)
 * and evaluates checks (steady state once, verification until it passes or its deadline). Emits a
 * `playbookStep` notice per step and check phase. The engine orchestrates the run around it.
 */
export class StepRunner {
  readonly #deps: StepRunnerDeps;

  constructor(deps: StepRunnerDeps) {
    this.#deps = deps;
  }

  /** Runs one step: `when`, `for_each`, retries, timeout, fleet lock; emits its `playbookStep` notice. */
  async step(
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
    const call: StepCall = { playbook, runId, step, context, signal: runSignal };
    let result: StepResult;
    const conditional = dryRun && conditionReads(step.when, 'steps');
    if (!conditional && !evaluateCondition(step.when, context)) {
      result = { ...base, outcome: 'skipped', durationMs: 0 };
    } else if (itemsError !== undefined) {
      result = { ...base, outcome: dryRun ? 'planned' : 'failed', durationMs: 0, error: itemsError };
    } else if (dryRun) {
      result = { ...base, outcome: 'planned', durationMs: 0, ...(conditional ? { conditional } : {}), ...(step.fleet ? { fleet: 'ran' as const } : {}) };
    } else if (step.fleet && this.#deps.fleetLock) {
      const lock = await this.#deps.fleetLock
        .tryRun(`${playbook.name}:${step.id}`, () => this.#run(call, items, t0))
        .catch((error: unknown): { acquired: true; value: StepResult; lockError: true } => ({
          acquired: true,
          value: { ...base, outcome: 'failed', durationMs: performance.now() - t0, error: `fleet lock: ${errorMessage(error)}` },
          lockError: true,
        }));
      if (!lock.acquired) result = { ...base, outcome: 'skipped', durationMs: performance.now() - t0, fleet: lock.reason };
      else result = 'lockError' in lock ? lock.value : { ...lock.value, fleet: 'ran' };
    } else {
      result = await this.#run(call, items, t0);
    }
    this.#deps.stepMetric.observe({ playbook: playbook.name, action: step.action, outcome: result.outcome }, result.durationMs / 1000);
    this.#deps.bus?.emit('playbookStep', {
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
  async #run(call: StepCall, items: unknown[] | undefined, t0: number): Promise<StepResult> {
    const { step, context } = call;
    if (items === undefined) {
      const params = resolveParams(step.params, context) as Record<string, unknown>;
      const r = await this.#attempts(call, params);
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
      if (call.signal.aborted) break;
      const itemContext = { ...context, item, item_index: index };
      const params = resolveParams(step.params, itemContext) as Record<string, unknown>;
      if (index === 0) firstParams = params;
      const r = await this.#attempts({ ...call, context: itemContext }, params);
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
  async #attempts(call: StepCall, params: Record<string, unknown>): Promise<{ outcome: StepOutcome; attempts: number; output?: unknown; error?: string }> {
    const { playbook, runId, step, signal } = call;
    let attempts = 0;
    for (;;) {
      attempts++;
      const r = await this.#invoke(call, params);
      if (r.outcome === 'succeeded' || attempts > (step.retry?.count ?? 0) || signal.aborted) return { ...r, attempts };
      this.#deps.logger.info({ runId, playbook: playbook.name, step: step.id, attempt: attempts, error: r.error }, 'playbook step failed; retrying');
      try {
        await sleep(step.retry?.delayMs ?? 0, { signal });
      } catch {
        return { ...r, attempts };
      }
    }
  }

  async #invoke(call: StepCall, params: Record<string, unknown>): Promise<{ outcome: StepOutcome; output?: unknown; error?: string }> {
    const { playbook, runId, step, context } = call;
    // Each attempt ends with the run or at the step's timeout, whichever comes first.
    using attempt = linkSignal(call.signal, {
      timeoutMs: step.timeoutMs,
      timeoutReason: () => new GuardError('TIMEOUT', `step ${step.id} exceeded ${step.timeoutMs} ms`),
    });
    const actionContext: ActionContext = {
      runId,
      playbook: playbook.name,
      step: step.id,
      event: context.event,
      signal: attempt.signal,
      logger: this.#deps.logger,
      probe: (name, p = {}) => this.probe(name, p, attempt.signal),
    };
    try {
      const handler = this.#deps.actions.get(step.action);
      const output = await raceAbort(Promise.resolve().then(() => handler(params, actionContext)), attempt.signal);
      return { outcome: 'succeeded', ...(output === undefined ? {} : { output }) };
    } catch (error) {
      const timedOut = isGuardError(error, 'TIMEOUT');
      this.#deps.logger.warn({ err: error, runId, playbook: playbook.name, step: step.id }, `playbook step ${timedOut ? 'timed out' : 'failed'}`);
      return { outcome: timedOut ? 'timeout' : 'failed', error: errorMessage(error) };
    }
  }

  /** Reads one probe, abortable. */
  async probe(name: string, params: Readonly<Record<string, unknown>>, signal: AbortSignal): Promise<unknown> {
    const handler = this.#deps.probes.get(name);
    return raceAbort(Promise.resolve().then(() => handler(params, { signal })), signal);
  }

  /** Evaluates checks once. */
  async checks(checks: readonly PlaybookCheck[], context: RunContext, signal: AbortSignal): Promise<CheckResult[]> {
    const out: CheckResult[] = [];
    for (const check of checks) {
      const expected = check.value === undefined ? {} : { expected: check.value };
      try {
        const value = await this.probe(check.probe, resolveParams(check.params, context) as Record<string, unknown>, signal);
        out.push({ id: check.id, probe: check.probe, op: check.op, ...expected, value, passed: compare(value, check.op, check.value) });
      } catch (error) {
        out.push({ id: check.id, probe: check.probe, op: check.op, ...expected, value: undefined, passed: false, error: errorMessage(error) });
      }
    }
    return out;
  }

  /** Measures a steady state (`before` or `after`) once and emits its notice. */
  async steadyState(playbook: Playbook, runId: string, phase: 'before' | 'after', checks: readonly PlaybookCheck[], context: RunContext, signal: AbortSignal): Promise<SteadyStateResult> {
    const t0 = performance.now();
    const results = await this.checks(checks, context, signal);
    const passed = results.every((c) => c.passed);
    const durationMs = performance.now() - t0;
    if (!passed) this.#deps.logger.warn({ runId, playbook: playbook.name, phase, checks: results }, `steady state ${phase} the run does not hold`);
    this.#deps.stepMetric.observe({ playbook: playbook.name, action: phase, outcome: passed ? 'succeeded' : 'failed' }, durationMs / 1000);
    this.#deps.bus?.emit('playbookStep', {
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

  /** Repeats the verification checks until they pass, the retries run out or the deadline. */
  async verify(playbook: Playbook, runId: string, context: RunContext, signal: AbortSignal): Promise<VerificationResult> {
    const verify = playbook.verify!;
    const t0 = performance.now();
    const deadline = t0 + verify.deadlineMs;
    let attempts = 0;
    let checks: CheckResult[] = [];
    let passed = false;
    while (!signal.aborted) {
      attempts++;
      checks = await this.checks(verify.checks, context, signal);
      passed = checks.every((c) => c.passed);
      if (passed || attempts > verify.retries || performance.now() + verify.intervalMs > deadline) break;
      await sleep(verify.intervalMs, { signal }).catch(() => undefined);
    }
    const durationMs = performance.now() - t0;
    this.#deps.stepMetric.observe({ playbook: playbook.name, action: 'verify', outcome: passed ? 'succeeded' : 'failed' }, durationMs / 1000);
    this.#deps.bus?.emit('playbookStep', {
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
}

/** Most items one `for_each` step runs for (the ACL contract caps offenders at 100). */
const MAX_ITEMS = 100;
