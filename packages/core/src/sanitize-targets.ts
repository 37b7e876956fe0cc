import type { Detection } from './types.js';

/*
 * The contracts between trackers (@guard/detectors, @guard/circuit) and sanitizers (@guard/sanitizer).
 * Trackers implement them; sanitizers act through them, so neither package imports the other.
 * `resourceId` is always the `resourceId` of the detection being healed.
 */

/**
 * C1: a tracked WebSocket server, as the websocket sanitizer needs it.
 *
 * @example
 * const sanitizer = createWebSocketSanitizer(wsTracker); // wsTracker implements WebSocketTarget
 */
export interface WebSocketTarget {
  /** Sends a close frame (1008 policy, 1011 error); false when the connection is unknown. */
  close(resourceId: string, code: number, reason: string): boolean;
  /** Destroys the socket at once; false when unknown. */
  terminate(resourceId: string): boolean;
  /** True while the socket is neither closed nor destroyed. */
  isAlive(resourceId: string): boolean;
  /** Drops the connection from the tracker; returns how many pending (unacked) messages were dropped. */
  forget(resourceId: string): number;
}

/** C2: a tracked event emitter or bus. */
export interface EventBusTarget {
  /** Removes the stale listeners behind a detection (collected owners, or the leaking call site); returns how many. */
  removeStale(resourceId: string): number;
  /** Total listeners tracked now. */
  listenerCount(): number;
}

/** C3: a tracked database pool. */
export interface DbPoolTarget {
  /** Releases or destroys one orphaned connection; false when it is no longer checked out. */
  release(resourceId: string): Promise<boolean>;
  /** Connections checked out now. */
  activeCount(): number;
  /** The pool's limit (C3 `maxPoolSize`). */
  readonly maxPoolSize: number;
  /** Escalation: destroys every connection and resolves once the pool holds 0; the pool then serves again. */
  dispose(): Promise<void>;
}

/** C4: breakers, looked up by name. */
export interface CircuitTarget {
  /** Aborts the in-flight half-open probes of `circuit` and opens it again; false when unknown. */
  reopen(circuit: string, reason: string): boolean;
}

/** C5: a batch writer. */
export interface BatchTarget {
  /** Flushes now; items that still fail go to the dead-letter store, never dropped. */
  flush(): Promise<{ readonly flushed: number; readonly deadLettered: number }>;
}

/** C6: an async-context tracker. */
export interface ContextTarget {
  /** Closes the orphaned contexts behind a detection with an error status; returns how many. */
  closeOrphans(resourceId: string, status: string): number;
}

/**
 * Where detectors hand detections that should be healed (`full` mode). `DeferredSanitizer` implements it.
 *
 * @example
 * const chain = new DetectorChain({ scheduler: deferredSanitizer });
 */
export interface SanitizationScheduler {
  /** Queues healing; false when it is already queued or running for that resource, or not accepted. */
  schedule(detection: Detection): boolean;
}
