import type {} from './errors.js';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { hostname } from 'node:os';
import { randomBytes } from 'node:crypto';
import {
  envReader,
  GuardError,
  isGuardError,
  isGuardMode,
  pgPoolTimeoutConfig,
  problemFromError,
  readJsonBody,
  requireAdminToken,
  resolvePgTimeouts,
  sendJson,
  sendProblem,
  silentLogger,
} from '@guard/core';
import type { Env, GuardMode, HttpHandler, Logger, Problem } from '@guard/core';
import { createFleetHandler, FleetEventStream, FleetMembership, type FleetPoolLike, type ImmuneService } from '@guard/immune';
import { PostgresRestartLease, type RestartGate, type RestartGateOptions } from '@guard/memory';
import { FleetDecisions, type FleetBusLike, type FleetDecisionSink } from '@guard/playbooks';

/**
 * Options of {@link createFleet} (and `createGuard({ fleet })`).
 *
 * @example
 * createGuard({ fleet: { url: process.env.DATABASE_URL, restart: { maxUnavailable: '25%' } } });
 */
export interface FleetOptions {
  /** The fleet's Postgres. Default `GUARD_FLEET_DATABASE_URL`, else `DATABASE_URL`. Give this or `pool`. */
  readonly url?: string;
  /** A pg `Pool` of yours instead (not ended by the fleet; two of its connections stay checked out for LISTEN). */
  readonly pool?: FleetPoolLike;
  /** This replica's stable name, kept across its restarts (e.g. the pod name). Default `GUARD_INSTANCE_NAME`, else the host name. */
  readonly instanceName?: string;
  /** Version shown in the fleet list. Default `GUARD_SERVICE_VERSION`, else `npm_package_version`, else `0.0.0`. */
  readonly version?: string;
  /** Membership heartbeat. Default `GUARD_FLEET_HEARTBEAT`, else 5 s. */
  readonly heartbeatMs?: number;
  /** A replica silent this long leaves the fleet list. Default `GUARD_FLEET_STALE_AFTER`, else 3 heartbeats. */
  readonly staleAfterMs?: number;
  /**
   * The fleet restart budget of the memory guardrail, or false for none. `maxUnavailable` defaults to
   * `GUARD_FLEET_MAX_UNAVAILABLE` (`1`, or a percentage like `25%` of the replicas listed), else 1.
   */
  readonly restart?: false | RestartGateOptions;
  /** Where {@link Fleet.handler} serves. Default `/api/fleet`. */
  readonly basePath?: string;
  readonly env?: Env;
  readonly logger?: Logger;
}

/**
 * What a running replica hands to {@link Fleet.join}: the parts the fleet shares.
 *
 * @example
 * await fleet.join({ immune, messageBus, mode: { get: () => chain.mode, set: (m) => chain.setMode(m) }, status: () => memory.status });
 */
export interface FleetParts {
  /** Its events reach every replica's stream (needs the Postgres store, `immuneTable` its table). */
  readonly immune?: ImmuneService;
  readonly immuneTable?: string;
  /** Blacklists and rate limits of the fleet apply to this bus. */
  readonly messageBus?: FleetBusLike;
  /** The guard mode: read for the fleet list, set by fleet mode switches (`undefined`: back to this replica's own). */
  readonly mode?: { get(): GuardMode; set(mode: GuardMode | undefined): void };
  /** Health shown in the fleet list (e.g. the memory status). */
  readonly status?: () => string;
  /** Bearer token of the admin routes (`POST /api/fleet/mode`, `POST /api/fleet/blacklist`); none = those routes are off. */
  readonly adminToken?: string;
}

/**
 * Fleet mode for one replica: membership, the fleet-wide immune stream, shared decisions and the restart budget,
 * all on the fleet's Postgres; each falls back to this replica while the database is away.
 *
 * @example
 * const fleet = await createFleet({ url: process.env.DATABASE_URL });
 * const memory = new MemoryGuardrail({ autoRestart: true, restartGate: fleet.restartGate });
 * await fleet.join({ immune, messageBus, mode, status: () => memory.status, adminToken });
 */
export interface Fleet extends AsyncDisposable {
  /** Unique per process: `<instanceName>-<pid>-<random>`. */
  readonly instanceId: string;
  readonly instanceName: string;
  /** For `MemoryGuardrailOptions.restartGate` (undefined with `restart: false`). */
  readonly restartGate: RestartGate | undefined;
  /** For the playbook actions (`createActionRegistry({ fleet })`): decisions made here reach every replica. */
  readonly sink: FleetDecisionSink;
  readonly membership: FleetMembership | undefined;
  readonly decisions: FleetDecisions | undefined;
  readonly stream: FleetEventStream | undefined;
  /** `GET /api/fleet`, `GET /api/fleet/decisions`, admin `POST|DELETE /api/fleet/mode`, admin `POST /api/fleet/blacklist`. */
  readonly handler: HttpHandler;
  /** Starts sharing: registers, listens, applies the decisions in force (a new replica starts in the fleet's mode). */
  join(parts: FleetParts): Promise<void>;
  /**
   * Says this replica serves: the restart slot it held before its restart (same `instanceName`) frees, so the next
   * replica may restart. `createGuard` calls it when an attached server listens. Resolves with the slots freed.
   */
  markReady(): Promise<number>;
  close(): Promise<void>;
}

function settingsOf(options: FleetOptions, env: Env) {
  const read = envReader(env);
  const url = options.url ?? read.string(['GUARD_FLEET_DATABASE_URL', 'DATABASE_URL']);
  if (!options.pool && !url) throw new GuardError('INVALID_OPTION', 'fleet mode needs fleet.url, fleet.pool, GUARD_FLEET_DATABASE_URL or DATABASE_URL', { details: { field: 'fleet.url' } });
  const heartbeatMs = options.heartbeatMs ?? read.durationMs('GUARD_FLEET_HEARTBEAT', 5_000, 's', { min: 10 });
  const staleAfterMs = options.staleAfterMs ?? read.durationMs('GUARD_FLEET_STALE_AFTER', heartbeatMs * 3, 's', { min: heartbeatMs });
  const rawMax = read.string('GUARD_FLEET_MAX_UNAVAILABLE');
  let maxUnavailable: number | `${number}%` | undefined;
  if (rawMax !== undefined) {
    if (/^\d+$/.test(rawMax) && Number(rawMax) >= 1) maxUnavailable = Number(rawMax);
    else if (/^\d+(\.\d+)?%$/.test(rawMax)) maxUnavailable = rawMax as `${number}%`;
    else {
      throw new GuardError('INVALID_ENV', `GUARD_FLEET_MAX_UNAVAILABLE=${JSON.stringify(rawMax)} is invalid: expected a count >= 1 or a percentage like 25%`, {
        details: { variable: 'GUARD_FLEET_MAX_UNAVAILABLE', value: rawMax },
      });
    }
  }
  const instanceName = options.instanceName ?? read.string('GUARD_INSTANCE_NAME') ?? hostname();
  return { url, heartbeatMs, staleAfterMs, maxUnavailable, instanceName };
}

/**
 * Opens fleet mode (see {@link Fleet}): the pool and the restart lease at once, the rest on {@link Fleet.join}.
 * Never fails for an unreachable database.
 *
 * @throws GuardError `INVALID_OPTION` / `INVALID_ENV` naming the option or variable; `MISSING_PEER` without `pg`.
 * @example
 * await using fleet = await createFleet({ url: 'postgres://guard@db:5432/app' });
 */
export async function createFleet(options: FleetOptions = {}): Promise<Fleet> {
  const env = options.env ?? process.env;
  const logger = options.logger ?? silentLogger;
  const settings = settingsOf(options, env);
  const timeouts = resolvePgTimeouts({}, env);
  let pool = options.pool;
  let ownPool: { end(): Promise<void> } | undefined;
  if (!pool) {
    let pg: typeof import('pg');
    try {
      pg = (await import('pg')).default as unknown as typeof import('pg');
    } catch (error) {
      throw new GuardError('MISSING_PEER', 'fleet mode needs pg: npm i pg', { cause: error, details: { peer: 'pg' } });
    }
    // Two connections stay checked out for LISTEN (events, decisions); the rest serve heartbeats and reads.
    const own = new pg.Pool({ connectionString: settings.url, max: 5, idleTimeoutMillis: 30_000, ...pgPoolTimeoutConfig(timeouts) });
    own.on('error', () => {}); // each fleet part's guardPgPool logs and counts; this covers the gap before they attach
    pool = own as unknown as FleetPoolLike;
    ownPool = own;
  }
  const instanceId = `${settings.instanceName}-${process.pid}-${randomBytes(2).toString('hex')}`;
  const basePath = (options.basePath ?? '/api/fleet').replace(/\/+$/, '');
  if (!basePath.startsWith('/')) throw new GuardError('INVALID_OPTION', `fleet.basePath must start with /, got ${JSON.stringify(basePath)}`, { details: { field: 'fleet.basePath' } });
  let membership: FleetMembership | undefined;
  let decisions: FleetDecisions | undefined;
  let stream: FleetEventStream | undefined;
  let messageBus: FleetBusLike | undefined;
  let adminToken: string | undefined;
  let closed = false;
  const restartOptions = options.restart === false ? undefined : { ...(settings.maxUnavailable === undefined ? {} : { maxUnavailable: settings.maxUnavailable }), ...options.restart };
  const restartLease = restartOptions
    ? new PostgresRestartLease({
        pool,
        holder: settings.instanceName,
        timeouts,
        logger,
        ...restartOptions,
        // A percentage counts the replicas listed now (at least this one).
        ...(typeof restartOptions.maxUnavailable === 'string' && !restartOptions.fleetSize
          ? { fleetSize: async () => (membership ? Math.max(1, (await membership.list()).length) : 1) }
          : {}),
      })
    : undefined;

  // Playbook actions may run before join (never in practice): then they act on the bus alone.
  const sink: FleetDecisionSink = {
    blacklist: (actor, o) => (decisions ? decisions.blacklist(actor, o) : messageBus?.blacklist(actor, o?.durationMs === undefined ? {} : { durationMs: o.durationMs })),
    unblacklist: (actor) => void (decisions ? decisions.unblacklist(actor) : messageBus?.unblacklist(actor)),
    limitTopic: (topic, rate, o) => (decisions ? decisions.limitTopic(topic, rate, o) : messageBus?.setRateLimit(topic, rate, o?.durationMs === undefined ? {} : { durationMs: o.durationMs })),
    limitActor: (actor, rate, o) => void (decisions ? decisions.limitActor(actor, rate, o) : messageBus?.limitActor(actor, rate, o)),
  };

  const fleet: Fleet = {
    instanceId,
    instanceName: settings.instanceName,
    restartGate: restartLease,
    sink,
    get membership() {
      return membership;
    },
    get decisions() {
      return decisions;
    },
    get stream() {
      return stream;
    },
    handler: (req, res, next) => route(req, res, next),
    async markReady() {
      // This replica is back (from a restart, if it had one) and serves: its restart slot frees, the next may go.
      if (!restartLease || closed) return 0;
      return restartLease.releaseOwn().then(
        (released) => {
          if (released > 0) logger.info({ instanceName: settings.instanceName, released }, 'fleet: back from a restart and serving; its restart slot is free again');
          return released;
        },
        (error: unknown) => {
          logger.warn({ err: error }, 'fleet: could not free this replica’s restart slot; it frees itself at its deadline');
          return 0;
        },
      );
    },
    async join(parts) {
      if (closed) throw new GuardError('CLOSED', 'fleet is closed');
      if (membership) throw new GuardError('INVALID_OPTION', 'fleet.join was called twice', { details: { field: 'parts' } });
      messageBus = parts.messageBus;
      adminToken = parts.adminToken;
      const mode = parts.mode;
      membership = new FleetMembership({
        pool: pool!,
        instanceId,
        host: hostname(),
        ...(options.version ? { version: options.version } : {}),
        heartbeatMs: settings.heartbeatMs,
        staleAfterMs: settings.staleAfterMs,
        ...(mode ? { mode: () => mode.get() } : {}),
        ...(parts.status ? { status: parts.status } : {}),
        timeouts,
        logger,
      });
      decisions = new FleetDecisions({
        pool: pool!,
        instanceId,
        ...(parts.messageBus ? { bus: parts.messageBus } : {}),
        timeouts,
        logger,
        onMode: (wanted, decision) => {
          if (!mode) return;
          logger.warn({ mode: wanted ?? 'own', by: decision?.createdBy, target: decision?.target, reason: decision?.reason }, 'fleet: mode switched by the fleet');
          mode.set(wanted);
          // The list shows the new mode at once, not one heartbeat later.
          void membership?.heartbeat();
        },
      });
      if (parts.immune && parts.immuneTable) {
        stream = new FleetEventStream({ service: parts.immune, pool: pool!, table: parts.immuneTable, instanceId, timeouts, logger });
        stream.start();
      }
      await Promise.all([membership.start(), decisions.start()]);
      logger.info({ instanceId, reachable: membership.reachable, mode: decisions.mode ?? null }, 'fleet: joined');
    },
    async close() {
      if (closed) return;
      closed = true;
      await stream?.close();
      await decisions?.close();
      await membership?.close();
      await restartLease?.close();
      await ownPool?.end().catch((error: unknown) => logger.warn({ err: error }, 'fleet: ending its pool failed'));
    },
    [Symbol.asyncDispose]: () => fleet.close(),
  };

  let listHandler: HttpHandler | undefined;
  const list = (req: IncomingMessage, res: ServerResponse, next?: (error?: unknown) => void) => {
    if (!membership) return sendProblem(res, { status: 503, title: 'Fleet not joined yet' }, { 'retry-after': '1' });
    listHandler ??= createFleetHandler(membership, { path: basePath, logger });
    listHandler(req, res, next);
  };
  const storeProblem = (error: unknown): [Problem, Record<string, string>] =>
    isGuardError(error, 'STORE_UNAVAILABLE')
      ? [{ status: 503, title: 'Fleet database unavailable', detail: 'the fleet database cannot be reached; retry later', code: 'STORE_UNAVAILABLE' }, { 'retry-after': '5' }]
      : [problemFromError(error), {}];

  function route(req: IncomingMessage, res: ServerResponse, next?: (error?: unknown) => void): void {
    const path = (req.url ?? '/').split('?')[0]!.replace(/\/+$/, '');
    const method = (req.method ?? 'GET').toUpperCase();
    if (path === basePath) return void list(req, res, next);
    if (path === `${basePath}/decisions` && method === 'GET') {
      if (!decisions) return void sendProblem(res, { status: 503, title: 'Fleet not joined yet' }, { 'retry-after': '1' });
      decisions.active().then(
        (active) => sendJson(res, 200, { decisions: active, count: active.length }),
        (error: unknown) => sendProblem(res, ...storeProblem(error)),
      );
      return;
    }
    if (path === `${basePath}/mode` && (method === 'POST' || method === 'DELETE')) {
      if (!requireAdminToken(req, res, adminToken)) return;
      if (!decisions) return void sendProblem(res, { status: 503, title: 'Fleet not joined yet' }, { 'retry-after': '1' });
      const d = decisions;
      readJsonBody(req, { limitBytes: 1024 })
        .then(async (body) => {
          const { mode, target, durationMs, reason } = (typeof body === 'object' && body !== null ? body : {}) as Record<string, unknown>;
          if (target !== undefined && (typeof target !== 'string' || target === '')) return sendProblem(res, { status: 400, title: 'Invalid field', detail: 'target must be "fleet" or an instance id', field: 'target' });
          if (method === 'DELETE') return sendJson(res, 200, { cleared: await d.clearMode(target === undefined ? {} : { target }) });
          if (!isGuardMode(mode)) return sendProblem(res, { status: 400, title: 'Invalid field', detail: 'mode must be disabled, dry_run, detect or full', field: 'mode' });
          if (durationMs !== undefined && (typeof durationMs !== 'number' || !(durationMs >= 1))) return sendProblem(res, { status: 400, title: 'Invalid field', detail: 'durationMs must be a number >= 1', field: 'durationMs' });
          const decision = await d.setMode(mode, { ...(target === undefined ? {} : { target }), ...(durationMs === undefined ? {} : { durationMs }), ...(typeof reason === 'string' ? { reason: reason.slice(0, 200) } : {}) });
          sendJson(res, 200, { decision });
        })
        .catch((error: unknown) => sendProblem(res, ...storeProblem(error)));
      return;
    }
    if (path === `${basePath}/blacklist` && (method === 'POST' || method === 'DELETE')) {
      if (!requireAdminToken(req, res, adminToken)) return;
      readJsonBody(req, { limitBytes: 1024 })
        .then((body) => {
          const { actor, durationMs, reason } = (typeof body === 'object' && body !== null ? body : {}) as Record<string, unknown>;
          if (typeof actor !== 'string' || actor === '' || actor.length > 256) return sendProblem(res, { status: 400, title: 'Invalid field', detail: 'actor must be a non-empty string', field: 'actor' });
          if (durationMs !== undefined && (typeof durationMs !== 'number' || !(durationMs >= 1))) return sendProblem(res, { status: 400, title: 'Invalid field', detail: 'durationMs must be a number >= 1', field: 'durationMs' });
          if (method === 'DELETE') sink.unblacklist(actor);
          else sink.blacklist(actor, { ...(durationMs === undefined ? {} : { durationMs }), reason: typeof reason === 'string' ? reason.slice(0, 200) : 'operator' });
          // Applied here at once; shared now, or when the database is back.
          sendJson(res, 202, { actor, blacklisted: method === 'POST', shared: decisions?.reachable === true && decisions.pendingCount === 0 });
        })
        .catch((error: unknown) => sendProblem(res, problemFromError(error)));
      return;
    }
    if (path.startsWith(`${basePath}/`)) {
      req.resume();
      return void sendProblem(res, { status: 404, title: 'Not found', detail: `no fleet route ${method} ${path}` });
    }
    if (next) next();
    else sendProblem(res, { status: 404, title: 'Not found', detail: `no route for ${path}` });
  }

  return fleet;
}
