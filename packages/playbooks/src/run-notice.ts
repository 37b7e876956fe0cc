/** What a finished run's `playbookRun` notice carries about its steps and checks (bounded, JSON-friendly). */
import type { RunCheckSummary } from './declarations.js';
import type { CheckResult, StepResult } from './playbook-engine.js';
import type { RunStepSummary } from './playbook-types.js';

/** Largest step result (JSON characters) copied into a run notice. */
const MAX_RESULT_CHARS = 2_000;

/** One line per failed check, for run errors and logs. */
export function failedChecks(checks: readonly CheckResult[]): string {
  return checks
    .filter((c) => !c.passed)
    .map((c) => `${c.id}: ${c.probe}=${JSON.stringify(c.value)}${c.error ? ` (${c.error})` : ''}, expected ${c.op} ${JSON.stringify(c.expected ?? null)}`)
    .join('; ');
}

/** A check for the run notice. */
export function checkSummary(c: CheckResult): RunCheckSummary {
  return { id: c.id, probe: c.probe, value: clip(c.value), passed: c.passed };
}

/** A step result for the run notice: bounded, JSON-friendly. */
export function summarize(r: StepResult): RunStepSummary {
  return {
    id: r.id,
    action: r.action,
    status: r.outcome,
    durationMs: Math.round(r.durationMs * 10) / 10,
    ...(r.attempts !== undefined && r.attempts > 1 ? { attempts: r.attempts } : {}),
    ...(r.error === undefined ? {} : { error: r.error.slice(0, MAX_RESULT_CHARS) }),
    ...(r.output === undefined ? {} : { result: clip(r.output) }),
  };
}

function clip(value: unknown): unknown {
  let text: string | undefined;
  try {
    text = JSON.stringify(value);
  } catch {
    return '[unserializable]';
  }
  if (text === undefined || text.length <= MAX_RESULT_CHARS) return value;
  return { truncated: true, preview: text.slice(0, MAX_RESULT_CHARS) };
}
