import type { ComponentName } from '@guard/core';
import { GuardError } from '@guard/core';
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
  type ParasiteThresholds,
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
import type { CloseStack } from './close-stack.js';
import { named, type OneOrMany } from './named.js';

/**
 * A `pg` `Pool` as the guard needs it: kysely's PostgresDialect runs on it and the tracker reads its counts.
 *
 * @example
 * createGuard({ db: new pg.Pool({ connectionString }) });
 */
export interface PgPool extends PgPoolLike {
  connect(...args: any[]): any;
  end(): Promise<void>;
  readonly ended?: boolean;
}

/** What `db` accepts: a kysely `Dialect` (SQLite, MySQL, Postgres, ...) or a `pg` `Pool`. */
export type DbInput = Dialect | PgPool;

/** The resources the guard tracks (each becomes one tracker with its own sanitizer). */
export interface TrackedResources {
  readonly wss?: OneOrMany<WebSocketServer>;
  readonly db?: OneOrMany<DbInput>;
  readonly emitters?: OneOrMany<TrackableEmitter>;
  readonly batches?: OneOrMany<BatchWriter<any>>;
  /** Track AsyncLocalStorage spans (C6): `guard.contexts.run(name, fn)`. Default true. */
  readonly contexts?: boolean;
  /** Watch active handles by type (C7, report only). Default true. */
  readonly handles?: boolean;
}

/** One tracker and the sanitizer that heals what it finds. */
export interface TrackerPair {
  readonly name: string;
  readonly detector: Detector;
  /** Built from this tracker (`createXSanitizer(tracker)`), so it has the tracker's `owns`: the scheduler routes by it. */
  readonly sanitizer: Sanitizer;
}

/** The trackers built for {@link TrackedResources}, by kind and name. */
export interface Trackers {
  readonly pairs: readonly TrackerPair[];
  readonly sockets: Readonly<Record<string, WebSocketTracker>>;
  readonly webSocketServers: readonly WebSocketServer[];
  readonly dialects: Readonly<Record<string, TrackedDialect>>;
  /** The `pg` pools the guard was given, by name (ended on shutdown). */
  readonly pgPools: Readonly<Record<string, PgPool>>;
  readonly emitters: EventBusTracker | undefined;
  readonly contexts: ContextTracker | undefined;
  readonly handles: HandleTracker | undefined;
}

const isWss = (value: unknown): value is WebSocketServer =>
  typeof value === 'object' && value !== null && typeof (value as WebSocketServer).handleUpgrade === 'function';
const isPgPool = (value: unknown): value is PgPool =>
  typeof value === 'object' && value !== null && typeof (value as PgPool).totalCount === 'number' && typeof (value as PgPool).connect === 'function';
const isDialect = (value: unknown): value is Dialect => typeof value === 'object' && value !== null && typeof (value as Dialect).createDriver === 'function';
const isDbInput = (value: unknown): value is DbInput => isPgPool(value) || isDialect(value);
const isEmitter = (value: unknown): value is TrackableEmitter =>
  typeof value === 'object' && value !== null && typeof (value as TrackableEmitter).on === 'function' && typeof (value as { emit?: unknown }).emit === 'function';
const isBatch = (value: unknown): value is BatchWriter<any> => value instanceof BatchWriter;

/**
 * Builds one tracker per resource, each paired with its own sanitizer, in the order the close stack needs
 * (trackers are closed after the sanitizer and chain that use them, because they are created first).
 */
export function buildTrackers(resources: TrackedResources, thresholds: ParasiteThresholds, stack: CloseStack): Trackers {
  const pairs: TrackerPair[] = [];
  const sockets: Record<string, WebSocketTracker> = {};
  const webSocketServers: WebSocketServer[] = [];
  for (const [name, wss] of named(resources.wss, 'ws', isWss)) {
    if (!isWss(wss)) throw new GuardError('INVALID_OPTION', `wss.${name} is not a ws WebSocketServer`, { details: { field: `wss.${name}` } });
    const tracker = stack.defer(`websocket:${name}`, new WebSocketTracker(wss, thresholds.websocket), (t) => t.close());
    sockets[name] = tracker;
    webSocketServers.push(wss);
    pairs.push({ name, detector: tracker, sanitizer: createWebSocketSanitizer(tracker) });
  }

  const dialects: Record<string, TrackedDialect> = {};
  const pgPools: Record<string, PgPool> = {};
  for (const [name, db] of named(resources.db, 'db', isDbInput)) {
    if (!isDbInput(db)) throw new GuardError('INVALID_OPTION', `db.${name} must be a kysely Dialect or a pg Pool`, { details: { field: `db.${name}` } });
    const pgPool = isPgPool(db) ? db : undefined;
    if (pgPool) pgPools[name] = pgPool;
    const dialect = trackDialect(pgPool ? new PostgresDialect({ pool: pgPool as never }) : (db as Dialect), {
      name,
      ...thresholds.db,
      ...(pgPool ? { pgPool } : {}),
    });
    dialects[name] = dialect;
    pairs.push({ name, detector: dialect.tracker, sanitizer: createDbSanitizer(dialect.tracker) });
  }

  let emitters: EventBusTracker | undefined;
  const emitterList = named(resources.emitters, 'bus', isEmitter);
  if (emitterList.length > 0) {
    const tracker = stack.defer('eventbus', new EventBusTracker(thresholds.eventbus), (t) => t.close());
    for (const [name, emitter] of emitterList) tracker.track(emitter, { name });
    emitters = tracker;
    pairs.push({ name: 'eventbus', detector: tracker, sanitizer: createEventBusSanitizer(tracker) });
  }

  for (const [name, batch] of named(resources.batches, 'batch', isBatch)) {
    pairs.push({ name, detector: batch, sanitizer: createBatchSanitizer(batch) });
  }

  let contexts: ContextTracker | undefined;
  if (resources.contexts ?? true) {
    contexts = stack.defer('context', new ContextTracker(thresholds.context), (t) => t.close());
    pairs.push({ name: 'context', detector: contexts, sanitizer: createContextSanitizer(contexts) });
  }
  let handles: HandleTracker | undefined;
  if (resources.handles ?? true) {
    handles = new HandleTracker(thresholds.handles);
    pairs.push({ name: 'handles', detector: handles, sanitizer: createHandleSanitizer() });
  }
  return { pairs, sockets, webSocketServers, dialects, pgPools, emitters, contexts, handles };
}

/** Components that have at least one tracker. */
export function componentsOf(pairs: readonly TrackerPair[]): Set<ComponentName> {
  return new Set(pairs.map((p) => p.detector.component));
}
