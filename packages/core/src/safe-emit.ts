/** eventemitter3's (v5) record of one registration: what `on`/`once` stored. */
interface Registration {
  readonly fn: (...args: unknown[]) => unknown;
  readonly context: unknown;
  readonly once: boolean;
}

type Registrations = Registration | Registration[] | undefined;

/** What {@link safeEmit} calls on an eventemitter3 (v5) emitter (typed here, so core needs no eventemitter3). */
interface SafeEmitTarget {
  _events: Record<string | symbol, Registrations>;
  removeListener(event: string | symbol, fn: (...args: unknown[]) => unknown, context: undefined, once: boolean): unknown;
}

/**
 * Emits like eventemitter3's own `emit` (a `once` registration is removed before it runs, each listener gets its
 * `context`) but never lets a listener's throw or rejected promise escape: both go to `onError` and the remaining
 * listeners still run. The emitter's listeners are read from eventemitter3's `_events` record, the same one its `emit`
 * walks, because `listeners()` drops the `once` flag and the context.
 *
 * @deprecated Hold an {@link Emitter} instead of extending eventemitter3 (as `GuardBus` does): it dispatches safely
 * by itself. Kept until `ImmuneService` moves over.
 *
 * @example
 * class Bus extends EventEmitter { override emit(event, ...args) { return safeEmit(this, event, args, report); } }
 */
export function safeEmit(emitter: object, event: string | symbol, args: readonly unknown[], onError: (error: unknown) => void): boolean {
  const target = emitter as SafeEmitTarget;
  const registered = target._events[event];
  if (!registered) return false;
  // A copy: listeners may add or remove listeners while we dispatch, as with eventemitter3's own emit.
  const list = Array.isArray(registered) ? registered.slice() : [registered];
  for (const { fn, context, once } of list) {
    if (once) target.removeListener(event, fn, undefined, true);
    try {
      const result = fn.apply(context, args as unknown[]);
      if (result && typeof (result as PromiseLike<unknown>).then === 'function') (result as PromiseLike<unknown>).then(undefined, onError);
    } catch (error) {
      onError(error);
    }
  }
  return true;
}
