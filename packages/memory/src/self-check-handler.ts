import type { IncomingMessage, ServerResponse } from 'node:http';
import { envReader, GuardError, isGuardError, problemFromError, readJsonBody, requireAdminToken, sendJson, sendProblem } from '@guard/core';
import type { Env, HttpHandler, Problem } from '@guard/core';
import { BYTES_PER_MB } from './memory-snapshot.js';
import type { MemoryAssessment, MemoryStatus } from './memory-assessment.js';
import type { MemoryGuardrail } from './memory-guardrail.js';
import type { MemoryReport } from './memory-report.js';
import type { MemoryThresholds } from './memory-thresholds.js';

/**
 * Options for {@link createSelfCheckHandler}.
 *
 * @example
 * const options: SelfCheckHandlerOptions = { adminToken: process.env.GUARD_ADMIN_TOKEN, readyzFailAt: 'critical' };
 */
export interface SelfCheckHandlerOptions {
  /** Bearer token for the POST endpoints; without one they answer 403 (admin endpoints are off). */
  readonly adminToken?: string;
  /** `/readyz` answers 503 at or above this status. Default `'critical'` (so `warning` stays ready, like 206). */
  readonly readyzFailAt?: Exclude<MemoryStatus, 'healthy'>;
  /** Mount path of the self-check endpoints. Default `'/self-check'`. */
  readonly basePath?: string;
  /** Largest accepted POST body. Default 4096. */
  readonly bodyLimitBytes?: number;
}

/**
 * HTTP code of `GET /self-check` per status: 206 (a 2xx, so probes still pass) for warning.
 *
 * @example
 * SELF_CHECK_HTTP_STATUS[guardrail.assess().status]; // 200 | 206 | 503
 */
export const SELF_CHECK_HTTP_STATUS: Readonly<Record<MemoryStatus, number>> = { healthy: 200, warning: 206, critical: 503 };

const LEVEL: Record<MemoryStatus, number> = { healthy: 0, warning: 1, critical: 2 };
const READ_METHODS = 'GET, HEAD';

/**
 * Reads the handler's options from the environment: `GUARD_ADMIN_TOKEN` and `MEMORY_READYZ_FAIL_AT` (warning|critical).
 *
 * @example
 * const handler = createSelfCheckHandler(guardrail, selfCheckOptionsFromEnv(process.env));
 */
export function selfCheckOptionsFromEnv(env: Env = process.env): SelfCheckHandlerOptions {
  const read = envReader(env);
  const adminToken = read.string('GUARD_ADMIN_TOKEN');
  return {
    ...(adminToken === undefined ? {} : { adminToken }),
    readyzFailAt: read.oneOf('MEMORY_READYZ_FAIL_AT', ['warning', 'critical'] as const, 'critical'),
  };
}

const mb = (bytes: number) => Math.round((bytes / BYTES_PER_MB) * 100) / 100;

function memoryView(a: MemoryAssessment) {
  const s = a.snapshot;
  return {
    rssBytes: s.rssBytes,
    rssMb: mb(s.rssBytes),
    heapUsedBytes: s.heapUsedBytes,
    heapTotalBytes: s.heapTotalBytes,
    externalBytes: s.externalBytes,
    arrayBuffersBytes: s.arrayBuffersBytes,
  };
}

function growthView(a: MemoryAssessment) {
  return {
    mbPerMin: Math.round(a.growth.slopeMbPerMin * 1000) / 1000,
    r2: Math.round(a.growth.r2 * 1000) / 1000,
    samples: a.growth.samples,
    spanMs: a.growth.spanMs,
    leakDetected: a.growth.leakDetected,
  };
}

/**
 * One connect-style handler for the guardrail's endpoints; other paths go to `next()` (or get a 404 without one).
 *
 * | route | answer |
 * |---|---|
 * | `GET /self-check` | 200 healthy, 206 warning, 503 critical; memory, cache, thresholds, restart advice, response time |
 * | `GET /self-check/memory` | RSS and heap detail, growth rate, time to threshold |
 * | `GET /self-check/cache` | entries per cache probe against the threshold |
 * | `GET /self-check/baseline` | growth since the baseline, pass/fail against `baselineAcceptanceMb` (+50 MB) |
 * | `GET /self-check/detailed` | the full report: series, regression line, thresholds, restart budget |
 * | `POST /self-check/restart` | admin token and body `{"confirm": true}`; 202, or 429 inside the restart budget |
 * | `POST /self-check/force-memory-check` | admin token; runs a check now |
 * | `POST /self-check/thresholds` | admin token and a JSON body of thresholds to change (`rssThresholdMb`, `cacheEntriesThreshold`, `warningRatio`, `leakRateMbPerMin`); 200 with the previous and current values, audited |
 * | `GET /livez` | 200 while the process answers |
 * | `GET /readyz` | 503 at or above `readyzFailAt`, else 200 |
 *
 * Errors are problem+json: 405 wrong method, 401 no token, 403 bad token (or no token configured), 400 missing
 * confirmation, malformed JSON or an invalid threshold (naming the field), 413 body too large, 415 not JSON, 429 restart budget used, 404 unknown self-check path.
 *
 * @example
 * const selfCheck = createSelfCheckHandler(guardrail, { adminToken: process.env.GUARD_ADMIN_TOKEN });
 * http.createServer((req, res) => selfCheck(req, res, () => app(req, res))).listen(3000);
 */
export function createSelfCheckHandler(guardrail: MemoryGuardrail, options: SelfCheckHandlerOptions = {}): HttpHandler {
  const basePath = (options.basePath ?? '/self-check').replace(/\/+$/, '');
  if (!basePath.startsWith('/')) {
    throw new GuardError('INVALID_OPTION', `basePath must start with "/", got ${JSON.stringify(options.basePath)}`, { details: { field: 'basePath' } });
  }
  const readyzFailAt = options.readyzFailAt ?? 'critical';
  if (readyzFailAt !== 'warning' && readyzFailAt !== 'critical') {
    throw new GuardError('INVALID_OPTION', `readyzFailAt must be warning or critical, got ${String(readyzFailAt)}`, { details: { field: 'readyzFailAt' } });
  }
  const bodyLimitBytes = options.bodyLimitBytes ?? 4096;
  const adminToken = options.adminToken;

  type Route = (req: IncomingMessage, res: ServerResponse, started: number) => void | Promise<void>;

  const timing = (started: number) => Math.round((performance.now() - started) * 1000) / 1000;
  const reply = (res: ServerResponse, status: number, body: Record<string, unknown>, started: number) => {
    const responseTimeMs = timing(started);
    sendJson(res, status, { ...body, responseTimeMs }, { 'cache-control': 'no-store', 'server-timing': `self-check;dur=${responseTimeMs}` });
  };

  const restartView = (a: MemoryAssessment, restart: MemoryReport['restart']) => {
    return {
      advised: a.restartReason !== null,
      reason: a.restartReason,
      autoRestart: restart.autoRestart,
      inProgress: restart.inProgress,
      lastRestartAt: restart.last?.lastRestartAt ?? null,
      retryAfterMs: restart.retryAfterMs,
      // Fleet mode: an advised restart waiting for the fleet's restart budget says so here.
      waitingForFleet: restart.fleetWait,
    };
  };

  const overview = (a: MemoryAssessment, report: MemoryReport = guardrail.report()) => {
    const { thresholds } = report;
    return {
      name: guardrail.name,
      status: a.status,
      reasons: a.reasons,
      checkedAt: new Date(a.snapshot.at).toISOString(),
      memory: { ...memoryView(a), thresholdMb: thresholds.rssMb, usageRatio: Math.round((a.snapshot.rssBytes / thresholds.rssBytes) * 1000) / 1000 },
      cache: { threshold: thresholds.cacheEntries, caches: a.caches },
      growth: growthView(a),
      timeToThresholdMs: a.timeToThresholdMs,
      thresholds,
      restart: restartView(a, report.restart),
    };
  };

  const reads: Record<string, Route> = {
    [basePath]: (_req, res, started) => {
      const a = guardrail.assess();
      reply(res, SELF_CHECK_HTTP_STATUS[a.status], overview(a), started);
    },
    [`${basePath}/memory`]: (_req, res, started) => {
      const a = guardrail.assess();
      const { thresholds } = guardrail.report();
      reply(
        res,
        200,
        {
          status: a.status,
          ...memoryView(a),
          thresholdMb: thresholds.rssMb,
          growth: { ...growthView(a), leakRateLimitMbPerMin: thresholds.leakRateMbPerMin, minFitR2: thresholds.minFitR2 },
          timeToThresholdMs: a.timeToThresholdMs,
          predictedBreachAt: a.timeToThresholdMs === null ? null : new Date(a.snapshot.at + a.timeToThresholdMs).toISOString(),
        },
        started,
      );
    },
    [`${basePath}/cache`]: (_req, res, started) => {
      const a = guardrail.assess();
      const worst = a.caches.reduce<MemoryStatus>((w, c) => (LEVEL[c.status] > LEVEL[w] ? c.status : w), 'healthy');
      reply(res, 200, { status: worst, threshold: guardrail.report().thresholds.cacheEntries, caches: a.caches }, started);
    },
    [`${basePath}/baseline`]: (_req, res, started) => {
      const a = guardrail.assess();
      const report = guardrail.report();
      const baseline = report.baseline;
      const growthBytes = baseline ? a.snapshot.rssBytes - baseline.rssBytes : null;
      reply(
        res,
        200,
        {
          baseline,
          current: { rssBytes: a.snapshot.rssBytes, heapUsedBytes: a.snapshot.heapUsedBytes, at: a.snapshot.at },
          growthBytes,
          growthMb: growthBytes === null ? null : mb(growthBytes),
          acceptanceMb: report.thresholds.baselineAcceptanceMb,
          pass: growthBytes === null ? null : growthBytes < report.thresholds.baselineAcceptanceMb * BYTES_PER_MB,
        },
        started,
      );
    },
    [`${basePath}/detailed`]: (_req, res, started) => {
      const a = guardrail.assess();
      const report = guardrail.report();
      reply(res, 200, { ...overview(a, report), current: a, report }, started);
    },
    '/livez': (_req, res, started) => reply(res, 200, { status: 'alive' }, started),
    '/readyz': (_req, res, started) => {
      const a = guardrail.assess();
      const ready = LEVEL[a.status] < LEVEL[readyzFailAt];
      reply(res, ready ? 200 : 503, { ready, status: a.status, reasons: a.reasons }, started);
    },
  };

  const writes: Record<string, Route> = {
    [`${basePath}/restart`]: async (req, res, started) => {
      if (!requireAdminToken(req, res, adminToken)) return;
      const body = await readJsonBody(req, { limitBytes: bodyLimitBytes });
      if (typeof body !== 'object' || body === null || (body as { confirm?: unknown }).confirm !== true) {
        sendProblem(res, {
          status: 400,
          title: 'Confirmation required',
          detail: 'send {"confirm": true} to restart the process',
          field: 'confirm',
        });
        return;
      }
      const decision = await guardrail.requestRestart('manual');
      if (decision.restarted) {
        reply(res, 202, { restarting: true, reason: decision.reason, at: decision.at }, started);
      } else if (decision.skipped === 'cooldown') {
        sendProblem(
          res,
          {
            status: 429,
            title: 'Restart budget used',
            detail: `at most one restart per cooldown; retry in ${Math.ceil(decision.retryAfterMs / 1000)} s`,
            retryAfterMs: decision.retryAfterMs,
            lastRestartAt: decision.lastRestartAt,
          },
          { 'retry-after': String(Math.ceil(decision.retryAfterMs / 1000)) },
        );
      } else {
        sendProblem(res, { status: 409, title: 'Restart in progress', detail: 'a restart is already in progress' });
      }
    },
    [`${basePath}/thresholds`]: async (req, res, started) => {
      if (!requireAdminToken(req, res, adminToken)) return;
      const body = await readJsonBody(req, { limitBytes: bodyLimitBytes });
      const previous = guardrail.thresholds();
      const remoteAddress = req.socket?.remoteAddress;
      const thresholds = guardrail.setThresholds(body as Partial<MemoryThresholds>, {
        source: 'http',
        ...(remoteAddress === undefined ? {} : { remoteAddress }),
      });
      const changed = (Object.keys(thresholds) as (keyof MemoryThresholds)[]).filter((field) => thresholds[field] !== previous[field]);
      reply(res, 200, { name: guardrail.name, previous, thresholds, changed }, started);
    },
    [`${basePath}/force-memory-check`]: (req, res, started) => {
      if (!requireAdminToken(req, res, adminToken)) return;
      req.resume();
      const a = guardrail.check();
      reply(res, 200, overview(a), started);
    },
  };

  const fail = (res: ServerResponse, error: unknown) => {
    if (res.headersSent) {
      res.destroy();
      return;
    }
    const problem: Problem = isGuardError(error, 'CLOSED')
      ? { status: 503, title: 'Guardrail closed', detail: 'the memory guardrail is closed' }
      : isGuardError(error, 'RESTART_STATE_ERROR')
        ? { status: 500, title: 'Restart not started', detail: error.message }
        : problemFromError(error);
    sendProblem(res, problem);
  };

  return (req, res, next) => {
    // Pass-through first: a URL under none of the handler's paths goes straight to next(), with no clock read,
    // split or regex (every route is under basePath, /livez or /readyz, and a path is a prefix of its URL).
    const url = req.url ?? '/';
    if (next !== undefined && !url.startsWith(basePath) && !url.startsWith('/livez') && !url.startsWith('/readyz')) {
      next();
      return;
    }
    const started = performance.now();
    const path = url.split('?', 1)[0]!.replace(/(.)\/+$/, '$1');
    const read = reads[path];
    const write = writes[path];
    if (!read && !write) {
      if (path === basePath || path.startsWith(`${basePath}/`)) {
        req.resume();
        sendProblem(res, { status: 404, title: 'Not found', detail: `no self-check endpoint at ${path}` });
      } else if (next) next();
      else {
        req.resume();
        sendProblem(res, { status: 404, title: 'Not found', detail: `no route for ${path}` });
      }
      return;
    }
    const method = req.method ?? 'GET';
    const allowed = read ? ['GET', 'HEAD'] : ['POST'];
    if (!allowed.includes(method)) {
      req.resume();
      sendProblem(
        res,
        { status: 405, title: 'Method not allowed', detail: `${method} is not allowed on ${path}; use ${read ? READ_METHODS : 'POST'}` },
        { allow: read ? READ_METHODS : 'POST' },
      );
      return;
    }
    try {
      const result = (read ?? write)!(req, res, started);
      if (result) result.catch((error: unknown) => fail(res, error));
    } catch (error) {
      fail(res, error);
    }
  };
}
