/** What a playbook run produced: its steps, checks and status (kept in history, returned by `trigger`). */
import type { PlaybookStepNotice } from '@guard/core';

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
