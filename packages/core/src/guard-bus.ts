import type { BreakerStateChange, HeartbeatNotice, MemoryAlarm, PlaybookRunNotice, PlaybookStepNotice } from './contract-events.js';
import { createSubscription, Emitter } from './emitter.js';
import type { Subscription } from './emitter.js';
import type { Logger } from './logger.js';
import { silentLogger } from './logger.js';
import type { Detection, GuardMode, SanitizeResult, Severity } from './types.js';

export type { Subscription };

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
 * The producing package adds its own by declaration merging (CONTRIBUTING.md, "Events on the bus"):
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
  playbookRun: [PlaybookRunNotice];
  playbookStep: [PlaybookStepNotice];
  heartbeat: [HeartbeatNotice];
}

/** Options for {@link GuardBus}. */
export interface GuardBusOptions {
  /** Where listener errors are reported; they never reach the emitter. */
  readonly logger?: Logger;
}

type Listener<K extends keyof GuardEvents> = (...args: GuardEvents[K]) => unknown;

/**
 * The typed event bus that packages talk through at run time. It holds an {@link Emitter}: a listener that throws
 * (or whose promise rejects) is logged and skipped, so emitting never throws into business logic; `once` runs a
 * single time, and `events.once(bus, name)` works and leaves nothing behind.
 *
 * @example
 * const bus = new GuardBus();
 * using sub = bus.subscribe('detection', (d) => console.log(d.component, d.pattern));
 * bus.emit('detection', detection);
 */
export class GuardBus {
  readonly #events: Emitter<GuardEvents>;

  constructor(options: GuardBusOptions = {}) {
    const logger = options.logger ?? silentLogger;
    this.#events = new Emitter<GuardEvents>({ onError: (error, event) => logger.error({ err: error, event }, 'GuardBus listener threw') });
  }

  /** Adds a listener (`context` is its `this`). @returns a Subscription ending this registration only. */
  on<K extends keyof GuardEvents>(event: K, listener: Listener<K>, context?: unknown): Subscription {
    return this.#events.on(event, listener, context);
  }

  /** Adds a listener that is removed before its first call. */
  once<K extends keyof GuardEvents>(event: K, listener: Listener<K>, context?: unknown): Subscription {
    return this.#events.once(event, listener, context);
  }

  /** Alias of {@link on}. */
  addListener<K extends keyof GuardEvents>(event: K, listener: Listener<K>, context?: unknown): Subscription {
    return this.on(event, listener, context);
  }

  /** Removes one registration of `listener`; without a listener, every listener of `event`. */
  off<K extends keyof GuardEvents>(event: K, listener?: Listener<K>, context?: unknown): this {
    if (listener === undefined) this.#events.removeAllListeners(event);
    else this.#events.off(event, listener, context);
    return this;
  }

  /** Alias of {@link off}. */
  removeListener<K extends keyof GuardEvents>(event: K, listener?: Listener<K>, context?: unknown): this {
    return this.off(event, listener, context);
  }

  /** Calls every listener of `event`. @returns whether it had listeners. */
  emit<K extends keyof GuardEvents>(event: K, ...args: GuardEvents[K]): boolean {
    return this.#events.emit(event, ...args);
  }

  /**
   * Adds a listener and returns a function (also `Disposable`) that removes it. Adds and removes through this
   * object's `on`/`off`, so an emitter tracker patched onto the bus sees both.
   */
  subscribe<K extends keyof GuardEvents>(event: K, listener: (...args: GuardEvents[K]) => void): Subscription {
    // A registration of its own: ending this subscription never removes another registration of the same function.
    const own: Listener<K> = (...args) => listener(...args);
    this.on(event, own);
    return createSubscription(() => this.off(event, own));
  }

  listenerCount(event: keyof GuardEvents): number {
    return this.#events.listenerCount(event);
  }

  eventNames(): (keyof GuardEvents)[] {
    return this.#events.eventNames();
  }

  removeAllListeners(event?: keyof GuardEvents): this {
    this.#events.removeAllListeners(event);
    return this;
  }
}
