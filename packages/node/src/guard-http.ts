import type { IncomingMessage, ServerResponse } from 'node:http';
import { sendProblem } from '@guard/core';
import type { CloseStack, HttpHandler, Logger, Registry } from '@guard/core';
import type { DetectorChain, ParasiteRoute } from '@guard/detectors';
import { createSelfCheckHandler, type MemoryGuardrail } from '@guard/memory';
import { createImmuneHandler, type ImmuneEnvConfig, type ImmuneService } from '@guard/immune';
import type { ResourcePressureMonitor } from '@guard/playbooks';
import { createAdmission, type Rejection } from './admission.js';
import type { Fleet } from './fleet.js';
import type { Healability } from './full-mode.js';
import { createGuardHandler, metricsRoute, type ResolvedEndpoints } from './guard-handler.js';
import type { HealthChecks } from './health-checks.js';
import { probeHandler } from './health-handler.js';
import { modeSwitch } from './mode-switch.js';
import type { RequestTracker } from './request-tracker.js';
import type { GracefulShutdown } from './shutdown.js';

/** What the guard's HTTP surface serves and decides on. */
export interface GuardHttpParts {
  readonly endpoints: ResolvedEndpoints;
  readonly registry: Registry;
  readonly logger: Logger;
  readonly checks: HealthChecks;
  readonly chain: DetectorChain;
  readonly heal: Healability;
  readonly requests: RequestTracker;
  readonly stack: CloseStack;
  readonly shutdown: GracefulShutdown;
  readonly memory: MemoryGuardrail | undefined;
  /** The app set a memory budget (`rssThresholdMb`): only then does memory shed load. */
  readonly memoryBudgetSet: boolean;
  readonly pressure: ResourcePressureMonitor | undefined;
  readonly immune: ImmuneService | undefined;
  readonly immuneHttp: ImmuneEnvConfig['http'];
  readonly fleet: Fleet | undefined;
  readonly adminToken: string | undefined;
  readonly immuneWriteToken: string | undefined;
  readonly routes: readonly ParasiteRoute[];
  readonly retryAfterSeconds: number;
}

/** The guard's HTTP surface: its endpoints, and what it answers early. */
export interface GuardHttp {
  readonly handler: HttpHandler;
  readonly middleware: HttpHandler;
  admit(req: IncomingMessage, res: ServerResponse): Rejection | undefined;
  isUnderPressure(): boolean;
}

/**
 * Builds the guard's endpoints (metrics, probes, mode switch, self-check, immune log, fleet) and its admission:
 * load shedding under pressure, then the parasite rule for `routes`. The immune SSE streams end as draining starts.
 *
 * @example
 * const http = createGuardHttp({ endpoints, registry, logger, checks, chain, heal, requests, stack, shutdown, ... });
 * server.on('request', (req, res) => http.handler(req, res, () => http.middleware(req, res, () => app(req, res))));
 */
export function createGuardHttp(parts: GuardHttpParts): GuardHttp {
  const { endpoints, registry, logger, chain, memory, immune, fleet, adminToken, immuneWriteToken } = parts;
  // Memory sheds load only while RSS is over the budget the app set: fewer requests relieve that. A predicted
  // breach (a growth trend, e.g. pools and JIT warming at startup) or an oversized cache fails readiness and is
  // healed by its own remedy, but refusing traffic for it would turn a forecast into an outage.
  const overMemoryBudget = () => parts.memoryBudgetSet && memory?.status === 'critical' && memory.latest()?.restartReason === 'rss_threshold';
  const isUnderPressure = () => (parts.pressure?.isUnderPressure() ?? false) || overMemoryBudget();
  const immuneHandler = immune
    ? parts.stack.use(
        createImmuneHandler(immune, {
          ...(endpoints.immune ? { basePath: endpoints.immune } : {}),
          limitBytes: parts.immuneHttp.limitBytes,
          heartbeatMs: parts.immuneHttp.heartbeatMs,
          maxSseClients: parts.immuneHttp.maxSseClients,
          registry,
          ...(immuneWriteToken ? { writeToken: immuneWriteToken } : {}),
        }),
      )
    : undefined;
  // The immune SSE streams never end on their own: they close as draining starts (the stack closes the rest).
  if (immuneHandler) parts.shutdown.onShutdown(() => immuneHandler.close(), { phase: 'drain' });
  const handler = createGuardHandler(
    endpoints,
    {
      metrics: metricsRoute(registry, logger),
      livez: probeHandler(parts.checks, 'liveness', logger),
      readyz: probeHandler(parts.checks, 'readiness', logger),
      mode: modeSwitch(chain, { adminToken, components: parts.heal.components, healable: parts.heal.healable }),
      ...(memory && endpoints.selfCheck ? { selfCheck: createSelfCheckHandler(memory, { adminToken, basePath: endpoints.selfCheck }) } : {}),
      ...(immuneHandler ? { immune: immuneHandler } : {}),
      ...(fleet ? { fleet: fleet.handler } : {}),
    },
    parts.requests,
  );
  const admission = createAdmission(chain, { routes: parts.routes, retryAfterSeconds: parts.retryAfterSeconds, isUnderPressure });
  const admit = (req: IncomingMessage, res: ServerResponse) => {
    parts.requests.track(req, res);
    return admission(req);
  };
  const middleware: HttpHandler = (req, res, next) => {
    const rejection = admit(req, res);
    if (!rejection) return next?.();
    req.resume();
    sendProblem(res, rejection.problem, rejection.headers);
  };
  return { handler, middleware, admit, isUnderPressure };
}
