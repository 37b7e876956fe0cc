import type { Closeable } from './closeable.js';
import { GuardError } from './guard-error.js';

/**
 * Closes many things in reverse order of acquisition. `close()` runs every entry, last deferred first, one at a time,
 * even when some throw; then throws the single error, or an `AggregateError` of them all. It runs once: later calls
 * return the same promise. `defer`/`use` after `close()` throw `CLOSED`.
 *
 * @example
 * await using stack = new CloseStack();
 * const server = stack.use(await startServer());
 * const timer = setInterval(tick, 1_000);
 * stack.defer(() => clearInterval(timer));
 */
export class CloseStack implements Closeable {
  readonly #entries: (() => unknown)[] = [];
  #closing: Promise<void> | undefined;

  /** Runs `fn` (awaited when it returns a promise) on `close()`. */
  defer(fn: () => unknown): void {
    if (this.#closing !== undefined) throw new GuardError('CLOSED', 'CloseStack is closed');
    this.#entries.push(fn);
  }

  /** Closes `resource` on `close()`: its `Symbol.asyncDispose`, else `Symbol.dispose`, else `close()`. @returns it. */
  use<T extends Closeable | Disposable | AsyncDisposable>(resource: T): T {
    this.defer(() => closeResource(resource));
    return resource;
  }

  close(): Promise<void> {
    this.#closing ??= this.#closeAll();
    return this.#closing;
  }

  [Symbol.asyncDispose](): Promise<void> {
    return this.close();
  }

  async #closeAll(): Promise<void> {
    const errors: unknown[] = [];
    for (const fn of this.#entries.splice(0).reverse()) {
      try {
        await fn();
      } catch (error) {
        errors.push(error);
      }
    }
    if (errors.length === 1) throw errors[0];
    if (errors.length > 1) throw new AggregateError(errors, `${errors.length} resources failed to close`);
  }
}

function closeResource(resource: Closeable | Disposable | AsyncDisposable): unknown {
  const r = resource as Partial<Closeable & Disposable>;
  const asyncDispose = r[Symbol.asyncDispose];
  if (asyncDispose !== undefined) return asyncDispose.call(resource);
  const dispose = r[Symbol.dispose];
  if (dispose !== undefined) return dispose.call(resource);
  return r.close?.();
}
