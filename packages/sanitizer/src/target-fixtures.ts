import { BreakerRegistry, CircuitBreaker } from '@guard/circuit';
import type { ComponentName, Detection } from '@guard/core';
import { BatchWriter, ContextTracker, EventBusTracker, WebSocketTracker, trackDialect } from '@guard/detectors';
import { wsTestServer } from '@guard/detectors/testing';
import Database from 'better-sqlite3';
import { Kysely, SqliteDialect, sql } from 'kysely';
import { EventEmitter } from 'node:events';
import { createBatchSanitizer } from './batch-sanitizer.js';
import { createCircuitSanitizer } from './circuit-sanitizer.js';
import { createContextSanitizer } from './context-sanitizer.js';
import { createDbSanitizer } from './db-sanitizer.js';
import { createEventBusSanitizer } from './eventbus-sanitizer.js';
import type { Sanitizer } from './sanitizer.js';
import { MemoryBatchTarget, MemoryCircuitTarget, MemoryContextTarget, MemoryDbPoolTarget, MemoryEventBusTarget, MemoryWebSocketTarget } from './testing.js';
import { createWebSocketSanitizer } from './websocket-sanitizer.js';

/*
 * One fault per sanitize target, for the contract suite (sanitizer-contract.test.ts): each puts a fault into a real
 * tracker of @guard/detectors or @guard/circuit (a ws peer that never acks, a transaction never finished, a probe that
 * hangs...) or a `./testing` fake, and measures it, so the suite can check the sanitizer really healed it. Test
 * support only.
 */

/** A sanitizer, the fault it must heal, and how the fault is measured. */
export interface HealFixture extends AsyncDisposable {
  readonly sanitizer: Sanitizer;
  /** Puts the fault in; resolves with the detection that names it. */
  inject(): Promise<Detection>;
  /** Measures the fault where a user would see it: true while it is still there. */
  faulty(): Promise<boolean>;
}

/** A named fixture factory: the suite builds a fresh fixture per test. */
export type HealFixtureFactory = readonly [name: string, make: () => Promise<HealFixture>];

/** A detection of `component` for `resourceId`, as a chain would hand it over. */
export function detectionOf(component: ComponentName, resourceId: string, pattern = 'contract'): Detection {
  return { id: `det_${component}_${resourceId}`, component, pattern, severity: 'critical', resourceId, message: '', details: {}, detectedAt: 0 };
}

/** No resources to release. */
const nothing = async (): Promise<void> => {};

/** C1, real: a `ws` peer that never acks; healed = the peer got a close frame and the tracker forgot it. */
async function webSocket(): Promise<HealFixture> {
  const fx = await wsTestServer();
  const tracker = new WebSocketTracker(fx.wss, { pingIntervalMs: 0 });
  let peer: Awaited<ReturnType<typeof fx.connect>> | undefined;
  let closedBy: number | undefined;
  return {
    sanitizer: createWebSocketSanitizer(tracker, { graceMs: 2_000, pollMs: 5 }),
    async inject() {
      peer = await fx.connect();
      void peer.closed.then((code) => (closedBy = code));
      tracker.send(peer.server, { type: 'price' });
      return detectionOf('websocket', tracker.connectionId(peer.server)!, 'no_ack');
    },
    async faulty() {
      const id = tracker.connectionId(peer!.server);
      if (id === undefined && closedBy === undefined) await peer!.closed; // forgotten: the close frame is on its way
      return id !== undefined || closedBy !== 1008;
    },
    async [Symbol.asyncDispose]() {
      await tracker.close();
      await fx[Symbol.asyncDispose]();
    },
  };
}

/** C2, real: unowned listeners piling up at one call site under the opt-in prune policy; healed = all but the oldest gone. */
async function eventBus(): Promise<HealFixture> {
  const tracker = new EventBusTracker({ leakThreshold: 3, pruneUnowned: true });
  const emitter = new EventEmitter();
  const name = tracker.track(emitter, { name: 'orders' });
  return {
    sanitizer: createEventBusSanitizer(tracker),
    async inject() {
      for (let i = 0; i < 5; i++) emitter.on('order', () => {});
      return detectionOf('eventbus', name, 'subscription_leak');
    },
    faulty: async () => emitter.listenerCount('order') > 1,
    [Symbol.asyncDispose]: () => tracker.close(),
  };
}

/** C3, real: a SQLite transaction never finished; healed = the checkout is released and the pool serves again. */
async function sqlitePool(): Promise<HealFixture> {
  const dialect = trackDialect(new SqliteDialect({ database: new Database(':memory:') }));
  const db = new Kysely<Record<string, never>>({ dialect });
  return {
    sanitizer: createDbSanitizer(dialect.tracker),
    async inject() {
      await db.startTransaction().execute(); // SQLite has one connection: everyone else now waits
      return detectionOf('db', dialect.tracker.checkouts()[0]!.id, 'connection_orphan');
    },
    async faulty() {
      if (dialect.tracker.activeCount() > 0) return true;
      await sql`select 1`.execute(db); // serves again
      return false;
    },
    [Symbol.asyncDispose]: () => db.destroy(),
  };
}

/** C5, real: items buffered in a `BatchWriter`; healed = they reached the sink. */
async function batch(): Promise<HealFixture> {
  const db = new Kysely<Record<string, never>>({ dialect: new SqliteDialect({ database: new Database(':memory:') }) });
  const written: unknown[] = [];
  const writer = new BatchWriter({ db, name: 'payments', maxAgeMs: 3_600_000, write: async (items) => void written.push(...items) });
  return {
    sanitizer: createBatchSanitizer(writer),
    async inject() {
      for (let n = 0; n < 3; n++) writer.add({ n });
      return detectionOf('batch', writer.name, 'flush_loss');
    },
    faulty: async () => writer.buffered > 0 || written.length !== 3,
    async [Symbol.asyncDispose]() {
      await writer.close();
      await db.destroy();
    },
  };
}

/** C6, real: a span nested past `maxDepth`; healed = closed with status `error`. */
async function context(): Promise<HealFixture> {
  const tracker = new ContextTracker({ maxDepth: 1 });
  let inner: ReturnType<ContextTracker['open']> | undefined;
  return {
    sanitizer: createContextSanitizer(tracker),
    async inject() {
      inner = tracker.open('outer').run(() => tracker.open('inner'));
      return detectionOf('context', 'depth:inner', 'context_stack_leak');
    },
    faulty: async () => inner!.status !== 'error',
    [Symbol.asyncDispose]: () => tracker.close(),
  };
}

/** C4, real: a `BreakerRegistry` of `@guard/circuit` whose breaker hangs in a half-open probe; healed = open again, probe aborted. */
async function breakers(): Promise<HealFixture> {
  const registry = new BreakerRegistry();
  const breaker = registry.add(new CircuitBreaker({ name: 'payments', initialState: { state: 'half_open' }, metrics: false }));
  let probe: Promise<unknown> | undefined;
  return {
    sanitizer: createCircuitSanitizer(registry),
    async inject() {
      // the probe's work never settles on its own: only its signal ends it
      const work = breaker.execute((signal) => new Promise((_, reject) => signal?.addEventListener('abort', () => reject(signal.reason as Error))));
      probe = work.catch(() => undefined);
      return detectionOf('circuit', breaker.name, 'half_open_orphan');
    },
    async faulty() {
      if (breaker.state !== 'half_open') await probe; // reopened: the aborted probe settles before it stops counting
      return breaker.state === 'half_open' || breaker.probesInFlight > 0;
    },
    [Symbol.asyncDispose]: () => registry.close(),
  };
}

/** A `./testing` fake's fixture: `put` the fault into it, `present` measures it. */
function fakeFixture(sanitizer: Sanitizer, fault: Detection, put: () => void, present: () => boolean): HealFixture {
  return {
    sanitizer,
    async inject() {
      put();
      return fault;
    },
    faulty: async () => present(),
    [Symbol.asyncDispose]: nothing,
  };
}

async function memoryWebSocket(): Promise<HealFixture> {
  const target = new MemoryWebSocketTarget();
  const put = () => target.add('c1', { pending: 2, ignoresClose: true });
  return fakeFixture(createWebSocketSanitizer(target, { graceMs: 0 }), detectionOf('websocket', 'c1', 'no_ack'), put, () => target.isAlive('c1') || target.owns('c1'));
}

async function memoryEventBus(): Promise<HealFixture> {
  const target = new MemoryEventBusTarget({ healthy: 3 });
  const put = () => target.stale.set('h.ts:1', 10);
  return fakeFixture(createEventBusSanitizer(target), detectionOf('eventbus', 'h.ts:1', 'subscription_leak'), put, () => target.listenerCount() > 3);
}

async function memoryDb(): Promise<HealFixture> {
  const target = new MemoryDbPoolTarget({ maxPoolSize: 2 });
  const put = () => target.checkedOut.add('conn_1');
  return fakeFixture(createDbSanitizer(target), detectionOf('db', 'conn_1', 'connection_orphan'), put, () => target.checkedOut.has('conn_1'));
}

async function memoryCircuit(): Promise<HealFixture> {
  const target = new MemoryCircuitTarget({ payments: 'closed' });
  const put = () => target.states.set('payments', 'half_open');
  return fakeFixture(createCircuitSanitizer(target), detectionOf('circuit', 'payments', 'half_open_orphan'), put, () => target.states.get('payments') === 'half_open');
}

async function memoryBatch(): Promise<HealFixture> {
  const target = new MemoryBatchTarget<number>();
  const put = () => target.buffer.push(1, 2, 3);
  return fakeFixture(createBatchSanitizer(target), detectionOf('batch', 'batch', 'flush_loss'), put, () => target.buffer.length > 0);
}

async function memoryContext(): Promise<HealFixture> {
  const target = new MemoryContextTarget();
  const put = () => target.open.set('GET /orders', 4);
  return fakeFixture(createContextSanitizer(target), detectionOf('context', 'GET /orders', 'context_stack_leak'), put, () => target.open.has('GET /orders'));
}

/** Every sanitizer against the real trackers of @guard/detectors and against the `./testing` fakes. */
export const HEAL_FIXTURES: readonly HealFixtureFactory[] = [
  ['websocket: WebSocketTracker (real ws on port 0)', webSocket],
  ['eventbus: EventBusTracker (real EventEmitter, pruneUnowned)', eventBus],
  ['db: trackDialect (real SQLite)', sqlitePool],
  ['batch: BatchWriter (real SQLite)', batch],
  ['context: ContextTracker (real AsyncLocalStorage)', context],
  ['circuit: BreakerRegistry of real CircuitBreakers (@guard/circuit)', breakers],
  ['websocket: MemoryWebSocketTarget (./testing)', memoryWebSocket],
  ['eventbus: MemoryEventBusTarget (./testing)', memoryEventBus],
  ['db: MemoryDbPoolTarget (./testing)', memoryDb],
  ['circuit: MemoryCircuitTarget (./testing)', memoryCircuit],
  ['batch: MemoryBatchTarget (./testing)', memoryBatch],
  ['context: MemoryContextTarget (./testing)', memoryContext],
];
