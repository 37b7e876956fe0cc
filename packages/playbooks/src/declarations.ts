/**
 * Error codes and bus events this package adds to `@guard/core` by declaration merging.
 * Importing any module of the package brings these into scope for TypeScript.
 */
import type { AclViolation } from './message-bus.js';
import type { PressureChange } from './resource-pressure-monitor.js';
import type { AclAlarm } from './acl-violation-monitor.js';
import type { RunStepSummary } from './playbook-types.js';

declare module '@guard/core' {
  interface GuardErrorCodes {
    /** A playbook file or object failed validation (YAML syntax, schema, size, aliases). */
    INVALID_PLAYBOOK: true;
    /** A playbook names an action (or a check names a probe) that no registry knows. */
    UNKNOWN_ACTION: true;
    /** `run()` named a playbook the engine does not have. */
    UNKNOWN_PLAYBOOK: true;
    /** `restart()` named a component nobody registered. */
    UNKNOWN_COMPONENT: true;
    /** `kill_process` targeted a process the guard did not start. */
    NOT_OWNED: true;
    /** @deprecated no longer thrown: a taken action, component or playbook name is `INVALID_INPUT` (`details.field: 'name'`). */
    DUPLICATE: true;
    /** The fleet lock's or fleet decisions' database cannot be reached (refused, reset, terminated, timed out); transient. */
    STORE_UNAVAILABLE: true;
    /** The fleet lock's or fleet decisions' database failed otherwise. */
    STORE_ERROR: true;
  }
  /**
   * A finished run's notice also carries every step's result (and the checks), so the immune bridge can
   * journal what the run did and measured. `status` is the run's outcome.
   */
  interface PlaybookRunNotice {
    /** The resolved `concurrency_key` of the run, when the playbook has one. */
    readonly key?: string;
    readonly steps?: readonly RunStepSummary[];
    readonly rollback?: readonly RunStepSummary[];
    readonly verification?: { readonly passed: boolean; readonly attempts: number; readonly checks: readonly RunCheckSummary[] };
    readonly before?: { readonly passed: boolean; readonly checks: readonly RunCheckSummary[] };
    readonly after?: { readonly passed: boolean; readonly checks: readonly RunCheckSummary[] };
  }
  // `heartbeat` (the watchdog's notice) is declared by core: the immune bridge reads it without depending on this package.
  interface GuardEvents {
    aclViolation: [AclViolation];
    aclAlarm: [AclAlarm];
    resourcePressure: [PressureChange];
  }
}

/** One check of a run notice. */
export interface RunCheckSummary {
  readonly id: string;
  readonly probe: string;
  readonly value: unknown;
  readonly passed: boolean;
}
