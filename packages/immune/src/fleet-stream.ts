import type { Logger, MetricsOptions, PgTimeouts, Subscription } from '@guard/core';
import { GuardError, PgNotificationListener, scrapeGauge, silentLogger } from '@guard/core';
import { IMMUNE_METRICS_PREFIX, immuneCounter } from './metrics.js';
import { fromRow, type EventRow } from './event-row.js';
import type { ImmuneService, ImmuneStreamEnvelope } from './immune-service.js';
import { toStreamEnvelope } from './immune-service.js';
import type { FleetPoolLike } from './fleet-db.js';
import { FleetDb, SQL_IDENTIFIER } from './fleet-db.js';

/**
 * Options for {@link FleetEventStream}.
 *
 * @example
 * new FleetEventStream({ service, pool, instanceId: membership.instanceId, table: 'immune_events' });
 */
export interface FleetEventStreamOptions extends MetricsOptions {
  /** The local immune service; its store must be the fleet's Postgres table (`createPostgresStore`). */
  readonly service: ImmuneService;
  /** The fleet's Postgres (a pg `Pool`; one connection is held for LISTEN; not closed by the stream). */
  readonly pool: FleetPoolLike;
  /** The events table the Postgres store writes. Default `immune_events`. */
  readonly table?: string;
  /** NOTIFY channel. Default `guard_fleet_events`. */
  readonly channel?: string;
  /** This replica's id (notifications it sent itself are skipped). Default a random one. */
  readonly instanceId?: string;
  /** After a reconnect, events of this long before the loss are re-read (host clock skew margin). Default 5 000. */
  readonly catchUpMarginMs?: number;
  /** Ping of the LISTEN session. Default 5 000. */
  readonly pingIntervalMs?: number;
  readonly timeouts?: PgTimeouts;
  readonly logger?: Logger;
  /** Clock (epoch ms) of the catch-up window after a reconnect. Default `Date.now`. */
  readonly now?: () => number;
}

/** Ids per NOTIFY: 36-byte ids, comma-separated, stay well under Postgres's 8 000-byte payload limit. */
const IDS_PER_NOTIFY = 150;
const SEEN_CAPACITY = 20_000;
const FETCH_ATTEMPTS = 4;
const UUID_V7 = /^[0-9a-f]{8}-[0-9a-f]{4}-7[0-9a-f]{3}-[0-9a-f]{4}-[0-9a-f]{12}$/;

/**
 * The fleet-wide immune stream: every event this replica stores is announced with `NOTIFY` (the payload carries
 * only ids, so the 8 KB limit never matters), and every replica's listener reads the announced rows from the shared
 * table and emits them on its local service, so `/api/immune/stream` and the dashboard show the whole fleet.
 * Replay after an SSE reconnect (`Last-Event-ID`) already reads the shared table. When the LISTEN session is lost
 * the replica streams its own events only; on reconnect it re-reads the events it missed from the table.
 *
 * @example
 * await using stream = new FleetEventStream({ service, pool, instanceId: membership.instanceId });
 * stream.start();
 */
export class FleetEventStream implements AsyncDisposable {
  readonly instanceId: string;
  readonly channel: string;
  readonly #service: ImmuneService;
  readonly #table: string;
  readonly #db: FleetDb;
  readonly #listener: PgNotificationListener;
  readonly #logger: Logger;
  readonly #catchUpMarginMs: number;
  /** Ids emitted here already (local or remote), oldest first; bounded. */
  readonly #seen = new Set<string>();
  #outbox: string[] = [];
  #flushScheduled = false;
  #relaying = false;
  #lostAt: number | undefined;
  #pending: Set<Promise<unknown>> = new Set();
  #remoteEvents = 0;
  readonly #remoteCounter: ReturnType<typeof immuneCounter>;
  /** Aborted on close: the scrape-time gauge stops reading this stream. */
  readonly #closed$ = new AbortController();
  readonly #now: () => number;
  #reads: Promise<void> = Promise.resolve();
  #notices: Promise<void> = Promise.resolve();
  /** The subscription to the service's own events, while started. */
  #local: Subscription | undefined;
  #closed = false;
  #closing: Promise<void> | undefined;
  readonly #onLocal = (envelope: ImmuneStreamEnvelope) => {
    if (this.#relaying || this.#closed) return;
    this.#remember(envelope.payload.event_id);
    this.#outbox.push(envelope.payload.event_id);
    if (this.#flushScheduled) return;
    this.#flushScheduled = true;
    setImmediate(() => this.#flush());
  };

  constructor(options: FleetEventStreamOptions) {
    if (!options?.service || typeof options.service.on !== 'function') throw new GuardError('INVALID_OPTION', 'service (an ImmuneService) is required', { details: { field: 'service' } });
    if (!options.pool || typeof options.pool.connect !== 'function') throw new GuardError('INVALID_OPTION', 'pool (a pg Pool) is required', { details: { field: 'pool' } });
    const table = options.table ?? 'immune_events';
    if (!/^[A-Za-z_][A-Za-z0-9_]{0,39}$/.test(table)) throw new GuardError('INVALID_OPTION', `table must be a SQL identifier, got ${JSON.stringify(table)}`, { details: { field: 'table' } });
    const channel = options.channel ?? 'guard_fleet_events';
    if (!SQL_IDENTIFIER.test(channel)) throw new GuardError('INVALID_OPTION', `channel must be a plain SQL identifier, got ${JSON.stringify(channel)}`, { details: { field: 'channel' } });
    this.instanceId = options.instanceId ?? `instance-${process.pid}-${Math.random().toString(16).slice(2, 8)}`;
    if (/[\s,]/.test(this.instanceId)) throw new GuardError('INVALID_OPTION', 'instanceId must not contain spaces or commas', { details: { field: 'instanceId' } });
    this.channel = channel;
    this.#service = options.service;
    this.#table = table;
    this.#logger = options.logger ?? silentLogger;
    this.#catchUpMarginMs = options.catchUpMarginMs ?? 5_000;
    this.#db = new FleetDb(options.pool, { ...(options.timeouts ? { timeouts: options.timeouts } : {}), logger: this.#logger, name: 'fleet event stream (postgres)' });
    this.#now = options.now ?? Date.now;
    this.#remoteCounter = immuneCounter(options, { name: 'fleet_remote_events_total', help: "Events of other fleet replicas emitted on this replica's stream" });
    scrapeGauge(
      options,
      {
        name: 'fleet_stream_listening',
        help: "1 while the fleet event stream's LISTEN session is open, else 0 (this replica streams its own events only)",
        defaultPrefix: IMMUNE_METRICS_PREFIX,
        signal: this.#closed$.signal,
      },
      () => (this.connected ? 1 : 0),
    );
    this.#listener = new PgNotificationListener({
      pool: options.pool,
      channels: [channel],
      name: 'fleet event stream',
      logger: this.#logger,
      ...(options.timeouts ? { timeouts: options.timeouts } : {}),
      ...(options.pingIntervalMs === undefined ? {} : { pingIntervalMs: options.pingIntervalMs }),
      onNotification: (_channel, payload) => this.#onNotification(payload),
      onConnected: () => this.#catchUp(),
      onDisconnected: () => {
        this.#lostAt ??= this.#now();
      },
    });
  }

  /** Whether remote events are flowing in now (the LISTEN session is open). */
  get connected(): boolean {
    return this.#listener.connected;
  }

  /** Events of other replicas emitted here so far. */
  get remoteEvents(): number {
    return this.#remoteEvents;
  }

  /** Starts announcing local events and listening for remote ones. Idempotent. */
  start(): void {
    if (this.#closed) throw new GuardError('CLOSED', 'fleet event stream is closed');
    if (this.#local) return;
    this.#local = this.#service.onEventPublished(this.#onLocal);
    this.#listener.start();
  }

  #remember(id: string): void {
    this.#seen.add(id);
    if (this.#seen.size > SEEN_CAPACITY) {
      // Sets iterate in insertion order: drop the oldest tenth at once.
      let drop = SEEN_CAPACITY / 10;
      for (const old of this.#seen) {
        this.#seen.delete(old);
        if (--drop === 0) break;
      }
    }
  }

  #flush(): void {
    this.#flushScheduled = false;
    const ids = this.#outbox;
    this.#outbox = [];
    for (let i = 0; i < ids.length; i += IDS_PER_NOTIFY) {
      const payload = `${this.instanceId} ${ids.slice(i, i + IDS_PER_NOTIFY).join(',')}`;
      // One NOTIFY after another: on several pooled connections they could reach the listeners out of order.
      const sent = this.#notices.then(() => this.#db.query('select pg_notify($1, $2)', [this.channel, payload]));
      this.#notices = sent.then(
        () => {},
        () => {},
      );
      this.#track(
        sent.catch((error: unknown) => {
          // The events are stored; replicas that missed the notice still get them by Last-Event-ID replay.
          this.#logger.warn({ err: error, events: ids.length }, 'fleet event stream: NOTIFY failed; other replicas see these events on replay only');
        }),
      );
    }
  }

  #onNotification(payload: string): void {
    const space = payload.indexOf(' ');
    if (space < 0 || payload.slice(0, space) === this.instanceId) return;
    const ids = payload
      .slice(space + 1)
      .split(',')
      .filter((id) => UUID_V7.test(id) && !this.#seen.has(id));
    if (ids.length === 0) return;
    this.#fetchIds(ids, 1);
  }

  /** Reads announced rows; a failed read (a database hiccup) is tried again a few times before the events are left to replay. */
  #fetchIds(ids: string[], attempt: number): void {
    const times = ids.map(createdAtOf);
    this.#track(
      this.#fetch(`where created_at between $1 and $2 and id = any($3::text[])`, [Math.min(...times), Math.max(...times), ids]).catch((error: unknown) => {
        if (attempt >= FETCH_ATTEMPTS || this.#closed) {
          this.#logger.warn({ err: error, events: ids.length }, 'fleet event stream: reading announced events failed; they are in the table (replay by Last-Event-ID)');
          return;
        }
        const retry = setTimeout(() => this.#fetchIds(ids, attempt + 1), 500 * attempt);
        retry.unref();
      }),
    );
  }

  /** After a reconnect: what other replicas stored while the session was down. */
  #catchUp(): void {
    const lostAt = this.#lostAt;
    this.#lostAt = undefined;
    if (lostAt === undefined) return;
    this.#track(
      this.#fetch(`where created_at >= $1 order by created_at, id limit 10000`, [lostAt - this.#catchUpMarginMs]).catch((error: unknown) => {
        this.#logger.warn({ err: error }, 'fleet event stream: catching up after a reconnect failed');
      }),
    );
  }

  /** Reads run one after another, so remote events are emitted in the order they were announced. */
  #fetch(where: string, values: unknown[]): Promise<void> {
    const next = this.#reads.then(() => this.#read(where, values));
    this.#reads = next.catch(() => {});
    return next;
  }

  async #read(where: string, values: unknown[]): Promise<void> {
    if (this.#closed) return;
    const rows = await this.#db.query<EventRow>(`select id, agent_id, module, severity, type, message, meta, created_at from "${this.#table}" ${where}`, values);
    rows.sort((a, b) => Number(a.created_at) - Number(b.created_at) || (a.id < b.id ? -1 : 1));
    if (this.#closed || this.#service.closed) return;
    this.#relaying = true;
    try {
      for (const row of rows) {
        if (this.#seen.has(row.id)) continue;
        this.#remember(row.id);
        const event = fromRow(row);
        this.#remoteEvents++;
        this.#remoteCounter?.inc();
        this.#service.emit('immune.event_published', toStreamEnvelope(event, 'immune.event_published', this.#service.target));
        if (event.severity === 'CRITICAL') this.#service.emit('immune.critical_event', toStreamEnvelope(event, 'immune.critical_event', this.#service.target));
      }
    } finally {
      this.#relaying = false;
    }
  }

  #track(promise: Promise<unknown>): void {
    this.#pending.add(promise);
    void promise.finally(() => this.#pending.delete(promise));
  }

  /** Stops listening and announcing; waits for notices in flight. Idempotent. */
  close(): Promise<void> {
    this.#closing ??= (async () => {
      if (this.#outbox.length > 0) this.#flush();
      this.#closed = true;
      this.#local?.();
      await this.#listener.close();
      this.#closed$.abort();
      await Promise.allSettled([...this.#pending]);
      this.#db.detach();
    })();
    return this.#closing;
  }

  [Symbol.asyncDispose](): Promise<void> {
    return this.close();
  }
}

/** A UUIDv7 event id carries its creation time (the table's clustering key) in its first 48 bits. */
function createdAtOf(id: string): number {
  return parseInt(id.slice(0, 8) + id.slice(9, 13), 16);
}
