import { EventEmitter } from 'eventemitter3';
import type { Logger } from './logger.js';
import { silentLogger } from './logger.js';
import { safeEmit } from './safe-emit.js';
import type { Detection, GuardMode, SanitizeResult, Severity } from './types.js';

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

/** An immune event was stored (mirrors `@guard/immune`'s event, camelCase). */
export interface ImmuneEventNotice {
  readonly id: string;
  readonly severity: 'INFO' | 'WARNING' | 'CRITICAL';
  readonly type: 'POLICY_VIOLATION' | 'ERROR_SPIKE' | 'SELF_HEALING_ACTION';
  readonly message: string;
  readonly module?: string;
  readonly agentId?: string;
  readonly meta?: Readonly<Record<string, unknown>>;
  readonly createdAt: number;
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

/** A guard's mode changed at run time; `component` is `'*'` for the global mode. */
export interface ModeChange {
  readonly component: string;
  readonly from: GuardMode;
  readonly to: GuardMode;
}

/** A detection's condition no longer holds. */
export interface DetectionCleared {
  readonly id: string;
  readonly component: string;
  readonly pattern: string;
  readonly resourceId: string;
  readonly severity: Severity;
  readonly clearedAt: number;
}

/**
 * Every event that crosses package boundaries, as `name: [payload]`.
 * Packages add their own by declaration merging:
 *
 * @example
 * declare module '@guard/core' {
 *   interface GuardEvents { heartbeatMissed: [{ component: string; at: number }] }
 * }
 */
export interface GuardEvents {
  detection: [Detection];
  detectionCleared: [DetectionCleared];
  sanitization: [SanitizeResult];
  modeChange: [ModeChange];
  breakerStateChange: [BreakerStateChange];
  memoryAlarm: [MemoryAlarm];
  immuneEvent: [ImmuneEventNotice];
  playbookRun: [PlaybookRunNotice];
  playbookStep: [PlaybookStepNotice];
}

/** A subscription you can end by calling it or with `using`. */
export interface Subscription {
  (): void;
  [Symbol.dispose](): void;
}

/** Options for {@link GuardBus}. */
export interface GuardBusOptions {
  /** Where listener errors are reported; they never reach the emitter. */
  readonly logger?: Logger;
}

/**
 * The typed event bus that packages talk through at run time.
 * A listener that throws is logged and skipped: emitting never throws into business logic.
 *
 * @example
 * const bus = new GuardBus();
 * using sub = bus.subscribe('detection', (d) => console.log(d.component, d.pattern));
 * bus.emit('detection', detection);
 */
export class GuardBus extends EventEmitter<GuardEvents> {
  readonly #logger: Logger;

  constructor(options: GuardBusOptions = {}) {
    super();
    this.#logger = options.logger ?? silentLogger;
  }

  override emit<K extends keyof GuardEvents>(event: K, ...args: GuardEvents[K]): boolean {
    return safeEmit(this, event, args, (error) => this.#logger.error({ err: error, event }, 'GuardBus listener threw'));
  }

  /** Adds a listener and returns a function (also `Disposable`) that removes it. */
  subscribe<K extends keyof GuardEvents>(event: K, listener: (...args: GuardEvents[K]) => void): Subscription {
    // A registration of its own: ending this subscription never removes another registration of the same function.
    const own = function (this: unknown, ...args: GuardEvents[K]): unknown {
      return (listener as (...a: unknown[]) => unknown).apply(this, args);
    };
    this.on(event, own as never);
    const off = (() => {
      this.off(event, own as never);
    }) as Subscription;
    off[Symbol.dispose] = off;
    return off;
  }
}
