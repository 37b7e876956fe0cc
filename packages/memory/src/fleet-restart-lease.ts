import { hostname } from 'node:os';
import type { GuardedPgClient, GuardedPgPool, Logger, PgPoolLike, PgRowsQuery, PgTimeouts } from '@guard/core';
import { assertNumberOption, GuardError, guardPgPool, inPgTransaction, isPgUnavailableError, migrateUnderLock, resolvePgTimeouts, silentLogger, withPgClient } from '@guard/core';
import type { RestartReason } from './restart-budget.js';

declare module '@guard/core' {
  interface GuardErrorCodes {
    /** The fleet restart lease's database cannot be reached (transient). */
    STORE_UNAVAILABLE: true;
    /** The fleet restart lease's database failed otherwise. */
    STORE_ERROR: true;
  }
}

/**
 * What a {@link RestartGate} answered: a slot (a lease that frees itself at its deadline), or how long to wait.
 *
 * @example
 * const decision = await gate.acquire({ reason: 'predicted_breach', force: false });
 * if (!decision.granted) console.log('waiting for', decision.holders, decision.retryAfterMs);
 */
export type RestartGateDecision =
  | {
      readonly granted: true;
      readonly leaseId?: string;
      /** Granted over the budget (a forced restart: RSS past the hard margin, or a manual one). */
      readonly forced?: boolean;
      /** The gate could not be asked (database away): granted on this replica's own budget only. */
      readonly degraded?: boolean;
    }
  | {
      readonly granted: false;
      /** `max_unavailable`: too many replicas restart now; `window`: the fleet used its restarts of this window. */
      readonly blockedBy: 'max_unavailable' | 'window';
      readonly retryAfterMs: number;
      /** Replicas holding a restart slot now. */
      readonly holders: readonly string[];
    };

/**
 * Decides whether this replica may restart now, fleet-wide. The memory guardrail asks it before every restart
 * (`MemoryGuardrailOptions.restartGate`).
 *
 * @example
 * const guardrail = new MemoryGuardrail({ autoRestart: true, restartGate: new PostgresRestartLease({ pool }) });
 */
export interface RestartGate {
  /** Asks for a restart slot. `force` takes one even over the budget (recorded, so it counts for the others). */
  acquire(request: { readonly reason: RestartReason; readonly force: boolean }, options?: { signal?: AbortSignal }): Promise<RestartGateDecision>;
  /** Gives a slot back (the restart was not started after all, or this replica is back up). */
  release(leaseId: string): Promise<void>;
  close?(): Promise<void>;
}

/**
 * Options shared by the restart gates.
 *
 * @example
 * const options: RestartGateOptions = { maxUnavailable: '25%', fleetSize: () => fleet.size, maxPerWindow: 5, windowMs: 600_000 };
 */
export interface RestartGateOptions {
  /** Replicas that may restart at the same time: a count, or a percentage of `fleetSize` (at least 1). Default 1. */
  readonly maxUnavailable?: number | `${number}%`;
  /** The fleet's size now (e.g. the membership list's length); required for a percentage. */
  readonly fleetSize?: () => number | Promise<number>;
  /** Restarts allowed fleet-wide per `windowMs` (forced ones count too). Default 10. */
  readonly maxPerWindow?: number;
  /** Default 600 000 (10 minutes). */
  readonly windowMs?: number;
  /** A slot frees itself this long after it was taken, even if its holder never comes back. Default 120 000. */
  readonly leaseMs?: number;
  /** This replica's stable name (kept across its restarts, e.g. the pod name). Default `GUARD_INSTANCE_NAME`, else the host name. */
  readonly holder?: string;
}

/**
 * Options for {@link PostgresRestartLease}.
 *
 * @example
 * new PostgresRestartLease({ pool, maxUnavailable: 1, maxPerWindow: 3, windowMs: 600_000 });
 */
export interface PostgresRestartLeaseOptions extends RestartGateOptions {
  /** The fleet's Postgres (a pg `Pool`; not closed here). */
  readonly pool: PgPoolLike;
  /** Default `guard_fleet_restarts`. */
  readonly table?: string;
  readonly timeouts?: PgTimeouts;
  readonly logger?: Logger;
}

const IDENTIFIER = /^[a-z_][a-z0-9_]{0,62}$/;

interface Resolved {
  readonly maxUnavailable: number | { readonly percent: number };
  readonly fleetSize: (() => number | Promise<number>) | undefined;
  readonly maxPerWindow: number;
  readonly windowMs: number;
  readonly leaseMs: number;
  readonly holder: string;
}

function resolveGateOptions(options: RestartGateOptions): Resolved {
  const raw = options.maxUnavailable ?? 1;
  let maxUnavailable: Resolved['maxUnavailable'];
  if (typeof raw === 'string') {
    const match = /^(\d+(?:\.\d+)?)%$/.exec(raw);
    const percent = match ? Number(match[1]) : NaN;
    if (!(percent > 0 && percent <= 100)) throw new GuardError('INVALID_OPTION', `maxUnavailable must be a count >= 1 or a percentage like "25%", got ${JSON.stringify(raw)}`, { details: { field: 'maxUnavailable' } });
    if (typeof options.fleetSize !== 'function') throw new GuardError('INVALID_OPTION', 'a percentage maxUnavailable needs fleetSize', { details: { field: 'fleetSize' } });
    maxUnavailable = { percent };
  } else {
    assertNumberOption('maxUnavailable', raw, { min: 1, integer: true });
    maxUnavailable = raw;
  }
  const maxPerWindow = options.maxPerWindow ?? 10;
  const windowMs = options.windowMs ?? 600_000;
  const leaseMs = options.leaseMs ?? 120_000;
  assertNumberOption('maxPerWindow', maxPerWindow, { min: 1, integer: true });
  assertNumberOption('windowMs', windowMs, { min: 1, max: 30 * 86_400_000 });
  assertNumberOption('leaseMs', leaseMs, { min: 1, max: 86_400_000 });
  const holder = options.holder ?? process.env.GUARD_INSTANCE_NAME ?? hostname();
  if (typeof holder !== 'string' || holder === '' || holder.length > 200) throw new GuardError('INVALID_OPTION', 'holder must be a non-empty string of at most 200 characters', { details: { field: 'holder' } });
  return { maxUnavailable, fleetSize: options.fleetSize, maxPerWindow, windowMs, leaseMs, holder };
}

async function limitOf(resolved: Resolved): Promise<number> {
  if (typeof resolved.maxUnavailable === 'number') return resolved.maxUnavailable;
  const size = Number(await resolved.fleetSize!());
  // Like Kubernetes' maxUnavailable percentages, rounded down, but never 0: the fleet must be able to heal.
  return Math.max(1, Math.floor(((Number.isFinite(size) ? size : 1) * resolved.maxUnavailable.percent) / 100));
}

/**
 * The fleet restart budget on Postgres: a lease row per restart, taken under an advisory lock, so at most
 * `maxUnavailable` replicas restart at the same time and at most `maxPerWindow` per `windowMs` fleet-wide. A lease
 * frees itself at its deadline (`leaseMs`, on the database clock), so a restarter that crashed or never came back
 * cannot block the fleet; a replica that is back calls {@link releaseOwn} to free its slot at once.
 * While the database is unreachable every request is granted with `degraded: true`: each replica then falls back
 * to its own restart budget (the cooldown), as without fleet mode.
 *
 * @example
 * const gate = new PostgresRestartLease({ pool, maxUnavailable: 1 });
 * await gate.releaseOwn(); // at start: this replica is back from its restart
 * const guardrail = new MemoryGuardrail({ autoRestart: true, restartGate: gate });
 */
export class PostgresRestartLease implements RestartGate, AsyncDisposable {
  readonly holder: string;
  readonly #resolved: Resolved;
  readonly #table: string;
  readonly #pool: GuardedPgPool;
  readonly #logger: Logger;
  #migrated: Promise<void> | undefined;
  #closed = false;

  constructor(options: PostgresRestartLeaseOptions) {
    if (!options?.pool || typeof options.pool.connect !== 'function') throw new GuardError('INVALID_OPTION', 'pool (a pg Pool) is required', { details: { field: 'pool' } });
    const table = options.table ?? 'guard_fleet_restarts';
    if (!IDENTIFIER.test(table)) throw new GuardError('INVALID_OPTION', `table must be a plain SQL identifier, got ${JSON.stringify(table)}`, { details: { field: 'table' } });
    this.#resolved = resolveGateOptions(options);
    this.holder = this.#resolved.holder;
    this.#table = table;
    this.#logger = options.logger ?? silentLogger;
    this.#pool = guardPgPool(options.pool, { timeouts: options.timeouts ?? resolvePgTimeouts(), logger: this.#logger, name: 'fleet restart lease (postgres)' });
  }

  async acquire(request: { readonly reason: RestartReason; readonly force: boolean }, options: { signal?: AbortSignal } = {}): Promise<RestartGateDecision> {
    options.signal?.throwIfAborted();
    if (this.#closed) throw new GuardError('CLOSED', 'restart lease is closed');
    let limit: number;
    try {
      limit = await limitOf(this.#resolved);
    } catch (error) {
      this.#logger.warn({ err: error }, 'fleet restart lease: fleet size unknown; using maxUnavailable 1');
      limit = 1;
    }
    const { holder, maxPerWindow, windowMs, leaseMs } = this.#resolved;
    try {
      return await this.#transaction(async (query) => {
        await query('select pg_advisory_xact_lock(hashtextextended($1, 0))', [`guard_fleet_restarts:${this.#table}`]);
        const [state] = await query<StateRow>(
          `select
             count(*) filter (where released_at is null and deadline > now()) as active,
             count(*) filter (where acquired_at > now() - make_interval(secs => $1::float8 / 1000)) as recent,
             coalesce(array_agg(holder order by acquired_at) filter (where released_at is null and deadline > now()), '{}') as holders,
             max(id) filter (where holder = $2 and released_at is null and deadline > now()) as own,
             extract(epoch from min(deadline) filter (where released_at is null and deadline > now()) - now()) * 1000 as next_free_ms,
             extract(epoch from min(acquired_at) filter (where acquired_at > now() - make_interval(secs => $1::float8 / 1000))
               + make_interval(secs => $1::float8 / 1000) - now()) * 1000 as window_free_ms
           from "${this.#table}"`,
          [windowMs, holder],
        );
        const active = Number(state!.active);
        const recent = Number(state!.recent);
        const holders = state!.holders ?? [];
        // Asking again while holding a slot (a retry after a failed restart) keeps the same slot.
        if (state!.own !== null) return { granted: true, leaseId: String(state!.own) } as const;
        const blockedBy = active >= limit ? 'max_unavailable' : recent >= maxPerWindow ? 'window' : undefined;
        if (blockedBy && !request.force) {
          const retryAfterMs = Math.max(1, Math.ceil(Number(blockedBy === 'max_unavailable' ? state!.next_free_ms : state!.window_free_ms) || 1_000));
          return { granted: false, blockedBy, retryAfterMs, holders } as const;
        }
        const [row] = await query<{ id: string }>(
          `insert into "${this.#table}" (holder, reason, forced, acquired_at, deadline) values ($1, $2, $3, now(), now() + make_interval(secs => $4::float8 / 1000)) returning id`,
          [holder, request.reason, blockedBy !== undefined, leaseMs],
        );
        await query(`delete from "${this.#table}" where acquired_at < now() - make_interval(secs => $1::float8 / 1000) - interval '1 day'`, [windowMs]);
        return { granted: true, leaseId: row!.id, ...(blockedBy ? { forced: true } : {}) } as const;
      });
    } catch (error) {
      if (!isPgUnavailableError(error) && !(error instanceof GuardError && error.code === 'STORE_UNAVAILABLE')) throw error;
      this.#logger.warn({ err: error, holder }, 'fleet restart lease: database unreachable; this replica restarts on its own budget');
      return { granted: true, degraded: true };
    }
  }

  async release(leaseId: string): Promise<void> {
    if (!/^\d{1,18}$/.test(leaseId)) return;
    await this.#transaction((query) => query(`update "${this.#table}" set released_at = now() where id = $1 and released_at is null`, [leaseId]));
  }

  /** Frees this replica's slots (call once it is back up and ready after a restart). Resolves with how many. */
  async releaseOwn(): Promise<number> {
    const rows = await this.#transaction((query) =>
      query<{ id: string }>(`update "${this.#table}" set released_at = now() where holder = $1 and released_at is null returning id`, [this.holder]),
    );
    return rows.length;
  }

  /** The slots held now, fleet-wide. */
  async holders(): Promise<Array<{ holder: string; reason: string; forced: boolean; acquiredAt: number; deadlineInMs: number }>> {
    const rows = await this.#transaction((query) =>
      query<{ holder: string; reason: string; forced: boolean; acquired: string; left_ms: string }>(
        `select holder, reason, forced, extract(epoch from acquired_at) * 1000 as acquired, extract(epoch from deadline - now()) * 1000 as left_ms
         from "${this.#table}" where released_at is null and deadline > now() order by acquired_at`,
      ),
    );
    return rows.map((r) => ({ holder: r.holder, reason: r.reason, forced: r.forced, acquiredAt: Math.round(Number(r.acquired)), deadlineInMs: Math.round(Number(r.left_ms)) }));
  }

  #ensureTable(client: GuardedPgClient): Promise<void> {
    this.#migrated ??= migrateUnderLock(client, `guard_fleet_schema:${this.#table}`, [
      `create table if not exists "${this.#table}" (
        id bigserial primary key, holder text not null, reason text not null, forced boolean not null default false,
        acquired_at timestamptz not null, deadline timestamptz not null, released_at timestamptz)`,
    ]).catch((error: unknown) => {
      this.#migrated = undefined;
      throw error;
    });
    return this.#migrated;
  }

  async #transaction<T>(fn: (query: PgRowsQuery) => Promise<T>): Promise<T> {
    if (this.#closed) throw new GuardError('CLOSED', 'restart lease is closed');
    return withPgClient(
      this.#pool,
      async (client) => {
        await this.#ensureTable(client);
        return inPgTransaction(client, fn);
      },
      { mapError: (error, phase) => storeError(error, `fleet restart lease: ${phase === 'connect' ? 'database unreachable' : 'query failed'}`) },
    );
  }

  /** Idempotent; the pool stays the caller's. */
  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    this.#pool.detach();
  }

  [Symbol.asyncDispose](): Promise<void> {
    return this.close();
  }
}

interface StateRow {
  active: string | number;
  recent: string | number;
  holders: string[] | null;
  own: string | null;
  next_free_ms: string | number | null;
  window_free_ms: string | number | null;
}

function storeError(error: unknown, what: string): GuardError {
  if (error instanceof GuardError && error.code !== 'TIMEOUT') return error;
  return new GuardError(isPgUnavailableError(error) ? 'STORE_UNAVAILABLE' : 'STORE_ERROR', `${what}: ${(error as Error)?.message ?? String(error)}`, { cause: error });
}

/**
 * The in-process {@link RestartGate}: the same rules for guardrails sharing one process (tests, or several
 * workers under one supervisor that shares this object).
 *
 * @example
 * const gate = createLocalRestartGate({ maxUnavailable: 1, leaseMs: 60_000 });
 */
export function createLocalRestartGate(options: RestartGateOptions & { now?: () => number } = {}): RestartGate & { releaseOwn(holder?: string): number } {
  const resolved = resolveGateOptions(options);
  const now = options.now ?? Date.now;
  let next = 1;
  const leases: Array<{ id: string; holder: string; acquiredAt: number; deadline: number; released: boolean }> = [];
  return {
    async acquire(request, callOptions = {}) {
      callOptions.signal?.throwIfAborted();
      const limit = await limitOf(resolved);
      const t = now();
      const active = leases.filter((l) => !l.released && l.deadline > t);
      const recent = leases.filter((l) => l.acquiredAt > t - resolved.windowMs);
      const blockedBy = active.length >= limit ? 'max_unavailable' : recent.length >= resolved.maxPerWindow ? 'window' : undefined;
      if (blockedBy && !request.force) {
        const retryAfterMs = blockedBy === 'max_unavailable' ? Math.min(...active.map((l) => l.deadline)) - t : Math.min(...recent.map((l) => l.acquiredAt)) + resolved.windowMs - t;
        return { granted: false, blockedBy, retryAfterMs: Math.max(1, retryAfterMs), holders: active.map((l) => l.holder) };
      }
      const lease = { id: String(next++), holder: resolved.holder, acquiredAt: t, deadline: t + resolved.leaseMs, released: false };
      leases.push(lease);
      // Entries older than a window and released (or past their deadline) no longer matter.
      while (leases.length > 0 && leases[0]!.acquiredAt < t - resolved.windowMs && (leases[0]!.released || leases[0]!.deadline <= t)) leases.shift();
      return { granted: true, leaseId: lease.id, ...(blockedBy ? { forced: true } : {}) };
    },
    async release(leaseId) {
      const lease = leases.find((l) => l.id === leaseId);
      if (lease) lease.released = true;
    },
    releaseOwn(holder = resolved.holder) {
      let n = 0;
      for (const l of leases) {
        if (l.holder !== holder || l.released) continue;
        l.released = true;
        n++;
      }
      return n;
    },
  };
}
