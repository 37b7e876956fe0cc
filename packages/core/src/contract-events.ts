// Event payloads that are contracts between packages (CONTRIBUTING.md, "Events on the bus"): a payload is declared
// by the package that produces it, by declaration merging on `GuardEvents`; core declares only those a package
// consumes without depending on their producer (the C4 detector reads `breakerStateChange`, the immune bridge reads
// `memoryAlarm`, `playbookRun`/`playbookStep` and `heartbeat`). Nothing else belongs in this file.

/** The three states of a circuit breaker. */
export type CircuitState = 'closed' | 'open' | 'half_open';

/** A breaker moved from one state to another. */
export interface BreakerStateChange {
  readonly circuit: string;
  readonly from: CircuitState;
  readonly to: CircuitState;
  /** Epoch milliseconds. */
  readonly at: number;
  /** How long a half-open probe may take before it counts as orphaned (C4). */
  readonly probeTimeoutMs?: number;
}

/** The memory guardrail's view changed or crossed a threshold. */
export interface MemoryAlarm {
  readonly status: 'healthy' | 'warning' | 'critical';
  readonly reasons: readonly string[];
  readonly rssBytes: number;
  readonly growthMbPerMin: number;
  readonly at: number;
}

/** A playbook run started or ended. */
export interface PlaybookRunNotice {
  readonly runId: string;
  readonly playbook: string;
  readonly status: 'started' | 'succeeded' | 'failed' | 'rolled_back' | 'skipped';
  readonly dryRun: boolean;
  readonly reason?: string;
  readonly startedAt: number;
  readonly finishedAt?: number;
  readonly error?: string;
}

/** One step of a playbook run finished. */
export interface PlaybookStepNotice {
  readonly runId: string;
  readonly playbook: string;
  readonly step: string;
  readonly action: string;
  readonly outcome: 'succeeded' | 'failed' | 'skipped' | 'timeout' | 'planned';
  readonly durationMs: number;
  readonly error?: string;
}

/**
 * A heartbeat watchdog notice (`@guard/playbooks`' `HeartbeatWatchdog`, also its `onEvent`); the immune bridge
 * journals it.
 */
export interface HeartbeatNotice {
  /**
   * `missed` deadline; `restarted` (the hook finished; not yet healthy); `restart_failed`; `backoff` (next
   * restart scheduled after `delayMs`); `crash_loop` (restarts stopped); `recovered` (first heartbeat after a
   * restart or a crash loop); `reset` (an operator cleared the crash loop).
   */
  readonly kind: 'missed' | 'restarted' | 'restart_failed' | 'backoff' | 'crash_loop' | 'recovered' | 'reset';
  readonly component: string;
  readonly reason: string;
  /** Epoch milliseconds. */
  readonly at: number;
  readonly recoveryMs?: number;
  readonly error?: string;
  /** `backoff`: wait before the next restart. */
  readonly delayMs?: number;
  /** `backoff`, `restarted`, `restart_failed`: consecutive restarts so far. */
  readonly attempt?: number;
  /** `crash_loop`: restarts within the window. */
  readonly restartsInWindow?: number;
  readonly windowMs?: number;
}
