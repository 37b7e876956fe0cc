import type { Logger } from '@guard/core';
import { silentLogger } from '@guard/core';

interface Entry {
  readonly name: string;
  readonly close: () => unknown;
}

/**
 * Everything `createGuard` built, closed in reverse order of creation (like `AsyncDisposableStack`, which
 * Node 20 lacks): a user of a part is always closed before the part. One failing close is logged and the
 * rest still close.
 *
 * @example
 * const stack = new CloseStack(logger);
 * const memory = stack.defer('memory', new MemoryGuardrail(), (m) => m.close());
 * await stack.close();
 */
export class CloseStack implements AsyncDisposable {
  readonly #entries: Entry[] = [];
  readonly #logger: Logger;
  #closing: Promise<void> | undefined;

  constructor(logger: Logger = silentLogger) {
    this.#logger = logger;
  }

  /** Registers `close` for `value` and returns `value`. */
  defer<T>(name: string, value: T, close: (value: T) => unknown): T {
    this.#entries.push({ name, close: () => close(value) });
    return value;
  }

  /** The names in closing order (for diagnostics and tests). */
  order(): string[] {
    return this.#entries.map((e) => e.name).reverse();
  }

  /** Closes everything once, last created first; later calls return the same promise. */
  close(): Promise<void> {
    this.#closing ??= (async () => {
      while (this.#entries.length > 0) {
        const entry = this.#entries.pop()!;
        try {
          await entry.close();
        } catch (error) {
          this.#logger.error({ err: error, part: entry.name }, 'guard: closing a part failed');
        }
      }
    })();
    return this.#closing;
  }

  [Symbol.asyncDispose](): Promise<void> {
    return this.close();
  }
}
