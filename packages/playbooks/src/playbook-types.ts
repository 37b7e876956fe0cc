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
  /** Where it was loaded from, when it came from a file. */
  readonly source?: string;
}

/** Anything that can start playbooks for an event (the engine, or a test double). */
export interface PlaybookTrigger {
  trigger(event: string, data: Readonly<Record<string, unknown>>, options?: { reason?: string; dryRun?: boolean }): Promise<unknown>;
}
