/** Comparison operators of a declarative condition. */
export type ConditionOp = '==' | '!=' | '>' | '>=' | '<' | '<=' | 'in' | 'not_in' | 'exists' | 'not_exists' | 'contains';

/** A declarative condition: data, never evaluated code. `field` is a dotted path into the context. */
export type Condition =
  | { readonly field: string; readonly op: ConditionOp; readonly value?: unknown }
  | { readonly all: readonly Condition[] }
  | { readonly any: readonly Condition[] }
  | { readonly not: Condition };

/** One step of a playbook. */
export interface PlaybookStep {
  readonly id: string;
  readonly action: string;
  readonly params: Readonly<Record<string, unknown>>;
  /** Run the step only when this holds (context: `event`, `steps.<id>.output`, `playbook`). */
  readonly when?: Condition;
  readonly timeoutMs: number;
  readonly continueOnError: boolean;
  /** Run on exactly one instance of the fleet (needs the engine's `fleetLock`). */
  readonly fleet: boolean;
  /** Extra attempts after a failure or timeout (`count`), `delayMs` apart. Default none (the loader always sets it). */
  readonly retry?: { readonly count: number; readonly delayMs: number };
  /**
   * A template that resolves to a list (`"{{ event.offenders }}"`): the action runs once per item, with
   * `{{ item }}` (and `{{ item_index }}`) in params. Items run in order; the step fails if any item does.
   */
  readonly forEach?: string;
}

/** Steady-state checks measured once, before the steps or after verification (Chaos Toolkit's hypothesis). */
export interface SteadyState {
  readonly checks: readonly PlaybookCheck[];
  /** Before only: `continue` (default) reports a failed check and runs anyway; `skip` ends the run as skipped. */
  readonly onFailure: 'continue' | 'skip';
}

/** One verification check: a probe's value compared with a condition, retried until the deadline. */
export interface PlaybookCheck {
  readonly id: string;
  readonly probe: string;
  readonly params: Readonly<Record<string, unknown>>;
  readonly op: ConditionOp;
  readonly value?: unknown;
}

/** A validated playbook. */
export interface Playbook {
  readonly name: string;
  readonly description?: string;
  readonly trigger: { readonly event: string; readonly conditions?: Condition };
  readonly cooldownMs: number;
  readonly timeoutMs: number;
  readonly steps: readonly PlaybookStep[];
  readonly verify?: {
    readonly checks: readonly PlaybookCheck[];
    readonly retries: number;
    readonly intervalMs: number;
    readonly deadlineMs: number;
  };
  readonly rollback: readonly PlaybookStep[];
  /**
   * The trigger fields (`event.<name>`) the playbook reads. When declared, every `{{ event.x }}` template
   * and `event.x` condition must name one of them: a typo fails at load, not at 3 a.m.
   */
  readonly input?: readonly string[];
  /**
   * Template of the run key (`"{{ event.actor }}"`): one run at a time and the cooldown apply per key,
   * so a second attacker gets its own run while the first one's run is verifying. Default: one key per playbook.
   */
  readonly concurrencyKey?: string;
  /** Steady state measured before the steps (the deviation is there); failure is reported. */
  readonly before?: SteadyState;
  /** Steady state measured after verification; failure fails the run (rollback runs). */
  readonly after?: SteadyState;
  /** Where it was loaded from, when it came from a file. */
  readonly source?: string;
}

/** Anything that can start playbooks for an event (the engine, or a test double). */
export interface PlaybookTrigger {
  trigger(event: string, data: Readonly<Record<string, unknown>>, options?: { reason?: string; dryRun?: boolean }): Promise<unknown>;
}

/** One step of a finished run as the `playbookRun` notice carries it (`result` or `error`, bounded in size). */
export interface RunStepSummary {
  readonly id: string;
  readonly action: string;
  readonly status: 'succeeded' | 'failed' | 'skipped' | 'timeout' | 'planned';
  readonly durationMs: number;
  readonly attempts?: number;
  readonly result?: unknown;
  readonly error?: string;
}
