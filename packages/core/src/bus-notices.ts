import { Emitter } from './emitter.js';
import type { Subscription } from './emitter.js';
import type { GuardBus, GuardEvents } from './guard-bus.js';
import type { Logger } from './logger.js';
import { silentLogger } from './logger.js';

/** Options for {@link BusNotices}. */
export interface BusNoticesOptions {
  /** Where each notice is mirrored; none: local listeners only. */
  readonly bus?: GuardBus;
  /** Where a listener's throw or rejection is logged (`<owner> listener threw`). Default silent. */
  readonly logger?: Logger;
  /** The producer's name in that log line, e.g. `HeartbeatWatchdog`. */
  readonly owner: string;
}

/**
 * The notices one Guard object produces: delivered to its own listeners (the object's `onX()`, with safe dispatch:
 * a listener that throws or rejects is logged and the others still run), then mirrored on the `GuardBus` as
 * `event`, where other packages listen. One field instead of an emitter, a bus and the two `emit` calls.
 *
 * @example
 * readonly #notices = new BusNotices('heartbeat', { bus: options.bus, logger, owner: 'HeartbeatWatchdog' });
 * onEvent(listener: (event: HeartbeatNotice) => unknown): Subscription { return this.#notices.on(listener); }
 * #emit(event: HeartbeatNotice): void { this.#notices.emit(event); }
 */
export class BusNotices<K extends keyof GuardEvents> {
  readonly #event: K;
  readonly #bus: GuardBus | undefined;
  readonly #local: Emitter<{ notice: GuardEvents[K] }>;

  constructor(event: K, options: BusNoticesOptions) {
    this.#event = event;
    this.#bus = options.bus;
    const logger = options.logger ?? silentLogger;
    this.#local = new Emitter({ onError: (error) => logger.error({ err: error, event }, `${options.owner} listener threw`) });
  }

  /** Adds a local listener. @returns a Subscription ending this registration only. */
  on(listener: (...args: GuardEvents[K]) => unknown): Subscription {
    return this.#local.on('notice', listener);
  }

  /** Delivers to the local listeners, then emits on the bus. */
  emit(...args: GuardEvents[K]): void {
    this.#local.emit('notice', ...args);
    this.#bus?.emit(this.#event, ...args);
  }

  /** Drops every local listener (at the producer's `close()`); the bus's listeners are the bus owner's. */
  removeAllListeners(): void {
    this.#local.removeAllListeners();
  }
}
