import type { CloseStack, ComponentName, Logger, PgTimeouts } from '@guard/core';
import { GuardError, guardPgPool } from '@guard/core';
import type { Dialect } from 'kysely';
import { PostgresDialect } from 'kysely';
import type { WebSocketServer } from 'ws';
import {
  BatchWriter,
  ContextTracker,
  EventBusTracker,
  HandleTracker,
  WebSocketTracker,
  trackDialect,
  type Detector,
  type DetectorChain,
  type ParasiteThresholds,
  type PgClientLike,
  type PgPoolLike,
  type TrackableEmitter,
  type TrackedDialect,
} from '@guard/detectors';
import {
  createBatchSanitizer,
  createContextSanitizer,
  createDbSanitizer,
  createEventBusSanitizer,
  createHandleSanitizer,
  createWebSocketSanitizer,
  type Sanitizer,
} from '@guard/sanitizer';
import { ComponentSanitizers } from './component-sanitizers.js';
import { named, type OneOrMany } from './named.js';

/**
 * A `pg` `Pool` as the guard needs it: kysely's PostgresDialect runs on it and the tracker reads its counts.
 *
 * @example
 * createGuard({ db: new pg.Pool({ connectionString }) });
 */
export interface PgPool extends PgPoolLike {
  // never[]: pg's overloads (promise and callback) both fit; the guard only hands the pool to kysely.
  connect(...args: never[]): Promise<PgClientLike> | void;
  end(): Promise<void>;
  readonly ended?: boolean;
}

/** What `db` accepts: a kysely `Dialect` (SQLite, MySQL, Postgres, ...) or a `pg` `Pool`. */
export type DbInput = Dialect | PgPool;

/**
 * Resources to track; each becomes a tracker with its own sanitizer. Given to `createGuard` or later to `guard.track()`.
 *
 * @example
 * guard.track({ batches: { results: new BatchWriter({ name: 'results', db, write }) } });
 */
export interface TrackedResources {
  /** `ws` servers: a `WebSocketServer`, an array, or `{ name: wss }`. */
  readonly wss?: OneOrMany<WebSocketServer>;
  /** Databases: a kysely `Dialect` or a `pg` `Pool`, an array, or `{ name: … }`; query through `guard.dialects.<name>`. */
  readonly db?: OneOrMany<DbInput>;
  /** Event emitters (Node's or eventemitter3) watched for subscription leaks. */
  readonly emitters?: OneOrMany<TrackableEmitter>;
  /** `BatchWriter`s (C5). */
  readonly batches?: OneOrMany<BatchWriter<unknown>>;
}

const isWss = (value: unknown): value is WebSocketServer =>
  typeof value === 'object' && value !== null && typeof (value as WebSocketServer).handleUpgrade === 'function';
const isPgPool = (value: unknown): value is PgPool =>
  typeof value === 'object' && value !== null && typeof (value as PgPool).totalCount === 'number' && typeof (value as PgPool).connect === 'function';
const isDialect = (value: unknown): value is Dialect => typeof value === 'object' && value !== null && typeof (value as Dialect).createDriver === 'function';
const isDbInput = (value: unknown): value is DbInput => isPgPool(value) || isDialect(value);
const isEmitter = (value: unknown): value is TrackableEmitter =>
  typeof value === 'object' && value !== null && typeof (value as TrackableEmitter).on === 'function' && typeof (value as { emit?: unknown }).emit === 'function';
const isBatch = (value: unknown): value is BatchWriter<unknown> => value instanceof BatchWriter;

const COMPONENTS: readonly ComponentName[] = ['websocket', 'eventbus', 'db', 'batch', 'context', 'handles'];

/**
 * Every tracker of one guard, by kind and name, and the per-component sanitizers the scheduler holds. Trackers
 * can be added after the guard started (`guard.track()`); each is closed (and leaves the chain) before the parts
 * created before it.
 *
 * @example
 * const set = new TrackerSet(thresholds, stack, { contexts: true, handles: true });
 * set.add({ wss });
 */
export class TrackerSet {
  readonly sockets: Record<string, WebSocketTracker> = {};
  readonly dialects: Record<string, TrackedDialect> = {};
  /** The `pg` pools the guard was given, by name, and how to end them (on shutdown). */
  readonly pgPools: Record<string, { readonly pool: PgPool; end(): Promise<void> }> = {};
  readonly webSocketServers: WebSocketServer[] = [];
  readonly emitters: EventBusTracker;
  readonly contexts: ContextTracker | undefined;
  readonly handles: HandleTracker | undefined;
  /** One per component, handed to the `DeferredSanitizer` once; members grow with the trackers. */
  readonly sanitizers: ReadonlyMap<ComponentName, ComponentSanitizers>;
  readonly #thresholds: ParasiteThresholds;
  readonly #stack: CloseStack;
  readonly #detectors: Detector[] = [];
  #chain: DetectorChain | undefined;

  readonly #logger: Logger;
  readonly #pgTimeouts: PgTimeouts;

  constructor(
    thresholds: ParasiteThresholds,
    stack: CloseStack,
    options: { readonly contexts: boolean; readonly handles: boolean; readonly logger: Logger; readonly pgTimeouts: PgTimeouts },
  ) {
    this.#thresholds = thresholds;
    this.#stack = stack;
    this.#logger = options.logger;
    this.#pgTimeouts = options.pgTimeouts;
    this.sanitizers = new Map(COMPONENTS.map((c) => [c, new ComponentSanitizers(c)]));
    this.emitters = this.#own(new EventBusTracker(thresholds.eventbus), createEventBusSanitizer);
    this.contexts = options.contexts ? this.#own(new ContextTracker(thresholds.context), createContextSanitizer) : undefined;
    this.handles = options.handles ? this.#own(new HandleTracker(thresholds.handles), () => createHandleSanitizer()) : undefined;
  }

  /** The detectors so far (the chain is built with them; later ones join it directly). */
  get detectors(): readonly Detector[] {
    return this.#detectors;
  }

  /** Components that have at least one tracker. */
  components(): ComponentName[] {
    return [...this.sanitizers].filter(([, s]) => s.size > 0).map(([c]) => c);
  }

  /** From now on, new trackers join this chain. */
  attachChain(chain: DetectorChain): void {
    this.#chain = chain;
  }

  /** Tracks more resources; names must be new within their kind. */
  add(resources: TrackedResources): void {
    const t = this.#thresholds;
    for (const [name, wss] of named(resources.wss, 'ws', isWss)) {
      if (!isWss(wss)) throw new GuardError('INVALID_OPTION', `wss.${name} is not a ws WebSocketServer`, { details: { field: `wss.${name}` } });
      this.#unique(this.sockets, 'wss', name);
      this.sockets[name] = this.#own(new WebSocketTracker(wss, t.websocket), createWebSocketSanitizer);
      this.webSocketServers.push(wss);
    }
    for (const [name, db] of named(resources.db, 'db', isDbInput)) {
      if (!isDbInput(db)) throw new GuardError('INVALID_OPTION', `db.${name} must be a kysely Dialect or a pg Pool`, { details: { field: `db.${name}` } });
      this.#unique(this.dialects, 'db', name);
      const pgPool = isPgPool(db) ? db : undefined;
      let base = db as Dialect;
      if (pgPool) {
        // Do no harm: a connection the database drops (idle or checked out) is logged and replaced, never an
        // unhandled 'error' that ends the process. The tracker reads the raw pool; kysely queries the guarded one.
        const guarded = guardPgPool(pgPool as never, { timeouts: this.#pgTimeouts, logger: this.#logger, name: `pool ${name}` });
        this.pgPools[name] = { pool: pgPool, end: () => guarded.end() };
        base = new PostgresDialect({ pool: guarded as never });
      }
      const dialect = trackDialect(base, { name, ...t.db, ...(pgPool ? { pgPool } : {}) });
      this.dialects[name] = dialect;
      this.#join(dialect.tracker, createDbSanitizer(dialect.tracker));
    }
    for (const [name, emitter] of named(resources.emitters, 'bus', isEmitter)) {
      if (!isEmitter(emitter)) throw new GuardError('INVALID_OPTION', `emitters.${name} is not an event emitter`, { details: { field: `emitters.${name}` } });
      this.emitters.track(emitter, { name });
    }
    for (const [name, batch] of named(resources.batches, 'batch', isBatch)) {
      if (!isBatch(batch)) throw new GuardError('INVALID_OPTION', `batches.${name} is not a BatchWriter`, { details: { field: `batches.${name}` } });
      this.#join(batch, createBatchSanitizer(batch));
    }
  }

  /** A tracker the guard created: closed by the guard. */
  #own<T extends Detector>(tracker: T, sanitizerFor: (tracker: T) => Sanitizer): T {
    this.#stack.defer(() => tracker.close?.());
    this.#join(tracker, sanitizerFor(tracker));
    return tracker;
  }

  #join(detector: Detector, sanitizer: Sanitizer): void {
    const leave = this.sanitizers.get(sanitizer.component)?.add(sanitizer);
    this.#detectors.push(detector);
    if (this.#chain) {
      this.#chain.add(detector);
      const chain = this.#chain;
      this.#stack.defer(() => chain.remove(detector));
    }
    if (leave) this.#stack.defer(leave);
  }

  #unique(record: Record<string, unknown>, kind: string, name: string): void {
    if (name in record) throw new GuardError('INVALID_OPTION', `${kind}.${name} is already tracked`, { details: { field: `${kind}.${name}` } });
  }
}
