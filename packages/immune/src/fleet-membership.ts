import { hostname } from 'node:os';
import { randomBytes } from 'node:crypto';
import type { Logger, MetricsOptions, PgTimeouts } from '@guard/core';
import { assertNumberOption, GuardError, silentLogger } from '@guard/core';
import { immuneCounter } from './metrics.js';
import type { FleetPoolLike } from './fleet-db.js';
import { FleetDb, SQL_IDENTIFIER } from './fleet-db.js';

/**
 * One replica as the fleet table lists it.
 *
 * @example
 * const alive = (await membership.list()).filter((i) => i.alive);
 */
export interface FleetInstance {
  readonly id: string;
  readonly host: string;
  readonly pid: number;
  readonly version: string;
  /** Guard mode (`disabled | dry_run | detect | full`) as last reported. */
  readonly mode: string;
  /** Health as last reported (e.g. the memory status `healthy | warning | critical`, or `starting`). */
  readonly status: string;
  /** Epoch ms. */
  readonly startedAt: number;
  /** Last heartbeat, epoch ms (database clock). */
  readonly lastSeenAt: number;
  /** Milliseconds since the last heartbeat (database clock, so host clock skew does not matter). */
  readonly ageMs: number;
}

/**
 * Options for {@link FleetMembership}.
 *
 * @example
 * new FleetMembership({ pool, version: '1.4.0', mode: () => guard.mode, status: () => guardrail.status });
 */
export interface FleetMembershipOptions extends MetricsOptions {
  /** The fleet's Postgres (a pg `Pool`; not closed by the membership). */
  readonly pool: FleetPoolLike;
  /** This replica's id. Default `<hostname>-<pid>-<random>`: unique per process. */
  readonly instanceId?: string;
  /** Default `os.hostname()`. */
  readonly host?: string;
  /** The service's version. Default `GUARD_SERVICE_VERSION`, `npm_package_version`, else `0.0.0`. */
  readonly version?: string;
  /** Current guard mode, read at each heartbeat. Default `() => 'full'`. */
  readonly mode?: () => string;
  /** Current status, read at each heartbeat. Default `() => 'running'`. */
  readonly status?: () => string;
  /** Default 5 000. */
  readonly heartbeatMs?: number;
  /** A replica without a heartbeat for this long has left the fleet list. Default 3 x `heartbeatMs`. */
  readonly staleAfterMs?: number;
  /** Rows of replicas gone this long are deleted. Default 1 hour. */
  readonly forgetAfterMs?: number;
  /** Default `guard_fleet_instances`. */
  readonly table?: string;
  readonly timeouts?: PgTimeouts;
  readonly logger?: Logger;
  /** Clock (epoch ms) of `startedAt` and of the local instance's `lastSeenAt`. Default `Date.now`. */
  readonly now?: () => number;
}

/**
 * Fleet membership on the Postgres the fleet shares: each replica registers (id, host, pid, version, mode,
 * status, started) and heartbeats into one table; a replica that stops heartbeating (SIGKILL, partition) ages out
 * of {@link list} after `staleAfterMs`, measured on the database clock. While the database is unreachable the
 * heartbeat fails quietly (logged once per outage) and the replica re-registers when it is back.
 *
 * @example
 * await using membership = new FleetMembership({ pool, version: '1.4.0' });
 * await membership.start();
 * console.log(await membership.list());
 */
export class FleetMembership implements AsyncDisposable {
  readonly instanceId: string;
  readonly host: string;
  readonly version: string;
  readonly startedAt: number;
  readonly heartbeatMs: number;
  readonly staleAfterMs: number;
  readonly #forgetAfterMs: number;
  readonly #table: string;
  readonly #db: FleetDb;
  readonly #mode: () => string;
  readonly #status: () => string;
  readonly #logger: Logger;
  readonly #heartbeatFailures: ReturnType<typeof immuneCounter>;
  readonly #now: () => number;
  #timer: NodeJS.Timeout | undefined;
  #beating: Promise<boolean> | undefined;
  #queued: Promise<boolean> | undefined;
  #migrated: Promise<void> | undefined;
  #reachable: boolean | undefined;
  #closed = false;
  #closing: Promise<void> | undefined;

  constructor(options: FleetMembershipOptions) {
    if (!options?.pool || typeof options.pool.connect !== 'function') throw new GuardError('INVALID_OPTION', 'pool (a pg Pool) is required', { details: { field: 'pool' } });
    const table = options.table ?? 'guard_fleet_instances';
    if (!SQL_IDENTIFIER.test(table)) throw new GuardError('INVALID_OPTION', `table must be a plain SQL identifier, got ${JSON.stringify(table)}`, { details: { field: 'table' } });
    this.heartbeatMs = options.heartbeatMs ?? 5_000;
    assertNumberOption('heartbeatMs', this.heartbeatMs, { min: 10, max: 2 ** 31 - 1 });
    this.staleAfterMs = options.staleAfterMs ?? this.heartbeatMs * 3;
    assertNumberOption('staleAfterMs', this.staleAfterMs, { min: this.heartbeatMs });
    this.#forgetAfterMs = options.forgetAfterMs ?? 3_600_000;
    assertNumberOption('forgetAfterMs', this.#forgetAfterMs, { min: this.staleAfterMs });
    this.host = options.host ?? hostname();
    this.instanceId = options.instanceId ?? `${this.host}-${process.pid}-${randomBytes(3).toString('hex')}`;
    if (typeof this.instanceId !== 'string' || this.instanceId === '' || this.instanceId.length > 200) {
      throw new GuardError('INVALID_OPTION', 'instanceId must be a non-empty string of at most 200 characters', { details: { field: 'instanceId' } });
    }
    this.version = options.version ?? process.env.GUARD_SERVICE_VERSION ?? process.env.npm_package_version ?? '0.0.0';
    this.#now = options.now ?? Date.now;
    this.startedAt = this.#now();
    this.#table = table;
    this.#mode = options.mode ?? (() => 'full');
    this.#status = options.status ?? (() => 'running');
    this.#logger = options.logger ?? silentLogger;
    this.#heartbeatFailures = immuneCounter(options, {
      name: 'fleet_heartbeat_failures_total',
      help: 'Fleet membership heartbeats that did not reach the database (the replica runs on its own meanwhile)',
    });
    this.#db = new FleetDb(options.pool, { ...(options.timeouts ? { timeouts: options.timeouts } : {}), logger: this.#logger, name: 'fleet membership (postgres)' });
  }

  /** Whether the last heartbeat reached the database (undefined before the first). */
  get reachable(): boolean | undefined {
    return this.#reachable;
  }

  /** Creates the table (under an advisory lock), registers and starts heartbeating. Never rejects: an unreachable database is retried at each heartbeat. */
  async start(): Promise<void> {
    if (this.#closed) throw new GuardError('CLOSED', 'fleet membership is closed');
    if (!this.#timer) {
      this.#timer = setInterval(() => void this.heartbeat(), this.heartbeatMs);
      this.#timer.unref();
    }
    await this.heartbeat();
  }

  #ensureTable(): Promise<void> {
    this.#migrated ??= this.#db
      .migrate(`guard_fleet_schema:${this.#table}`, [
        `create table if not exists "${this.#table}" (
          id text primary key, host text not null, pid integer not null, version text not null, mode text not null,
          status text not null, started_at timestamptz not null, last_seen_at timestamptz not null)`,
        `create index if not exists "${this.#table}_seen_idx" on "${this.#table}" (last_seen_at)`,
      ])
      .catch((error: unknown) => {
        this.#migrated = undefined;
        throw error;
      });
    return this.#migrated;
  }

  /** Writes this replica's row now. Resolves false (and logs once per outage) when the database is unreachable. */
  heartbeat(): Promise<boolean> {
    if (this.#closed) return Promise.resolve(false);
    // A call during a beat gets a fresh one after it (it may carry a new mode), never more than one queued.
    if (this.#beating) {
      this.#queued ??= this.#beating.then(() => {
        this.#queued = undefined;
        return this.heartbeat();
      });
      return this.#queued;
    }
    const beat = this.#beat().finally(() => {
      if (this.#beating === beat) this.#beating = undefined;
    });
    this.#beating = beat;
    return beat;
  }

  async #beat(): Promise<boolean> {
    try {
      await this.#ensureTable();
      await this.#db.query(
        `insert into "${this.#table}" (id, host, pid, version, mode, status, started_at, last_seen_at)
         values ($1, $2, $3, $4, $5, $6, to_timestamp($7 / 1000.0), now())
         on conflict (id) do update set mode = excluded.mode, status = excluded.status, last_seen_at = now()`,
        [this.instanceId, this.host, process.pid, this.version, safeText(this.#mode), safeText(this.#status), this.startedAt],
      );
      await this.#db.query(`delete from "${this.#table}" where last_seen_at < now() - make_interval(secs => $1)`, [this.#forgetAfterMs / 1000]);
      if (this.#reachable === false) this.#logger.info({ instanceId: this.instanceId }, 'fleet membership: database back, registered again');
      this.#reachable = true;
      return true;
    } catch (error) {
      this.#heartbeatFailures?.inc();
      if (this.#reachable !== false) this.#logger.warn({ err: error, instanceId: this.instanceId }, 'fleet membership: heartbeat failed; this replica runs on its own until the database is back');
      this.#reachable = false;
      return false;
    }
  }

  /**
   * The replicas that heartbeated within `staleAfterMs` (this one first), or every known row with `includeStale`.
   * Rejects with `STORE_UNAVAILABLE` when the database is unreachable ({@link localInstance} is the fallback).
   */
  async list(options: { includeStale?: boolean; signal?: AbortSignal } = {}): Promise<FleetInstance[]> {
    options.signal?.throwIfAborted();
    if (this.#closed) throw new GuardError('CLOSED', 'fleet membership is closed');
    await this.#ensureTable();
    const rows = await this.#db.query<Row>(
      `select id, host, pid, version, mode, status, extract(epoch from started_at) * 1000 as started,
              extract(epoch from last_seen_at) * 1000 as seen, extract(epoch from now() - last_seen_at) * 1000 as age
       from "${this.#table}" where $3::boolean or last_seen_at >= now() - make_interval(secs => $1)
       order by (id = $2) desc, started_at, id`,
      [this.staleAfterMs / 1000, this.instanceId, options.includeStale === true],
    );
    return rows.map(fromRow);
  }

  /** This replica as it would be listed (what `GET /api/fleet` answers while the database is unreachable). */
  localInstance(): FleetInstance {
    const now = this.#now();
    return {
      id: this.instanceId,
      host: this.host,
      pid: process.pid,
      version: this.version,
      mode: safeText(this.#mode),
      status: safeText(this.#status),
      startedAt: this.startedAt,
      lastSeenAt: now,
      ageMs: 0,
    };
  }

  /** Stops heartbeating and removes this replica's row (best effort), so it leaves the list at once. Idempotent. */
  close(): Promise<void> {
    this.#closing ??= (async () => {
      this.#closed = true;
      clearInterval(this.#timer);
      await this.#queued;
      await this.#beating;
      if (this.#reachable) await this.#db.query(`delete from "${this.#table}" where id = $1`, [this.instanceId]).catch(() => {});
      this.#db.detach();
    })();
    return this.#closing;
  }

  [Symbol.asyncDispose](): Promise<void> {
    return this.close();
  }
}

interface Row {
  id: string;
  host: string;
  pid: number;
  version: string;
  mode: string;
  status: string;
  started: string | number;
  seen: string | number;
  age: string | number;
}

function fromRow(r: Row): FleetInstance {
  return {
    id: r.id,
    host: r.host,
    pid: Number(r.pid),
    version: r.version,
    mode: r.mode,
    status: r.status,
    startedAt: Math.round(Number(r.started)),
    lastSeenAt: Math.round(Number(r.seen)),
    ageMs: Math.max(0, Math.round(Number(r.age))),
  };
}

function safeText(read: () => string): string {
  try {
    return String(read()).slice(0, 64);
  } catch {
    return 'unknown';
  }
}
