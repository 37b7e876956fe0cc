import type { IncomingMessage, ServerResponse } from 'node:http';

const SEEN = Symbol.for('@guard/node.requestSeen');

/**
 * Counts the requests in flight that Guard has seen (through `guard.handler`, `guard.middleware` or an
 * adapter), so a graceful shutdown can wait for them. A request counts once however many Guard handlers it
 * passes, and stops counting when its response closes (finished or aborted).
 *
 * @example
 * const inFlight = new RequestTracker();
 * inFlight.track(req, res);
 * await inFlight.idle(AbortSignal.timeout(10_000));
 */
export class RequestTracker {
  #count = 0;
  #waiters = new Set<() => void>();
  /** While draining, responses get `Connection: close` so keep-alive clients reconnect elsewhere. */
  draining = false;

  get inFlight(): number {
    return this.#count;
  }

  track(req: IncomingMessage, res: ServerResponse): void {
    const marked = req as IncomingMessage & { [SEEN]?: true };
    if (marked[SEEN]) return;
    marked[SEEN] = true;
    this.#count += 1;
    if (this.draining && !res.headersSent) res.setHeader('connection', 'close');
    res.once('close', () => {
      this.#count -= 1;
      if (this.#count === 0) for (const wake of [...this.#waiters]) wake();
    });
  }

  /** Resolves true when no request is in flight, or false when `signal` aborts first. */
  idle(signal: AbortSignal): Promise<boolean> {
    if (this.#count === 0) return Promise.resolve(true);
    if (signal.aborted) return Promise.resolve(false);
    return new Promise((resolve) => {
      const finish = (drained: boolean) => {
        this.#waiters.delete(onIdle);
        signal.removeEventListener('abort', onAbort);
        resolve(drained);
      };
      const onIdle = () => finish(true);
      const onAbort = () => finish(false);
      this.#waiters.add(onIdle);
      signal.addEventListener('abort', onAbort, { once: true });
    });
  }
}
