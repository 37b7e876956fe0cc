import { errorMessage } from './error-message.js';

/** A subscription you can end by calling it or with `using`; ending it twice does nothing. */
export interface Subscription {
  (): void;
  [Symbol.dispose](): void;
}

/**
 * Wraps `end` as a {@link Subscription} that runs it at most once.
 *
 * @example
 * onTick(listener: () => void): Subscription {
 *   this.#ticks.add(listener);
 *   return createSubscription(() => this.#ticks.delete(listener));
 * }
 */
export function createSubscription(end: () => void): Subscription {
  let ended = false;
  const subscription = (() => {
    if (ended) return;
    ended = true;
    end();
  }) as Subscription;
  subscription[Symbol.dispose] = subscription;
  return subscription;
}

/** Options for {@link Emitter}. */
export interface EmitterOptions<Events> {
  /**
   * Receives a listener's throw or its returned promise's rejection; it never reaches the emitter.
   * Default: a process warning (`GuardListenerError`).
   */
  readonly onError?: (error: unknown, event: keyof Events) => void;
}

type AnyListener = (...args: never[]) => unknown;

/** One `on`/`once` call: its own object, so ending it never removes another registration of the same function. */
interface Registration {
  readonly listener: AnyListener;
  readonly once: boolean;
  readonly context: unknown;
}

/**
 * Typed events with safe dispatch: a listener that throws or rejects is reported to `onError` and the remaining
 * listeners still run, so emitting never throws into the code that emits. `on`/`once` return a {@link Subscription}
 * that removes only its own registration. A `once` listener is removed before it runs. Listener arrays are
 * copy-on-write, so `emit` walks them without copying and listeners may subscribe or unsubscribe while it runs
 * (the change applies from the next emit).
 *
 * Also offers `addListener`/`removeListener` and `eventNames`, so `events.once(emitter, name)` and emitter trackers
 * work on it.
 *
 * @example
 * interface PoolEvents { drained: []; error: [Error, { id: string }] }
 * class Pool {
 *   readonly #events = new Emitter<PoolEvents>({ onError: (err, event) => logger.error({ err, event }, 'listener failed') });
 *   onDrained(listener: () => void): Subscription { return this.#events.on('drained', listener); }
 * }
 */
export class Emitter<Events extends { [K in keyof Events]: unknown[] }> {
  readonly #listeners = new Map<keyof Events, readonly Registration[]>();
  readonly #onError: (error: unknown, event: keyof Events) => void;

  constructor(options: EmitterOptions<Events> = {}) {
    this.#onError = options.onError ?? warnListenerError;
  }

  /** Adds `listener`; `context` is its `this`. @returns a Subscription ending this registration only. */
  on<K extends keyof Events>(event: K, listener: (...args: Events[K]) => unknown, context?: unknown): Subscription {
    return this.#add(event, { listener, once: false, context });
  }

  /** Like {@link on}, but the registration is removed before its first call. */
  once<K extends keyof Events>(event: K, listener: (...args: Events[K]) => unknown, context?: unknown): Subscription {
    return this.#add(event, { listener, once: true, context });
  }

  /** Removes one registration of `listener` (the newest, as `node:events` does); with `context`, one with that context. */
  off<K extends keyof Events>(event: K, listener: (...args: Events[K]) => unknown, context?: unknown): void {
    const list = this.#listeners.get(event);
    if (list === undefined) return;
    for (let i = list.length - 1; i >= 0; i--) {
      const registration = list[i]!;
      if (registration.listener === listener && (context === undefined || registration.context === context)) {
        this.#remove(event, registration);
        return;
      }
    }
  }

  /** Alias of {@link on} (what `node:events` helpers call). */
  addListener<K extends keyof Events>(event: K, listener: (...args: Events[K]) => unknown, context?: unknown): Subscription {
    return this.on(event, listener, context);
  }

  /** Alias of {@link off} (what `events.once` calls to clean up). */
  removeListener<K extends keyof Events>(event: K, listener: (...args: Events[K]) => unknown, context?: unknown): void {
    this.off(event, listener, context);
  }

  /**
   * Calls the listeners of `event` in the order they were added. A throw or a rejected promise goes to `onError`.
   * @returns whether the event had listeners.
   */
  emit<K extends keyof Events>(event: K, ...args: Events[K]): boolean {
    const list = this.#listeners.get(event);
    if (list === undefined) return false;
    for (let i = 0; i < list.length; i++) {
      const registration = list[i]!;
      if (registration.once) this.#remove(event, registration);
      try {
        const result = (registration.listener as (...a: unknown[]) => unknown).apply(registration.context, args);
        if (result !== undefined && result !== null && typeof (result as PromiseLike<unknown>).then === 'function') {
          (result as PromiseLike<unknown>).then(undefined, (error: unknown) => this.#report(error, event));
        }
      } catch (error) {
        this.#report(error, event);
      }
    }
    return true;
  }

  /** How many registrations `event` has. */
  listenerCount(event: keyof Events): number {
    return this.#listeners.get(event)?.length ?? 0;
  }

  /** The events that have listeners. */
  eventNames(): (keyof Events)[] {
    return [...this.#listeners.keys()];
  }

  /** Removes every registration of `event`, or of every event. */
  removeAllListeners(event?: keyof Events): void {
    if (event === undefined) this.#listeners.clear();
    else this.#listeners.delete(event);
  }

  #add(event: keyof Events, registration: Registration): Subscription {
    const list = this.#listeners.get(event);
    this.#listeners.set(event, list === undefined ? [registration] : [...list, registration]);
    return createSubscription(() => this.#remove(event, registration));
  }

  #remove(event: keyof Events, registration: Registration): void {
    const list = this.#listeners.get(event);
    const index = list === undefined ? -1 : list.indexOf(registration);
    if (index === -1) return;
    if (list!.length === 1) this.#listeners.delete(event);
    else this.#listeners.set(event, [...list!.slice(0, index), ...list!.slice(index + 1)]);
  }

  #report(error: unknown, event: keyof Events): void {
    try {
      this.#onError(error, event);
    } catch {
      // A failing reporter must not break dispatch to the remaining listeners.
    }
  }
}

function warnListenerError(error: unknown, event: PropertyKey): void {
  process.emitWarning(`a listener of "${String(event)}" failed: ${errorMessage(error)}`, { type: 'GuardListenerError' });
}
