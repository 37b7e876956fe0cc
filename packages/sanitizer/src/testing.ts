import type {
  BatchTarget,
  CircuitTarget,
  ComponentName,
  ContextTarget,
  DbPoolTarget,
  EventBusTarget,
} from '@guard/core';
import type { WebSocketDisconnectTarget } from './websocket-sanitizer.js';
import type { SanitizeReport, Sanitizer } from './sanitizer.js';

/*
 * In-memory targets and a recording sanitizer, for testing how an app wires the Parasite Guard together
 * without sockets or databases. Shipped as `@guard/sanitizer/testing`. State is plain data you can assert on.
 */

/**
 * One fake connection of {@link MemoryWebSocketTarget}.
 *
 * @example
 * target.get('conn-1')?.closeCode; // 1008 after the sanitizer ran
 */
export interface MemoryConnection {
  state: 'open' | 'closing' | 'closed';
  pending: number;
  /** When true the peer never finishes the close handshake, so only `terminate` ends it. */
  ignoresClose: boolean;
  closeCode?: number;
  closeReason?: string;
  terminated: boolean;
}

/**
 * An in-memory {@link WebSocketDisconnectTarget}.
 *
 * @example
 * const target = new MemoryWebSocketTarget();
 * target.add('conn-1', { pending: 3, ignoresClose: true });
 * await createWebSocketSanitizer(target, { graceMs: 10 }).sanitize(detection, { signal });
 * target.get('conn-1'); // undefined: closed, terminated and forgotten
 */
export class MemoryWebSocketTarget implements WebSocketDisconnectTarget {
  readonly connections = new Map<string, MemoryConnection>();
  /** Connections that were forgotten, with their final state. */
  readonly forgotten = new Map<string, MemoryConnection>();

  add(id: string, options: { pending?: number; ignoresClose?: boolean } = {}): void {
    this.connections.set(id, { state: 'open', pending: options.pending ?? 0, ignoresClose: options.ignoresClose ?? false, terminated: false });
  }
  get(id: string): MemoryConnection | undefined {
    return this.connections.get(id);
  }
  /** True while the connection is known (not forgotten): several targets of one component route by it. */
  owns(id: string): boolean {
    return this.connections.has(id);
  }
  disconnect(id: string, code: number, reason: string): boolean {
    const connection = this.connections.get(id);
    if (!connection) return false;
    connection.closeCode = code;
    connection.closeReason = reason;
    connection.state = connection.ignoresClose ? 'closing' : 'closed';
    return true;
  }
  terminate(id: string): boolean {
    const connection = this.connections.get(id);
    if (!connection) return false;
    connection.state = 'closed';
    connection.terminated = true;
    return true;
  }
  isAlive(id: string): boolean {
    const connection = this.connections.get(id);
    return connection !== undefined && connection.state !== 'closed';
  }
  forget(id: string): number {
    const connection = this.connections.get(id);
    if (!connection) return 0;
    this.connections.delete(id);
    this.forgotten.set(id, connection);
    return connection.pending;
  }
}

/**
 * An in-memory {@link EventBusTarget}: `stale` counts leaked listeners per resource id, `healthy` the rest.
 *
 * @example
 * const target = new MemoryEventBusTarget({ healthy: 3, stale: { 'handler.ts:42': 1_200 } });
 * target.removeStale('handler.ts:42'); // 1200
 */
export class MemoryEventBusTarget implements EventBusTarget {
  healthy: number;
  readonly stale: Map<string, number>;

  constructor(init: { healthy?: number; stale?: Readonly<Record<string, number>> } = {}) {
    this.healthy = init.healthy ?? 0;
    this.stale = new Map(Object.entries(init.stale ?? {}));
  }
  owns(resourceId: string): boolean {
    return this.stale.has(resourceId);
  }
  removeStale(resourceId: string): number {
    const removed = this.stale.get(resourceId) ?? 0;
    this.stale.delete(resourceId);
    return removed;
  }
  listenerCount(): number {
    let total = this.healthy;
    for (const n of this.stale.values()) total += n;
    return total;
  }
}

/**
 * An in-memory {@link DbPoolTarget}: a set of checked-out connection ids.
 *
 * @example
 * const target = new MemoryDbPoolTarget({ maxPoolSize: 2, checkedOut: ['c1', 'c2', 'c3', 'c4'] });
 * await createDbSanitizer(target).sanitize(detectionFor('c1'), { signal }); // releases c1, then disposes: 0 left
 */
export class MemoryDbPoolTarget implements DbPoolTarget {
  readonly maxPoolSize: number;
  readonly checkedOut: Set<string>;
  /** When false, `dispose()` leaves connections behind (a pool that fails to drain). */
  disposeDrains: boolean;
  disposals = 0;

  constructor(init: { maxPoolSize?: number; checkedOut?: Iterable<string>; disposeDrains?: boolean } = {}) {
    this.maxPoolSize = init.maxPoolSize ?? 30;
    this.checkedOut = new Set(init.checkedOut ?? []);
    this.disposeDrains = init.disposeDrains ?? true;
  }
  owns(resourceId: string): boolean {
    return this.checkedOut.has(resourceId);
  }
  async release(resourceId: string): Promise<boolean> {
    return this.checkedOut.delete(resourceId);
  }
  activeCount(): number {
    return this.checkedOut.size;
  }
  async dispose(): Promise<void> {
    this.disposals++;
    if (this.disposeDrains) this.checkedOut.clear();
  }
}

/**
 * An in-memory {@link CircuitTarget}: breaker states by name, and the reasons they were reopened.
 *
 * @example
 * const target = new MemoryCircuitTarget({ payments: 'half_open' });
 * target.reopen('payments', 'probe orphaned'); // true; target.states.get('payments') === 'open'
 */
export class MemoryCircuitTarget implements CircuitTarget {
  readonly states: Map<string, 'closed' | 'open' | 'half_open'>;
  readonly reopened: Array<{ circuit: string; reason: string }> = [];

  constructor(states: Readonly<Record<string, 'closed' | 'open' | 'half_open'>> = {}) {
    this.states = new Map(Object.entries(states));
  }
  reopen(circuit: string, reason: string): boolean {
    if (!this.states.has(circuit)) return false;
    this.states.set(circuit, 'open');
    this.reopened.push({ circuit, reason });
    return true;
  }
}

/**
 * An in-memory {@link BatchTarget}: `flush()` moves buffered items to `written`, or to `deadLetters` when `fails(item)`.
 *
 * @example
 * const target = new MemoryBatchTarget<number>({ fails: (n) => n < 0 });
 * target.buffer.push(1, -1, 2);
 * await target.flush(); // { flushed: 2, deadLettered: 1 }
 */
export class MemoryBatchTarget<T = unknown> implements BatchTarget {
  readonly buffer: T[] = [];
  readonly written: T[] = [];
  readonly deadLetters: T[] = [];
  readonly #fails: (item: T) => boolean;

  constructor(init: { fails?: (item: T) => boolean } = {}) {
    this.#fails = init.fails ?? (() => false);
  }
  async flush(): Promise<{ flushed: number; deadLettered: number }> {
    let flushed = 0;
    let deadLettered = 0;
    for (const item of this.buffer.splice(0)) {
      if (this.#fails(item)) {
        this.deadLetters.push(item);
        deadLettered++;
      } else {
        this.written.push(item);
        flushed++;
      }
    }
    return { flushed, deadLettered };
  }
}

/**
 * An in-memory {@link ContextTarget}: open context counts per resource id, and the statuses they were closed with.
 *
 * @example
 * const target = new MemoryContextTarget({ 'GET /orders': 4 });
 * target.closeOrphans('GET /orders', 'error'); // 4
 */
export class MemoryContextTarget implements ContextTarget {
  readonly open: Map<string, number>;
  readonly closed: Array<{ resourceId: string; status: string; count: number }> = [];

  constructor(open: Readonly<Record<string, number>> = {}) {
    this.open = new Map(Object.entries(open));
  }
  owns(resourceId: string): boolean {
    return this.open.has(resourceId);
  }
  closeOrphans(resourceId: string, status: string): number {
    const count = this.open.get(resourceId) ?? 0;
    this.open.delete(resourceId);
    if (count > 0) this.closed.push({ resourceId, status, count });
    return count;
  }
}

/**
 * A {@link Sanitizer} that records what it was asked to heal.
 *
 * @example
 * const recording: RecordingSanitizer = createRecordingSanitizer('db');
 */
export interface RecordingSanitizer extends Sanitizer {
  readonly calls: Array<{ readonly detectionId: string; readonly resourceId: string }>;
}

/**
 * A sanitizer that records its calls and returns a fixed report, for testing a DeferredSanitizer's wiring.
 *
 * @example
 * const recording = createRecordingSanitizer('websocket');
 * const scheduler = new DeferredSanitizer({ sanitizers: [recording], delaysMs: { websocket: 0 } });
 * scheduler.schedule(detection);
 * await scheduler.waitForSanitization(1_000);
 * recording.calls.length; // 1
 */
export function createRecordingSanitizer(component: ComponentName, report: SanitizeReport = { outcome: 'success', actions: ['record'], details: {} }): RecordingSanitizer {
  const calls: Array<{ detectionId: string; resourceId: string }> = [];
  return {
    component,
    calls,
    async sanitize(detection, { signal }) {
      signal.throwIfAborted();
      calls.push({ detectionId: detection.id, resourceId: detection.resourceId });
      return report;
    },
  };
}
