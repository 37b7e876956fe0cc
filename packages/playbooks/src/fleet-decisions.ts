import type { GuardedPgClient, GuardedPgPool, GuardMode, ListenPoolLike, Logger, MetricsOptions, PgPoolLike, PgTimeouts } from '@guard/core';
import { assertNumberOption, GuardError, guardPgPool, isGuardMode, migrateUnderLock, PgNotificationListener, resolvePgTimeouts, scrapeGauge, silentLogger, withPgClient } from '@guard/core';
import type { Counter } from 'prom-client';
import { DEFAULT_METRICS_PREFIX, playbooksCounter } from './metrics.js';
import { storeError } from './store-error.js';
import type {} from './declarations.js';

/**
 * What a fleet decision does: refuse an actor, limit a topic or an actor, or set the guard mode.
 *
 * @example
 * const kind: FleetDecisionKind = 'blacklist';
 */
export type FleetDecisionKind = 'blacklist' | 'rate_limit_topic' | 'rate_limit_actor' | 'mode';

/**
 * One decision as stored in the fleet table.
 *
 * @example
 * for (const d of await decisions.active()) console.log(d.kind, d.subject, d.expiresAt);
 */
export interface FleetDecision {
  readonly id: number;
  readonly kind: FleetDecisionKind;
  /** `*` (every replica) or one replica's id. */
  readonly target: string;
  /** The actor (blacklist, rate_limit_actor), the topic (rate_limit_topic) or the mode (mode). */
  readonly subject: string;
  /** rate_limit_*: publishes per second. */
  readonly ratePerSec?: number;
  /** rate_limit_actor: the topics limited (default every topic). */
  readonly topic?: string;
  readonly reason?: string;
  /** The replica that made it. */
  readonly createdBy: string;
  /** Epoch ms, or null: until lifted. */
  readonly expiresAt: number | null;
}

/**
 * The slice of a `MessageBus` fleet decisions act on.
 *
 * @example
 * const bus: FleetBusLike = new MessageBus();
 */
export interface FleetBusLike {
  blacklist(actor: string, options?: { durationMs?: number }): void;
  unblacklist(actor: string): boolean;
  setRateLimit(topic: string, ratePerSec: number, options?: { durationMs?: number }): void;
  clearRateLimit(topic: string): boolean;
  limitActor(actor: string, ratePerSec: number, options?: { topic?: string; durationMs?: number }): unknown;
  clearActorLimit(actor: string, topic?: string): number;
}

/**
 * What the built-in playbook actions need to share a decision with the fleet: each call applies it to the local bus
 * at once (synchronously) and shares it in the background.
 *
 * @example
 * createActionRegistry({ messageBus: bus, fleet: decisions });
 */
export interface FleetDecisionSink {
  blacklist(actor: string, options?: { durationMs?: number; reason?: string }): void;
  unblacklist(actor: string): void;
  limitTopic(topic: string, ratePerSec: number, options?: { durationMs?: number; reason?: string }): void;
  limitActor(actor: string, ratePerSec: number, options?: { topic?: string; durationMs?: number; reason?: string }): void;
}

/**
 * Options for {@link FleetDecisions}.
 *
 * @example
 * new FleetDecisions({ pool, instanceId: membership.instanceId, bus, onMode: (mode) => guard.setMode(mode ?? configuredMode) });
 */
export interface FleetDecisionsOptions extends MetricsOptions {
  /** The fleet's Postgres (a pg `Pool`; one connection is held for LISTEN; not closed here). */
  readonly pool: PgPoolLike & ListenPoolLike;
  /** This replica's id (a mode switch may target it). */
  readonly instanceId: string;
  /** The local bus every blacklist and rate limit is applied to. */
  readonly bus?: FleetBusLike;
  /**
   * Called with the mode the fleet wants for this replica whenever it changes (at start too: a new replica starts in
   * the fleet's current mode), and with `undefined` when no fleet mode is in force (expired or cleared): the
   * replica goes back to its own configured mode.
   */
  readonly onMode?: (mode: GuardMode | undefined, decision: FleetDecision | undefined) => void;
  /** Default `guard_fleet_decisions` (also the NOTIFY channel). */
  readonly table?: string;
  /** Decisions made while the database is away wait here (oldest dropped beyond this). Default 1 000. */
  readonly maxPending?: number;
  readonly pingIntervalMs?: number;
  readonly timeouts?: PgTimeouts;
  readonly logger?: Logger;
}

const IDENTIFIER = /^[a-z_][a-z0-9_]{0,62}$/;
const MAX_DURATION_MS = 365 * 86_400_000;

interface Pending {
  kind: FleetDecisionKind;
  target: string;
  subject: string;
  ratePerSec: number | null;
  topic: string | null;
  reason: string | null;
  /** Absolute epoch ms (this host's clock) or null. */
  expiresAt: number | null;
}

interface Row {
  id: string | number;
  kind: FleetDecisionKind;
  target: string;
  subject: string;
  rate: number | null;
  topic: string | null;
  reason: string | null;
  created_by: string;
  remaining_ms: string | number | null;
}

/**
 * Fleet-wide decisions on the Postgres the fleet shares (a table + NOTIFY, with expiry): a blacklist or rate limit
 * made on one replica (by hand or by a playbook through {@link FleetDecisionSink}) reaches every replica's
 * `MessageBus` within a notification's latency, and a mode switch or emergency disable reaches one replica or all.
 * Expiry is measured on the database clock, so host clock skew never shortens or stretches a decision.
 *
 * Without the database every call still applies locally at once (per-instance behaviour); the decision is kept
 * and shared when the database is back, and the replica re-reads the decisions it missed.
 *
 * @example
 * await using decisions = new FleetDecisions({ pool, instanceId, bus, onMode: (mode) => guard.setMode(mode ?? 'full') });
 * await decisions.start();
 * decisions.blacklist('rogue', { durationMs: 600_000, reason: 'acl spam' });
 * await decisions.setMode('disabled', { target: 'fleet' }); // emergency disable, every replica
 */
export class FleetDecisions implements FleetDecisionSink, AsyncDisposable {
  readonly instanceId: string;
  readonly #table: string;
  readonly #bus: FleetBusLike | undefined;
  readonly #onMode: FleetDecisionsOptions['onMode'];
  readonly #pool: GuardedPgPool;
  readonly #listener: PgNotificationListener;
  readonly #logger: Logger;
  readonly #maxPending: number;
  /** Decisions applied here from the table, by id. */
  readonly #applied = new Map<number, FleetDecision>();
  #pending: Pending[] = [];
  readonly #appliedTotal: Counter<'kind'>;
  /** Aborted by close(): stops the scrape-time readers. */
  readonly #closeSignal = new AbortController();
  #mode: FleetDecision | undefined;
  #modeTimer: NodeJS.Timeout | undefined;
  #migrated: Promise<void> | undefined;
  #sync: Promise<void> | undefined;
  #syncAgain = false;
  #work = new Set<Promise<unknown>>();
  #reachable: boolean | undefined;
  #closed = false;
  #closing: Promise<void> | undefined;

  constructor(options: FleetDecisionsOptions) {
    if (!options?.pool || typeof options.pool.connect !== 'function') throw new GuardError('INVALID_OPTION', 'pool (a pg Pool) is required', { details: { field: 'pool' } });
    if (typeof options.instanceId !== 'string' || options.instanceId === '') throw new GuardError('INVALID_OPTION', 'instanceId must be a non-empty string', { details: { field: 'instanceId' } });
    const table = options.table ?? 'guard_fleet_decisions';
    if (!IDENTIFIER.test(table)) throw new GuardError('INVALID_OPTION', `table must be a plain SQL identifier, got ${JSON.stringify(table)}`, { details: { field: 'table' } });
    this.#maxPending = options.maxPending ?? 1_000;
    assertNumberOption('maxPending', this.#maxPending, { min: 1, integer: true });
    this.instanceId = options.instanceId;
    this.#table = table;
    this.#bus = options.bus;
    this.#onMode = options.onMode;
    this.#logger = options.logger ?? silentLogger;
    this.#appliedTotal = playbooksCounter(options, 'fleet_decisions_applied_total', "Blacklists and rate limits of other replicas applied to this replica's bus, by kind", ['kind']);
    scrapeGauge(
      options,
      { name: 'fleet_decisions_pending', help: 'Decisions made here that wait for the fleet database (applied locally already)', defaultPrefix: DEFAULT_METRICS_PREFIX, signal: this.#closeSignal.signal },
      () => this.#pending.length,
    );
    const timeouts = options.timeouts ?? resolvePgTimeouts();
    this.#pool = guardPgPool(options.pool, { timeouts, logger: this.#logger, name: 'fleet decisions (postgres)' });
    this.#listener = new PgNotificationListener({
      pool: options.pool,
      channels: [table],
      name: 'fleet decisions',
      logger: this.#logger,
      timeouts,
      ...(options.pingIntervalMs === undefined ? {} : { pingIntervalMs: options.pingIntervalMs }),
      onNotification: () => void this.#requestSync(),
      // Back after an outage: share what was decided meanwhile, then read what the others decided.
      onConnected: () => void this.#requestSync(),
    });
  }

  /** Whether the last exchange with the database succeeded (undefined before the first). */
  get reachable(): boolean | undefined {
    return this.#reachable;
  }

  /** Whether decisions from other replicas are flowing in now. */
  get listening(): boolean {
    return this.#listener.connected;
  }

  /** Decisions made here that wait for the database. */
  get pendingCount(): number {
    return this.#pending.length;
  }

  /** The fleet mode in force for this replica, if any. */
  get mode(): GuardMode | undefined {
    return this.#mode?.subject as GuardMode | undefined;
  }

  /**
   * Creates the table (under an advisory lock), applies the decisions in force (so a new replica starts in the
   * fleet's current mode, with its blacklists) and starts listening. Never rejects for an unreachable database:
   * the replica runs on its own and joins when the database is back.
   */
  async start(): Promise<void> {
    if (this.#closed) throw new GuardError('CLOSED', 'fleet decisions are closed');
    this.#listener.start();
    await this.#requestSync();
  }

  /** Refuses `actor` on every replica's bus for `durationMs` (default until lifted). Applied here at once. */
  blacklist(actor: string, options: { durationMs?: number; reason?: string } = {}): void {
    nonEmpty('actor', actor);
    const durationMs = duration(options.durationMs);
    this.#bus?.blacklist(actor, durationMs === null ? {} : { durationMs });
    this.#share({ kind: 'blacklist', target: '*', subject: actor, ratePerSec: null, topic: null, reason: options.reason ?? null, expiresAt: expiry(durationMs) });
  }

  /** Lifts `actor`'s blacklist here at once and on every replica. */
  unblacklist(actor: string): void {
    nonEmpty('actor', actor);
    this.#bus?.unblacklist(actor);
    this.#lift('blacklist', actor);
  }

  /** Limits every publisher of `topic` to `ratePerSec` on every replica. Applied here at once. */
  limitTopic(topic: string, ratePerSec: number, options: { durationMs?: number; reason?: string } = {}): void {
    nonEmpty('topic', topic);
    assertNumberOption('ratePerSec', ratePerSec, { min: 0 });
    const durationMs = duration(options.durationMs);
    this.#bus?.setRateLimit(topic, ratePerSec, durationMs === null ? {} : { durationMs });
    this.#share({ kind: 'rate_limit_topic', target: '*', subject: topic, ratePerSec, topic, reason: options.reason ?? null, expiresAt: expiry(durationMs) });
  }

  /** Limits one actor (on `topic`, default every topic) to `ratePerSec` on every replica. Applied here at once. */
  limitActor(actor: string, ratePerSec: number, options: { topic?: string; durationMs?: number; reason?: string } = {}): void {
    nonEmpty('actor', actor);
    assertNumberOption('ratePerSec', ratePerSec, { min: 0 });
    const durationMs = duration(options.durationMs);
    const topic = options.topic ?? '**';
    this.#bus?.limitActor(actor, ratePerSec, { topic, ...(durationMs === null ? {} : { durationMs }) });
    this.#share({ kind: 'rate_limit_actor', target: '*', subject: actor, ratePerSec, topic, reason: options.reason ?? null, expiresAt: expiry(durationMs) });
  }

  /**
   * Switches the guard mode of one replica (`target: <instance id>`) or of the fleet (`target: 'fleet'`, the
   * default), for `durationMs` or until cleared; `setMode('disabled', { target: 'fleet' })` is the fleet's
   * emergency disable. Resolves once the decision is stored (every replica applies it on the notification);
   * rejects with `STORE_UNAVAILABLE` when the database is away (a mode switch for others cannot wait silently).
   */
  async setMode(mode: GuardMode, options: { target?: string; durationMs?: number; reason?: string; signal?: AbortSignal } = {}): Promise<FleetDecision> {
    options.signal?.throwIfAborted();
    if (this.#closed) throw new GuardError('CLOSED', 'fleet decisions are closed');
    if (!isGuardMode(mode)) throw new GuardError('INVALID_INPUT', `mode must be one of disabled, dry_run, detect, full, got ${JSON.stringify(mode)}`, { details: { field: 'mode' } });
    const target = targetOf(options.target);
    const durationMs = duration(options.durationMs);
    const [row] = await this.#query<Row>(
      `with inserted as (
         insert into "${this.#table}" (kind, target, subject, reason, created_by, expires_at)
         values ('mode', $1, $2, $3, $4, case when $5::float8 is null then null else now() + make_interval(secs => $5::float8 / 1000) end)
         returning *
       ), notified as (select pg_notify($6, id::text) from inserted)
       select ${COLUMNS} from inserted, (select count(*) from notified) n`,
      [target, mode, options.reason ?? null, this.instanceId, durationMs, this.#table],
    );
    const decision = fromRow(row!);
    await this.#requestSync();
    return decision;
  }

  /** Removes the fleet mode for a target (`'fleet'` by default): replicas go back to their own mode. */
  async clearMode(options: { target?: string; signal?: AbortSignal } = {}): Promise<number> {
    options.signal?.throwIfAborted();
    if (this.#closed) throw new GuardError('CLOSED', 'fleet decisions are closed');
    const target = targetOf(options.target);
    const rows = await this.#query(
      `with deleted as (delete from "${this.#table}" where kind = 'mode' and target = $1 returning id), notified as (select pg_notify($2, 'lift') from deleted limit 1)
       select (select count(*) from deleted) as n, (select count(*) from notified) as m`,
      [target, this.#table],
    );
    await this.#requestSync();
    return Number((rows[0] as { n: string | number }).n);
  }

  /** The decisions in force (every replica's), newest last. Rejects with `STORE_UNAVAILABLE` when the database is away. */
  async active(options: { signal?: AbortSignal } = {}): Promise<FleetDecision[]> {
    options.signal?.throwIfAborted();
    await this.#ensureTable();
    return (await this.#query<Row>(`select ${COLUMNS} from "${this.#table}" where expires_at is null or expires_at > now() order by id`)).map(fromRow);
  }

  #share(decision: Pending): void {
    if (this.#closed) return;
    this.#pending.push(decision);
    if (this.#pending.length > this.#maxPending) {
      const dropped = this.#pending.shift()!;
      this.#logger.warn({ kind: dropped.kind, subject: dropped.subject }, 'fleet decisions: too many decisions wait for the database; the oldest stays local');
    }
    void this.#requestSync();
  }

  #lift(kind: FleetDecisionKind, subject: string): void {
    if (this.#closed) return;
    this.#pending = this.#pending.filter((p) => !(p.kind === kind && p.subject === subject));
    const work = this.#query(
      `with deleted as (delete from "${this.#table}" where kind = $1 and subject = $2 returning id) select pg_notify($3, 'lift') from deleted limit 1`,
      [kind, subject, this.#table],
    )
      .then(() => this.#requestSync())
      .catch((error: unknown) => this.#logger.warn({ err: error, kind, subject }, 'fleet decisions: lifting a decision failed; other replicas keep it until it expires'));
    this.#track(work);
  }

  /** Flushes pending decisions, then reconciles the local bus and mode with the table; coalesces calls. */
  #requestSync(): Promise<void> {
    if (this.#closed) return Promise.resolve();
    if (this.#sync) {
      this.#syncAgain = true;
      return this.#sync;
    }
    const run = (async () => {
      do {
        this.#syncAgain = false;
        await this.#syncOnce();
      } while (this.#syncAgain && !this.#closed);
    })().finally(() => {
      this.#sync = undefined;
    });
    this.#sync = run;
    this.#track(run);
    return run;
  }

  async #syncOnce(): Promise<void> {
    try {
      await this.#ensureTable();
      while (this.#pending.length > 0 && !this.#closed) {
        const p = this.#pending[0]!;
        const remainingMs = p.expiresAt === null ? null : p.expiresAt - Date.now();
        if (remainingMs === null || remainingMs > 0) {
          await this.#query(
            `with inserted as (
               insert into "${this.#table}" (kind, target, subject, rate, topic, reason, created_by, expires_at)
               values ($1, $2, $3, $4, $5, $6, $7, case when $8::float8 is null then null else now() + make_interval(secs => $8::float8 / 1000) end)
               returning id
             ) select pg_notify($9, id::text) from inserted`,
            [p.kind, p.target, p.subject, p.ratePerSec, p.topic, p.reason, this.instanceId, remainingMs, this.#table],
          );
        }
        this.#pending.shift();
          }
      const rows = await this.#query<Row>(`select ${COLUMNS} from "${this.#table}" where expires_at is null or expires_at > now() order by id`);
      if (this.#reachable === false) this.#logger.info({}, 'fleet decisions: database back; decisions shared and re-read');
      this.#reachable = true;
      this.#reconcile(rows.map(fromRowWithRemaining));
      // Expired rows are noise: the replica that notices removes them.
      await this.#query(`delete from "${this.#table}" where expires_at < now() - interval '1 hour'`);
    } catch (error) {
      if (this.#reachable !== false) {
        this.#logger.warn({ err: error, pending: this.#pending.length }, 'fleet decisions: database unreachable; decisions apply to this replica only until it is back');
      }
      this.#reachable = false;
    }
  }

  #reconcile(active: Array<{ decision: FleetDecision; remainingMs: number | null }>): void {
    const seen = new Set<number>();
    let mode: { decision: FleetDecision; remainingMs: number | null } | undefined;
    for (const entry of active) {
      const { decision, remainingMs } = entry;
      seen.add(decision.id);
      if (decision.kind === 'mode') {
        // The newest mode aimed at this replica or at the fleet wins (a later fleet-wide disable overrides all).
        if ((decision.target === '*' || decision.target === this.instanceId) && (!mode || decision.id > mode.decision.id)) mode = entry;
        continue;
      }
      if (this.#applied.has(decision.id)) continue;
      this.#applied.set(decision.id, decision);
      this.#apply(decision, remainingMs);
      if (decision.createdBy !== this.instanceId) this.#appliedTotal.inc({ kind: decision.kind });
    }
    for (const [id, decision] of this.#applied) {
      if (seen.has(id)) continue;
      this.#applied.delete(id);
      // Lifted elsewhere (an expired one has expired on the bus by itself).
      if (decision.expiresAt === null || decision.expiresAt > Date.now()) this.#revert(decision);
    }
    this.#setMode(mode);
  }

  #apply(decision: FleetDecision, remainingMs: number | null): void {
    const bus = this.#bus;
    if (!bus) return;
    const durationMs = remainingMs === null ? {} : { durationMs: Math.max(1, remainingMs) };
    try {
      if (decision.kind === 'blacklist') bus.blacklist(decision.subject, durationMs);
      else if (decision.kind === 'rate_limit_topic') bus.setRateLimit(decision.subject, decision.ratePerSec ?? 0, durationMs);
      else if (decision.kind === 'rate_limit_actor') bus.limitActor(decision.subject, decision.ratePerSec ?? 0, { topic: decision.topic ?? '**', ...durationMs });
    } catch (error) {
      this.#logger.error({ err: error, decision }, 'fleet decisions: applying a decision to the bus failed');
    }
  }

  #revert(decision: FleetDecision): void {
    const bus = this.#bus;
    if (!bus) return;
    try {
      if (decision.kind === 'blacklist') bus.unblacklist(decision.subject);
      else if (decision.kind === 'rate_limit_topic') bus.clearRateLimit(decision.subject);
      else if (decision.kind === 'rate_limit_actor') bus.clearActorLimit(decision.subject, decision.topic ?? '**');
    } catch (error) {
      this.#logger.error({ err: error, decision }, 'fleet decisions: lifting a decision on the bus failed');
    }
  }

  #setMode(entry: { decision: FleetDecision; remainingMs: number | null } | undefined): void {
    clearTimeout(this.#modeTimer);
    this.#modeTimer = undefined;
    const before = this.#mode;
    this.#mode = entry?.decision;
    if (entry && entry.remainingMs !== null) {
      // Re-read at expiry, so the replica leaves the fleet mode on time even without a notification.
      this.#modeTimer = setTimeout(() => void this.#requestSync(), Math.min(Math.max(1, entry.remainingMs), 2 ** 31 - 1));
      this.#modeTimer.unref();
    }
    if (before?.id === this.#mode?.id) return;
    this.#logger.info({ mode: this.#mode?.subject ?? null, target: this.#mode?.target ?? null, by: this.#mode?.createdBy ?? null }, 'fleet mode changed');
    try {
      this.#onMode?.(this.#mode?.subject as GuardMode | undefined, this.#mode);
    } catch (error) {
      this.#logger.error({ err: error }, 'fleet decisions: onMode threw');
    }
  }

  #ensureTable(): Promise<void> {
    // Serialized: concurrent `create table if not exists` races on Postgres's catalog.
    this.#migrated ??= this.#session((client) =>
      migrateUnderLock(client, `guard_fleet_schema:${this.#table}`, [
        `create table if not exists "${this.#table}" (
          id bigserial primary key, kind text not null, target text not null, subject text not null,
          rate double precision, topic text, reason text, created_by text not null,
          created_at timestamptz not null default now(), expires_at timestamptz)`,
        `create index if not exists "${this.#table}_expires_idx" on "${this.#table}" (expires_at)`,
      ]),
    ).catch((error: unknown) => {
      this.#migrated = undefined;
      throw error;
    });
    return this.#migrated;
  }

  async #query<R = Record<string, unknown>>(text: string, values: readonly unknown[] = []): Promise<R[]> {
    await this.#ensureTable();
    return this.#session(async (client) => ((await client.query(text, values)) as { rows: R[] }).rows);
  }

  #session<T>(fn: (client: GuardedPgClient) => Promise<T>): Promise<T> {
    return withPgClient(this.#pool, fn, { mapError: (error, phase) => storeError(error, `fleet decisions: ${phase === 'connect' ? 'database unreachable' : 'query failed'}`) });
  }

  #track(promise: Promise<unknown>): void {
    this.#work.add(promise);
    void promise.finally(() => this.#work.delete(promise));
  }

  /** Stops listening; waits for work in flight. Decisions still pending stay local. Idempotent. */
  close(): Promise<void> {
    this.#closing ??= (async () => {
      this.#closed = true;
      this.#closeSignal.abort();
      clearTimeout(this.#modeTimer);
      await this.#listener.close();
      await Promise.allSettled([...this.#work]);
      this.#pool.detach();
    })();
    return this.#closing;
  }

  [Symbol.asyncDispose](): Promise<void> {
    return this.close();
  }
}

const COLUMNS = `id, kind, target, subject, rate, topic, reason, created_by,
  case when expires_at is null then null else extract(epoch from expires_at - now()) * 1000 end as remaining_ms`;

function fromRowWithRemaining(r: Row): { decision: FleetDecision; remainingMs: number | null } {
  return { decision: fromRow(r), remainingMs: r.remaining_ms === null ? null : Number(r.remaining_ms) };
}

function fromRow(r: Row): FleetDecision {
  const remaining = r.remaining_ms === null ? null : Number(r.remaining_ms);
  return {
    id: Number(r.id),
    kind: r.kind,
    target: r.target,
    subject: r.subject,
    ...(r.rate === null ? {} : { ratePerSec: Number(r.rate) }),
    ...(r.topic === null ? {} : { topic: r.topic }),
    ...(r.reason === null ? {} : { reason: r.reason }),
    createdBy: r.created_by,
    // Expiry on this host's clock, from the database's remaining time.
    expiresAt: remaining === null ? null : Date.now() + remaining,
  };
}

function nonEmpty(field: string, value: unknown): void {
  if (typeof value !== 'string' || value === '' || value.length > 256) {
    throw new GuardError('INVALID_INPUT', `${field} must be a non-empty string of at most 256 characters`, { details: { field } });
  }
}

function duration(durationMs: number | undefined): number | null {
  if (durationMs === undefined || durationMs === Infinity) return null;
  assertNumberOption('durationMs', durationMs, { min: 1, max: MAX_DURATION_MS });
  return durationMs;
}

function expiry(durationMs: number | null): number | null {
  return durationMs === null ? null : Date.now() + durationMs;
}

function targetOf(target: string | undefined): string {
  if (target === undefined || target === 'fleet' || target === '*') return '*';
  nonEmpty('target', target);
  return target;
}
