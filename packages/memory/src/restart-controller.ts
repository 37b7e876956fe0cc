import { assertOpen, createSubscription, GuardError, errorMessage, linkSignal, raceAbort } from '@guard/core';
import type { Logger, Subscription } from '@guard/core';
import type { RestartGate } from './fleet-restart-lease.js';
import type { MemoryAssessment } from './memory-assessment.js';
import type { RestartCounters } from './memory-metrics.js';
import type { RestartBudget, RestartReason, RestartRecord } from './restart-budget.js';

declare module '@guard/core' {
  interface GuardErrorCodes {
    /** The restart state file could not be written, so the restart was not started. */
    RESTART_STATE_ERROR: true;
  }
}

/**
 * Payload of the `memoryRestart` bus event. `failed`: the process was still alive `restartGraceMs` after `terminate`
 * (a no-op hook, or a SIGTERM handler that does not exit); the restart counts as spent and new ones are allowed
 * again once the budget's cooldown has passed.
 */
export interface MemoryRestartNotice {
  readonly name: string;
  readonly reason: RestartReason;
  readonly outcome: 'started' | 'skipped' | 'failed';
  /** With `skipped`: how long until the restart budget allows one again. With `failed`: the same, from now. */
  readonly retryAfterMs?: number;
  /** With `skipped`: `cooldown` (this replica's budget) or `fleet_budget` (waiting for the fleet's restart gate). */
  readonly skipped?: 'cooldown' | 'fleet_budget';
  /** With `failed`: why (`survived` the terminate, or `terminate_threw`). */
  readonly failure?: 'survived' | 'terminate_threw';
  readonly at: number;
}

/** What {@link MemoryGuardrail.requestRestart} decided. */
export type RestartDecision =
  | { readonly restarted: true; readonly reason: RestartReason; readonly at: number }
  | {
      readonly restarted: false;
      readonly reason: RestartReason;
      /** `fleet_budget`: the fleet's restart gate said wait (other replicas are restarting, or the window is used). */
      readonly skipped: 'cooldown' | 'in_progress' | 'fleet_budget';
      readonly retryAfterMs: number;
      readonly lastRestartAt?: number;
      /** With `fleet_budget`: the replicas restarting now. */
      readonly holders?: readonly string[];
    };

/**
 * A restart that waits for the fleet's restart gate (shown in `/self-check` and the report).
 *
 * @example
 * const waiting = guardrail.report().restart.fleetWait; // { since, reason, blockedBy, retryAfterMs, holders } | null
 */
export interface FleetRestartWait {
  /** Epoch ms of the first refusal of this wait. */
  readonly since: number;
  readonly reason: RestartReason;
  readonly blockedBy: 'max_unavailable' | 'window';
  readonly retryAfterMs: number;
  readonly holders: readonly string[];
}

/** A shutdown hook: close servers, flush buffers. It gets a signal that aborts at the shutdown deadline. */
export type ShutdownHook = (signal: AbortSignal) => void | Promise<void>;

/** A restart the process survived, or whose `terminate` threw. */
export interface FailedRestart {
  readonly reason: RestartReason;
  readonly at: number;
  readonly failure: 'survived' | 'terminate_threw';
}

/** The restart state shown in the report. */
export interface RestartState {
  readonly inProgress: boolean;
  readonly last: RestartRecord | null;
  /** The last restart the process survived (still alive `restartGraceMs` after `terminate`), or null. */
  readonly lastFailed: FailedRestart | null;
  /** 0 when a restart is allowed now. */
  readonly retryAfterMs: number;
  /** Set while an advised restart waits for the fleet's restart gate. */
  readonly fleetWait: FleetRestartWait | null;
}

/** Options of {@link RestartController}. */
export interface RestartControllerOptions {
  readonly name: string;
  readonly budget: RestartBudget;
  readonly gate: RestartGate | undefined;
  /** RSS in bytes at or above which an automatic restart does not wait for the gate (read at each request). */
  readonly forceAtBytes: () => number;
  readonly shutdownTimeoutMs: number;
  readonly restartGraceMs: number;
  readonly terminate: () => void;
  readonly now: () => number;
  readonly logger: Logger;
  readonly counters: RestartCounters;
  readonly notify: (notice: MemoryRestartNotice) => void;
  /** The latest check: the restart's trigger, and the RSS the force rule reads. */
  readonly latest: () => MemoryAssessment | null;
  /** The state logged at `fatal` as the process goes (the latest check, the baseline). */
  readonly finalState: () => Record<string, unknown>;
}

type FleetAnswer = { granted: true; leaseId: string | undefined } | { granted: false; decision: RestartDecision };

/**
 * Restart orchestration: the local budget (one per cooldown, persisted), the fleet's restart gate, the shutdown hooks
 * with their deadline, `terminate`, and the grace after it that declares a restart the process survived as failed.
 */
export class RestartController {
  readonly #o: RestartControllerOptions;
  readonly #hooks = new Set<ShutdownHook>();
  /** Set from the synchronous start of `request` until the restart ends or fails; blocks a second one. */
  #inProgress = false;
  #restarting: Promise<void> | undefined;
  #graceTimer: NodeJS.Timeout | undefined;
  #lastFailed: FailedRestart | null = null;
  #fleetWait: FleetRestartWait | null = null;
  #closed = false;

  constructor(options: RestartControllerOptions) {
    this.#o = options;
  }

  get inProgress(): boolean {
    return this.#inProgress;
  }

  /** Registers a hook that runs before a restart (with a deadline of `shutdownTimeoutMs`). */
  onShutdown(hook: ShutdownHook): Subscription {
    this.#hooks.add(hook);
    return createSubscription(() => this.#hooks.delete(hook));
  }

  /** The restart state at `now`, for the report. */
  state(now: number): RestartState {
    const allowance = this.#o.budget.check(now);
    return {
      inProgress: this.#inProgress,
      last: allowance.last ?? null,
      lastFailed: this.#lastFailed,
      retryAfterMs: allowance.retryAfterMs,
      fleetWait: this.#fleetWait,
    };
  }

  /**
   * Decides and, when allowed, starts a restart: the fleet gate (when the local cooldown would allow one), then the
   * budget's claim; the hooks and `terminate` run on the next turn of the event loop.
   */
  async request(reason: RestartReason): Promise<RestartDecision> {
    const { budget, counters, logger, name, notify } = this.#o;
    const now = this.#o.now();
    if (this.#inProgress) return { restarted: false, reason, skipped: 'in_progress', retryAfterMs: 0 };
    this.#inProgress = true;
    let lease: string | undefined;
    // The fleet is asked only when this replica's own cooldown would allow the restart (the claim below decides).
    if (this.#o.gate && budget.check(now).allowed) {
      const answer = await this.#askFleet(this.#o.gate, reason, now);
      if (!answer.granted) {
        this.#inProgress = false;
        return answer.decision;
      }
      lease = answer.leaseId;
    }
    let claim;
    try {
      claim = await budget.claim(now, reason);
    } catch (error) {
      this.#inProgress = false;
      this.#releaseLease(lease);
      throw new GuardError('RESTART_STATE_ERROR', `cannot persist the restart time, restart not started: ${errorMessage(error)}`, { cause: error });
    }
    if (!claim.allowed) {
      this.#inProgress = false;
      this.#releaseLease(lease);
      counters.restartsSkipped.inc({ name });
      logger.warn(
        { guardrail: name, reason, retryAfterMs: claim.retryAfterMs, lastRestartAt: claim.last?.lastRestartAt },
        'memory guardrail restart skipped: restart budget used',
      );
      notify({ name, reason, outcome: 'skipped', skipped: 'cooldown', retryAfterMs: claim.retryAfterMs, at: now });
      return {
        restarted: false,
        reason,
        skipped: 'cooldown',
        retryAfterMs: claim.retryAfterMs,
        ...(claim.last ? { lastRestartAt: claim.last.lastRestartAt } : {}),
      };
    }
    if (this.#closed) {
      // Closed while the budget was being claimed: the restart was recorded but is not started.
      this.#inProgress = false;
      assertOpen(this.#closed, 'MemoryGuardrail');
    }
    counters.restarts.inc({ name, reason });
    notify({ name, reason, outcome: 'started', at: now });
    const trigger = this.#o.latest();
    this.#restarting = new Promise<void>((resolve) => setImmediate(resolve))
      .then(() => this.#shutdown(reason, trigger))
      .catch((error: unknown) => {
        logger.error({ err: error, guardrail: name }, 'memory guardrail restart failed');
      });
    return { restarted: true, reason, at: now };
  }

  /** Cancels the grace timer and waits for a restart in progress. */
  async close(): Promise<void> {
    this.#closed = true;
    if (this.#graceTimer) clearTimeout(this.#graceTimer);
    this.#graceTimer = undefined;
    await this.#restarting;
  }

  /** Asks the fleet's restart gate; a refusal becomes a `fleet_budget` skip, said once per wait and shown in the report. */
  async #askFleet(gate: RestartGate, reason: RestartReason, now: number): Promise<FleetAnswer> {
    const { counters, logger, name, notify } = this.#o;
    const rss = this.#o.latest()?.snapshot.rssBytes ?? 0;
    const force = reason === 'manual' || rss >= this.#o.forceAtBytes();
    let answer;
    try {
      answer = await gate.acquire({ reason, force });
    } catch (error) {
      // A gate that fails is not a reason to keep a leaking process: fall back to this replica's own budget.
      logger.warn({ err: error, guardrail: name, reason }, "fleet restart gate failed; restarting on this replica's own budget");
      answer = { granted: true as const, degraded: true };
    }
    if (answer.granted) {
      if (this.#fleetWait) logger.info({ guardrail: name, reason, waitedMs: now - this.#fleetWait.since }, 'fleet restart gate granted the restart');
      this.#fleetWait = null;
      if (answer.forced) logger.warn({ guardrail: name, reason, rssBytes: rss }, 'restarting over the fleet restart budget (manual, or RSS past the hard margin)');
      return { granted: true, leaseId: answer.leaseId };
    }
    const starts = this.#fleetWait === null;
    const { blockedBy, retryAfterMs, holders } = answer;
    this.#fleetWait = { since: this.#fleetWait?.since ?? now, reason, blockedBy, retryAfterMs, holders };
    counters.restartsSkipped.inc({ name });
    // Said once per wait (the log and the immune log), not at every check while it lasts; /self-check shows it throughout.
    if (starts) {
      logger.warn({ guardrail: name, reason, blockedBy, retryAfterMs, holders }, 'memory guardrail restart waits: the fleet restart budget is in use');
      notify({ name, reason, outcome: 'skipped', skipped: 'fleet_budget', retryAfterMs, at: now });
    }
    return { granted: false, decision: { restarted: false, reason, skipped: 'fleet_budget', retryAfterMs, holders } };
  }

  #releaseLease(leaseId: string | undefined): void {
    if (leaseId === undefined || !this.#o.gate) return;
    this.#o.gate
      .release(leaseId)
      .catch((error: unknown) => this.#o.logger.warn({ err: error, guardrail: this.#o.name }, 'releasing the fleet restart slot failed; it frees itself at its deadline'));
  }

  /** Runs the hooks against the deadline, logs the final state, terminates, and starts the grace. */
  async #shutdown(reason: RestartReason, trigger: MemoryAssessment | null): Promise<void> {
    const { logger, name, shutdownTimeoutMs } = this.#o;
    const deadline = linkSignal(undefined, { timeoutMs: shutdownTimeoutMs });
    const hooks = [...this.#hooks].map((hook) => Promise.resolve().then(() => hook(deadline.signal)));
    try {
      const results = await raceAbort(Promise.allSettled(hooks), deadline.signal);
      for (const result of results) {
        if (result.status === 'rejected') logger.error({ err: result.reason, guardrail: name }, 'shutdown hook failed');
      }
    } catch {
      logger.warn({ guardrail: name, timeoutMs: shutdownTimeoutMs }, 'shutdown hooks timed out');
    } finally {
      deadline.dispose();
    }
    const finalState = {
      guardrail: name,
      reason,
      // The check that led to the restart; the fields after it are the latest check, as the process exits.
      trigger: trigger ? { status: trigger.status, reasons: trigger.reasons, rssBytes: trigger.snapshot.rssBytes, at: trigger.snapshot.at } : null,
      ...this.#o.finalState(),
      pid: process.pid,
    };
    (logger.fatal ?? logger.error)(finalState, 'memory guardrail restarting the process');
    try {
      this.#o.terminate();
    } catch (error) {
      logger.error({ err: error, guardrail: name }, 'terminate failed');
      this.#failed(reason, 'terminate_threw');
      return;
    }
    if (this.#closed) return;
    // A supervised process is gone long before this fires (the timer is unref'ed, so it never keeps one alive).
    this.#graceTimer = setTimeout(() => {
      this.#graceTimer = undefined;
      this.#failed(reason, 'survived');
    }, this.#o.restartGraceMs);
    this.#graceTimer.unref();
  }

  /** The restart did not end the process: leave "in progress" so later restarts are possible; the budget stays spent. */
  #failed(reason: RestartReason, failure: FailedRestart['failure']): void {
    const { budget, counters, logger, name, notify, restartGraceMs } = this.#o;
    const at = this.#o.now();
    this.#inProgress = false;
    this.#lastFailed = { reason, at, failure };
    counters.restartsFailed.inc({ name, reason });
    const retryAfterMs = budget.check(at).retryAfterMs;
    logger.error(
      { guardrail: name, reason, failure, graceMs: restartGraceMs, retryAfterMs, pid: process.pid },
      failure === 'survived'
        ? 'memory guardrail restart failed: the process survived it (a shutdown hook or SIGTERM handler did not exit)'
        : 'memory guardrail restart failed: terminate threw',
    );
    notify({ name, reason, outcome: 'failed', failure, retryAfterMs, at });
  }
}
