import type { BreakerStateChange, Detection, GuardBus, GuardEvents, HeartbeatNotice, Logger, MemoryAlarm, PlaybookRunNotice, SanitizeResult, Severity } from '@guard/core';
import { silentLogger } from '@guard/core';
import type { ImmuneEventInput, ImmuneEventType, ImmuneSeverity } from './event.js';
import { EVENT_LIMITS } from './event.js';
import type { ImmuneService } from './immune-service.js';
import { createAclViolationWindow } from './acl-violation-window.js';
import type { AclViolationNotice } from './acl-violation-window.js';
import { clip, compactSteps, fitMeta, fits, num, numbersOf, round1, stepSummary, str } from './event-meta.js';

/**
 * Options for {@link bridgeGuardBus}.
 *
 * @example
 * bridgeGuardBus(bus, service, { agentId: 'api-1', includePlaybookStarts: true, memoryAlarms: false });
 */
export interface GuardBridgeOptions {
  /** `agent_id` of the events the bridge publishes (e.g. the service's instance name). */
  readonly agentId?: string;
  /**
   * Decides a detection's event type. Default: `POLICY_VIOLATION` when the pattern or component names an
   * ACL/policy/rate-limit breach, else `ERROR_SPIKE` (the Parasite Guard's leaks).
   */
  readonly classifyDetection?: (detection: Detection) => ImmuneEventType;
  /** Publish `info` detections too. Default true. */
  readonly includeInfoDetections?: boolean;
  /** Record playbook runs when they start (not only when they end). Default false. */
  readonly includePlaybookStarts?: boolean;
  /** Turn `memoryAlarm` warning/critical into `ERROR_SPIKE` events. Default true. */
  readonly memoryAlarms?: boolean;
  /** Turn breakers opening into `ERROR_SPIKE` warnings. Default true. */
  readonly breakerOpens?: boolean;
  /** Record finished playbook runs with their step results. Default true. */
  readonly playbookRuns?: boolean;
  /**
   * Record the heartbeat watchdog (`heartbeat` bus events of `@guard/playbooks`): missed deadlines, restarts,
   * failed restarts, crash loops, recoveries and operator resets. Default true.
   */
  readonly heartbeats?: boolean;
  /** Record resource pressure alarms and clears (`resourcePressure` bus events). Default true. */
  readonly pressure?: boolean;
  /**
   * Record ACL violations (`aclViolation` bus events) aggregated: one `POLICY_VIOLATION` per actor per
   * `aclWindowMs` with the count, never one row per violation. Default true.
   */
  readonly aclViolations?: boolean;
  /** Record ACL monitor alarms (`aclAlarm`), at most one per actor and reason per `aclWindowMs`. Default true. */
  readonly aclAlarms?: boolean;
  /** The aggregation window of ACL violations and alarms. Default 10 000. */
  readonly aclWindowMs?: number;
  /** Most actors recorded on their own per window; the rest share one `(other actors)` row. Default 100. */
  readonly aclMaxActorsPerWindow?: number;
  /**
   * Record the memory guardrail's audit trail (`@guard/memory`): run-time threshold changes
   * (`memoryThresholdsChanged`) and restarts that started, were skipped by the budget or failed (`memoryRestart`).
   * Default true.
   */
  readonly memoryAudit?: boolean;
  /** Where publish failures are reported (they never reach the bus). */
  readonly logger?: Logger;
  /** Clock of the ACL windows (epoch ms). Default `Date.now`. */
  readonly now?: () => number;
}

/**
 * A running bridge: call it (or `using`) to unsubscribe.
 *
 * @example
 * const bridge = bridgeGuardBus(bus, service);
 * await bridge.settled();
 * bridge(); // unsubscribe
 */
export interface GuardBridge {
  /** Unsubscribes; ACL counts of the open window are published first. */
  (): void;
  [Symbol.dispose](): void;
  /** Resolves once every publish the bridge started has settled. */
  settled(): Promise<void>;
  /** Publishes the ACL counts of the open window now (before a shutdown, or in tests). */
  flush(): void;
}

/**
 * The shapes of the `@guard/playbooks` bus events the bridge reads. Declared here by structure, because
 * immune does not depend on playbooks; each field is checked at run time before use.
 */
interface PressureNotice {
  readonly resource: string;
  readonly state: string;
  readonly percent?: number;
  readonly level?: number;
  readonly thresholdPercent?: number;
  readonly sustainedMs?: number;
  readonly at?: number;
}
interface AclAlarmNotice {
  readonly reason: string;
  readonly actor: string;
  readonly topic?: string;
  readonly offenders?: readonly string[];
  readonly violations?: number;
  readonly totalViolations?: number;
  readonly violationsPerSecond?: number;
  readonly controlViolations?: number;
  readonly at?: number;
}

interface MemoryThresholdsNotice {
  readonly name?: string;
  readonly previous?: Readonly<Record<string, unknown>>;
  readonly current?: Readonly<Record<string, unknown>>;
  readonly changed?: readonly string[];
  readonly source?: string;
  readonly remoteAddress?: string;
  readonly at?: number;
}

interface MemoryRestartNotice {
  readonly name?: string;
  readonly reason?: string;
  readonly outcome?: string;
  readonly retryAfterMs?: number;
  readonly failure?: string;
  /** With `skipped`: `cooldown`, or `fleet_budget` (fleet mode: other replicas are restarting). */
  readonly skipped?: string;
  readonly at?: number;
}

const RESTART_SEVERITY: Readonly<Record<string, ImmuneSeverity>> = { started: 'WARNING', skipped: 'WARNING', failed: 'CRITICAL' };

/** Events of other packages, subscribed by name (GuardBus is an EventEmitter underneath). */
type LooseBus = { on(event: string, fn: (payload: never) => void): unknown; off(event: string, fn: (payload: never) => void): unknown };

const SEVERITY: Record<Severity, ImmuneSeverity> = { info: 'INFO', warning: 'WARNING', critical: 'CRITICAL' };
const POLICY = /acl|policy|violation|blacklist|rate_limit|forbidden|unauthori[sz]ed/i;

/**
 * The default detection classifier of {@link bridgeGuardBus}: ACL/policy/rate-limit breaches are `POLICY_VIOLATION`,
 * everything else (the Parasite Guard's leaks) `ERROR_SPIKE`.
 *
 * @example
 * bridgeGuardBus(bus, service, { classifyDetection: (d) => (d.component === 'auth' ? 'POLICY_VIOLATION' : classifyDetection(d)) });
 */
export function classifyDetection(detection: Detection): ImmuneEventType {
  return POLICY.test(detection.pattern) || POLICY.test(detection.component) ? 'POLICY_VIOLATION' : 'ERROR_SPIKE';
}

const STEP_LISTS = ['steps', 'rollback'] as const;

const RUN_KEYS = new Set(['runId', 'playbook', 'status', 'dryRun', 'reason', 'startedAt', 'finishedAt', 'error']);

/** Immune severity, type and message of a watchdog notice; undefined for notices not worth a row (`backoff`). */
function mapHeartbeat(e: HeartbeatNotice, component: string): Pick<ImmuneEventInput, 'severity' | 'type' | 'message'> | undefined {
  const name = clip(component, 512);
  switch (e.kind) {
    case 'missed':
      return { severity: 'WARNING', type: 'ERROR_SPIKE', message: `component ${name} missed its heartbeat deadline` };
    case 'restarted':
      return { severity: 'INFO', type: 'SELF_HEALING_ACTION', message: `watchdog restarted component ${name}${num(e.attempt) === undefined ? '' : ` (restart ${e.attempt} in a row)`}; waiting for its heartbeat` };
    case 'restart_failed':
      return { severity: 'WARNING', type: 'SELF_HEALING_ACTION', message: `watchdog could not restart component ${name}${typeof e.error === 'string' ? `: ${e.error}` : ''}` };
    case 'crash_loop':
      return {
        severity: 'CRITICAL',
        type: 'ERROR_SPIKE',
        message: `component ${name} is in crash_loop${num(e.restartsInWindow) === undefined ? '' : `: ${e.restartsInWindow} restarts`}${num(e.windowMs) === undefined ? '' : ` within ${Math.round(e.windowMs! / 1000)} s`}; restarts stopped`,
      };
    case 'recovered':
      return { severity: 'INFO', type: 'SELF_HEALING_ACTION', message: `component ${name} recovered: heartbeats again${num(e.recoveryMs) === undefined ? '' : ` ${e.recoveryMs} ms after the outage began`}` };
    case 'reset':
      return { severity: 'INFO', type: 'SELF_HEALING_ACTION', message: `operator reset the watchdog of component ${name}` };
    default:
      return undefined;
  }
}

/**
 * Turns guard activity on the `GuardBus` into immune events: detections become `ERROR_SPIKE` or `POLICY_VIOLATION`
 * (severity mapped), sanitizations and finished playbook runs become `SELF_HEALING_ACTION`; memory alarms and
 * breakers opening become `ERROR_SPIKE` warnings. Publishing is asynchronous and failures are logged, never thrown
 * into the bus.
 *
 * @example
 * using bridge = bridgeGuardBus(bus, service, { agentId: 'api-1' });
 * bus.emit('detection', detection); // -> an ERROR_SPIKE event in the immune log
 */
export function bridgeGuardBus(bus: GuardBus, service: ImmuneService, options: GuardBridgeOptions = {}): GuardBridge {
  const logger = options.logger ?? silentLogger;
  const now = options.now ?? Date.now;
  const classify = options.classifyDetection ?? classifyDetection;
  const agent = options.agentId === undefined ? {} : { agentId: options.agentId };
  const inFlight = new Set<Promise<unknown>>();

  /** Publishes in the background (the message clipped to the event limit); a failure is logged, never thrown into the bus. */
  const publish = (input: ImmuneEventInput, source: string) => {
    try {
      if (service.closed) return;
      const p = service.publishEvent({ ...input, message: clip(input.message, EVENT_LIMITS.maxMessageLength) }).catch((error: unknown) => {
        logger.warn({ err: error, source }, 'immune bridge could not publish an event');
      });
      inFlight.add(p);
      void p.finally(() => inFlight.delete(p));
    } catch (error) {
      logger.warn({ err: error, source }, 'immune bridge could not publish an event');
    }
  };

  const guard =
    <A extends unknown[]>(source: string, fn: (...args: A) => void) =>
    (...args: A) => {
      try {
        fn(...args);
      } catch (error) {
        logger.warn({ err: error, source }, 'immune bridge could not map an event');
      }
    };

  const subs: (() => void)[] = [];
  /** What an event of the bus becomes: an immune event (without the agent, set here), or undefined to skip it. */
  type Mapped = Omit<ImmuneEventInput, 'agentId'> | undefined;
  const relayed = (source: string, map: (payload: never) => Mapped) =>
    guard(source, (payload: never) => {
      const input = map(payload);
      if (input) publish({ ...agent, ...input }, source);
    });
  const relay = <K extends keyof GuardEvents>(event: K, map: (...args: GuardEvents[K]) => Mapped): void => {
    subs.push(bus.subscribe(event, relayed(event, map as (payload: never) => Mapped) as (...args: GuardEvents[K]) => void));
  };
  relay('detection', (d: Detection) => {
    if (d.severity === 'info' && options.includeInfoDetections === false) return;
    return {
      module: clip(String(d.component), EVENT_LIMITS.maxNameLength),
      severity: SEVERITY[d.severity] ?? 'WARNING',
      type: classify(d),
      message: d.message || `${d.component} ${d.pattern} on ${d.resourceId}`,
      meta: fitMeta(
        {
          source: 'detection',
          detection_id: d.id,
          component: d.component,
          pattern: d.pattern,
          resource_id: d.resourceId,
          detected_at: d.detectedAt,
          details: d.details,
          ...(d.source ? { frames: d.source.slice(0, 10) } : {}),
        },
        ['details', 'frames'],
      ),
    };
  });
  relay('sanitization', (r: SanitizeResult) => {
    const failed = r.outcome === 'failed' || r.outcome === 'timeout';
    return {
      module: clip(String(r.component), EVENT_LIMITS.maxNameLength),
      severity: failed ? 'WARNING' : 'INFO',
      type: 'SELF_HEALING_ACTION',
      message: `sanitization ${r.outcome} on ${r.component} ${r.resourceId}${r.actions.length ? `: ${r.actions.join(', ')}` : ''}`,
      meta: fitMeta(
        {
          source: 'sanitization',
          detection_id: r.detectionId,
          component: r.component,
          resource_id: r.resourceId,
          outcome: r.outcome,
          actions: r.actions,
          duration_ms: r.finishedAt - r.startedAt,
          ...(r.error ? { error: r.error } : {}),
          details: r.details,
        },
        ['details', 'actions'],
      ),
    };
  });
  if (options.playbookRuns !== false) {
    relay('playbookRun', (run: PlaybookRunNotice) => {
      if (run.status === 'started' && !options.includePlaybookStarts) return;
      const bad = run.status === 'failed' || run.status === 'rolled_back';
      // Whatever else the engine puts on the notice (steps, trigger, verification...) goes to meta as is.
      const extra: Record<string, unknown> = {};
      for (const [key, value] of Object.entries(run)) if (!RUN_KEYS.has(key) && value !== undefined) extra[key] = value;
      const raw = { ...extra };
      for (const key of STEP_LISTS) if (Array.isArray(raw[key])) extra[key] = compactSteps(raw[key]);
      // Step results first; if they make the row too big, keep the steps without their nested results.
      if (!fits(extra)) for (const key of STEP_LISTS) if (Array.isArray(raw[key])) extra[key] = compactSteps(raw[key], true);
      const steps = extra.steps as Record<string, unknown>[] | undefined;
      const verification = extra.verification as { passed?: unknown; attempts?: unknown } | undefined;
      const verified =
        typeof verification?.passed === 'boolean'
          ? `; verification ${verification.passed ? 'passed' : 'failed'}${typeof verification.attempts === 'number' ? ` after ${verification.attempts} attempt${verification.attempts === 1 ? '' : 's'}` : ''}`
          : '';
      return {
        module: 'playbooks',
        severity: bad ? 'WARNING' : 'INFO',
        type: 'SELF_HEALING_ACTION',
        message: `playbook ${run.playbook} ${run.status}${run.dryRun ? ' (dry run)' : ''}${run.reason ? `: ${run.reason}` : ''}${steps ? ` [${stepSummary(steps)}${verified}]` : ''}`,
        meta: fitMeta(
          {
            source: 'playbook',
            run_id: run.runId,
            playbook: run.playbook,
            status: run.status,
            dry_run: run.dryRun,
            started_at: run.startedAt,
            ...(run.finishedAt === undefined ? {} : { finished_at: run.finishedAt, duration_ms: run.finishedAt - run.startedAt }),
            ...(run.reason ? { reason: run.reason } : {}),
            ...(run.error ? { error: run.error } : {}),
            ...extra,
          },
          Object.keys(extra),
        ),
      };
    });
  }
  if (options.memoryAlarms !== false) {
    relay('memoryAlarm', (alarm: MemoryAlarm) => {
      if (alarm.status === 'healthy') return;
      return {
        module: 'memory',
        severity: alarm.status === 'critical' ? 'CRITICAL' : 'WARNING',
        type: 'ERROR_SPIKE',
        message: `memory ${alarm.status}: ${alarm.reasons.join('; ') || 'threshold crossed'}`,
        meta: fitMeta(
          { source: 'memory', status: alarm.status, rss_bytes: alarm.rssBytes, growth_mb_per_min: alarm.growthMbPerMin, reasons: alarm.reasons },
          ['reasons'],
        ),
      };
    });
  }
  if (options.breakerOpens !== false) {
    relay('breakerStateChange', (change: BreakerStateChange) => {
      if (change.to !== 'open') return;
      return {
        module: 'circuit',
        severity: 'WARNING',
        type: 'ERROR_SPIKE',
        message: `circuit ${change.circuit} opened (was ${change.from})`,
        meta: { source: 'circuit', circuit: clip(change.circuit, 512), from: change.from, to: change.to, at: change.at },
      };
    });
  }

  const loose = bus as unknown as LooseBus;
  const listenLoose = (event: string, listener: (payload: never) => void): void => {
    loose.on(event, listener);
    subs.push(() => void loose.off(event, listener));
  };
  const subscribeLoose = <T>(event: string, fn: (payload: T) => void): void => listenLoose(event, guard(event, fn) as (payload: never) => void);
  const relayLoose = <T>(event: string, map: (payload: T) => Mapped): void => listenLoose(event, relayed(event, map as (payload: never) => Mapped));

  if (options.heartbeats !== false) {
    // Core's contract type; the fields are still checked, a producer of another version may send less.
    relay('heartbeat', (e: HeartbeatNotice) => {
      const component = str(e?.component, 'heartbeat.component');
      const mapped = mapHeartbeat(e, component);
      if (!mapped) return;
      return {
        module: 'watchdog',
        ...mapped,
        meta: fitMeta(
          {
            source: 'watchdog',
            kind: e.kind,
            component: clip(component, 512),
            ...(typeof e.reason === 'string' ? { reason: clip(e.reason, 512) } : {}),
            ...numbersOf(e, { at: 'at', attempt: 'attempt', recoveryMs: 'recovery_ms', restartsInWindow: 'restarts_in_window', windowMs: 'window_ms' }),
            ...(typeof e.error === 'string' ? { error: clip(e.error, 1024) } : {}),
          },
          [],
        ),
      };
    });
  }

  if (options.pressure !== false) {
    relayLoose<PressureNotice>('resourcePressure', (c) => {
      const resource = str(c?.resource, 'resourcePressure.resource');
      const percent = num(c.percent) ?? num(c.level);
      if (percent === undefined) throw new TypeError('resourcePressure.percent must be a number');
      const threshold = num(c.thresholdPercent);
      const alarm = c.state === 'alarm';
      return {
        module: 'resources',
        severity: alarm ? (percent >= 95 ? 'CRITICAL' : 'WARNING') : 'INFO',
        type: 'ERROR_SPIKE',
        message: alarm
          ? `${resource} pressure: ${round1(percent)} %${threshold === undefined ? '' : ` >= ${threshold} %`}${num(c.sustainedMs) === undefined ? '' : ` for ${Math.round(c.sustainedMs! / 1000)} s`}`
          : `${resource} pressure cleared: ${round1(percent)} %`,
        meta: {
          source: 'pressure',
          resource: clip(resource, 512),
          state: alarm ? 'alarm' : 'cleared',
          percent,
          ...numbersOf(c, { thresholdPercent: 'threshold_percent', sustainedMs: 'sustained_ms', at: 'at' }),
        },
      };
    });
  }

  const windowMs = options.aclWindowMs ?? 10_000;
  const maxActors = options.aclMaxActorsPerWindow ?? 100;
  const alarmed = new Map<string, number>();
  const aclWindow = createAclViolationWindow({ windowMs, maxActors, now, publish: (input) => publish({ ...agent, ...input }, 'aclViolation') });
  if (options.aclViolations !== false) subscribeLoose<AclViolationNotice>('aclViolation', aclWindow.add);

  if (options.aclAlarms !== false) {
    relayLoose<AclAlarmNotice>('aclAlarm', (a) => {
      const actor = str(a?.actor, 'aclAlarm.actor');
      const reason = str(a.reason, 'aclAlarm.reason');
      // The monitor re-raises every second while an attack goes on: one row per actor and reason per window.
      const key = `${reason}\u0000${actor}`;
      const at = now();
      const last = alarmed.get(key);
      if (last !== undefined && at - last < windowMs) return;
      if (alarmed.size >= maxActors * 3) alarmed.clear();
      alarmed.set(key, at);
      const offenders = Array.isArray(a.offenders) ? a.offenders.filter((o): o is string => typeof o === 'string').slice(0, 20).map((o) => clip(o, 256)) : undefined;
      return {
        module: 'message_bus',
        severity: reason === 'control_topic_flood' ? 'CRITICAL' : 'WARNING',
        type: 'POLICY_VIOLATION',
        message: `ACL ${reason} by actor ${actor}${num(a.violations) === undefined ? '' : `: ${a.violations} violations`}${num(a.violationsPerSecond) === undefined ? '' : ` (${a.violationsPerSecond}/s across all actors)`}`,
        meta: fitMeta(
          {
            source: 'acl_alarm',
            reason: clip(reason, 256),
            actor: clip(actor, 512),
            ...(typeof a.topic === 'string' ? { topic: clip(a.topic, 512) } : {}),
            ...numbersOf(a, {
              violations: 'violations',
              totalViolations: 'total_violations',
              violationsPerSecond: 'violations_per_second',
              controlViolations: 'control_violations',
              at: 'at',
            }),
            ...(offenders ? { offenders } : {}),
          },
          ['offenders'],
        ),
      };
    });
  }

  if (options.memoryAudit !== false) {
    relayLoose<MemoryThresholdsNotice>('memoryThresholdsChanged', (c) => {
      const name = str(c?.name, 'memoryThresholdsChanged.name');
      const changed = Array.isArray(c.changed) ? c.changed.filter((f): f is string => typeof f === 'string').slice(0, 10) : [];
      return {
        module: 'memory',
        severity: 'INFO',
        type: 'POLICY_VIOLATION',
        message: `memory thresholds of ${name} changed (${changed.join(', ') || 'no field'}) by ${typeof c.source === 'string' ? c.source : 'api'}`,
        meta: fitMeta(
          {
            source: 'memory_thresholds',
            guardrail: clip(name, 256),
            changed,
            previous: c.previous ?? {},
            current: c.current ?? {},
            changed_by: typeof c.source === 'string' ? clip(c.source, 256) : 'api',
            ...(typeof c.remoteAddress === 'string' ? { remote_address: clip(c.remoteAddress, 64) } : {}),
            ...numbersOf(c, { at: 'at' }),
          },
          ['previous', 'current'],
        ),
      };
    });
    relayLoose<MemoryRestartNotice>('memoryRestart', (r) => {
      const name = str(r?.name, 'memoryRestart.name');
      const outcome = str(r.outcome, 'memoryRestart.outcome');
      const reason = typeof r.reason === 'string' ? r.reason : 'unknown';
      const detail =
        outcome === 'failed'
          ? ` (${typeof r.failure === 'string' ? r.failure : 'failed'})`
          : r.skipped === 'fleet_budget'
            ? ' (waiting for the fleet restart budget: other replicas are restarting)'
            : '';
      return {
        module: 'memory',
        severity: RESTART_SEVERITY[outcome] ?? 'WARNING',
        type: 'SELF_HEALING_ACTION',
        message: `memory restart of ${name} ${outcome}${detail}: ${reason}`,
        meta: {
          source: 'memory_restart',
          guardrail: clip(name, 256),
          outcome: clip(outcome, 32),
          reason: clip(reason, 64),
          ...(typeof r.failure === 'string' ? { failure: clip(r.failure, 64) } : {}),
          ...(typeof r.skipped === 'string' ? { skipped: clip(r.skipped, 32) } : {}),
          ...numbersOf(r, { retryAfterMs: 'retry_after_ms', at: 'at' }),
        },
      };
    });
  }

  let active = true;
  const stop = (() => {
    if (!active) return;
    active = false;
    for (const sub of subs) sub();
    aclWindow.flush();
  }) as GuardBridge;
  stop[Symbol.dispose] = stop;
  stop.settled = async () => {
    while (inFlight.size > 0) await Promise.all([...inFlight]);
  };
  stop.flush = () => {
    try {
      aclWindow.flush();
    } catch (error) {
      logger.warn({ err: error, source: 'aclViolation' }, 'immune bridge could not map an event');
    }
  };
  return stop;
}
