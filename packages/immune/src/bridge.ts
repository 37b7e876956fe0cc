import type { BreakerStateChange, Detection, GuardBus, Logger, MemoryAlarm, PlaybookRunNotice, SanitizeResult, Severity } from '@guard/core';
import { silentLogger } from '@guard/core';
import type { ImmuneEventInput, ImmuneEventType, ImmuneSeverity } from './event.js';
import { EVENT_LIMITS } from './event.js';
import type { ImmuneService } from './immune-service.js';

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
  /** Where publish failures are reported (they never reach the bus). */
  readonly logger?: Logger;
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
  (): void;
  [Symbol.dispose](): void;
  /** Resolves once every publish the bridge started has settled. */
  settled(): Promise<void>;
}

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

function clip(text: string, max: number): string {
  const trimmed = text.trim() === '' ? '(no message)' : text;
  return trimmed.length <= max ? trimmed : `${trimmed.slice(0, max - 1)}…`;
}

/** Keeps meta within the event limits: drops the bulky fields first, then everything but the scalars. */
function fitMeta(meta: Record<string, unknown>, bulky: readonly string[]): Record<string, unknown> {
  const fits = (m: Record<string, unknown>) => {
    try {
      const text = JSON.stringify(m);
      return Buffer.byteLength(text) <= EVENT_LIMITS.maxMetaBytes && depth(m) <= EVENT_LIMITS.maxMetaDepth;
    } catch {
      return false;
    }
  };
  if (fits(meta)) return meta;
  const slim: Record<string, unknown> = { ...meta, truncated: true };
  for (const key of bulky) delete slim[key];
  if (fits(slim)) return slim;
  const scalars: Record<string, unknown> = { truncated: true };
  for (const [key, value] of Object.entries(meta)) {
    if (value === null || ['string', 'number', 'boolean'].includes(typeof value)) scalars[key] = typeof value === 'string' ? clip(value, 512) : value;
  }
  return scalars;
}

function depth(value: unknown, level = 1): number {
  if (typeof value !== 'object' || value === null) return level - 1;
  if (level > EVENT_LIMITS.maxMetaDepth + 1) return level;
  let max = level;
  for (const child of Object.values(value)) max = Math.max(max, depth(child, level + 1));
  return max;
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
  const classify = options.classifyDetection ?? classifyDetection;
  const agent = options.agentId === undefined ? {} : { agentId: options.agentId };
  const inFlight = new Set<Promise<unknown>>();

  const publish = (input: ImmuneEventInput, source: string) => {
    try {
      if (service.closed) return;
      const p = service.publishEvent(input).catch((error: unknown) => {
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

  const subs = [
    bus.subscribe(
      'detection',
      guard('detection', (d: Detection) => {
        if (d.severity === 'info' && options.includeInfoDetections === false) return;
        publish(
          {
            ...agent,
            module: clip(String(d.component), EVENT_LIMITS.maxNameLength),
            severity: SEVERITY[d.severity] ?? 'WARNING',
            type: classify(d),
            message: clip(d.message || `${d.component} ${d.pattern} on ${d.resourceId}`, EVENT_LIMITS.maxMessageLength),
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
          },
          'detection',
        );
      }),
    ),
    bus.subscribe(
      'sanitization',
      guard('sanitization', (r: SanitizeResult) => {
        const failed = r.outcome === 'failed' || r.outcome === 'timeout';
        publish(
          {
            ...agent,
            module: clip(String(r.component), EVENT_LIMITS.maxNameLength),
            severity: failed ? 'WARNING' : 'INFO',
            type: 'SELF_HEALING_ACTION',
            message: clip(
              `sanitization ${r.outcome} on ${r.component} ${r.resourceId}${r.actions.length ? `: ${r.actions.join(', ')}` : ''}`,
              EVENT_LIMITS.maxMessageLength,
            ),
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
          },
          'sanitization',
        );
      }),
    ),
    bus.subscribe(
      'playbookRun',
      guard('playbookRun', (run: PlaybookRunNotice) => {
        if (run.status === 'started' && !options.includePlaybookStarts) return;
        const bad = run.status === 'failed' || run.status === 'rolled_back';
        publish(
          {
            ...agent,
            module: 'playbooks',
            severity: bad ? 'WARNING' : 'INFO',
            type: 'SELF_HEALING_ACTION',
            message: clip(
              `playbook ${run.playbook} ${run.status}${run.dryRun ? ' (dry run)' : ''}${run.reason ? `: ${run.reason}` : ''}`,
              EVENT_LIMITS.maxMessageLength,
            ),
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
              },
              [],
            ),
          },
          'playbookRun',
        );
      }),
    ),
  ];
  if (options.memoryAlarms !== false) {
    subs.push(
      bus.subscribe(
        'memoryAlarm',
        guard('memoryAlarm', (alarm: MemoryAlarm) => {
          if (alarm.status === 'healthy') return;
          publish(
            {
              ...agent,
              module: 'memory',
              severity: alarm.status === 'critical' ? 'CRITICAL' : 'WARNING',
              type: 'ERROR_SPIKE',
              message: clip(`memory ${alarm.status}: ${alarm.reasons.join('; ') || 'threshold crossed'}`, EVENT_LIMITS.maxMessageLength),
              meta: fitMeta(
                { source: 'memory', status: alarm.status, rss_bytes: alarm.rssBytes, growth_mb_per_min: alarm.growthMbPerMin, reasons: alarm.reasons },
                ['reasons'],
              ),
            },
            'memoryAlarm',
          );
        }),
      ),
    );
  }
  if (options.breakerOpens !== false) {
    subs.push(
      bus.subscribe(
        'breakerStateChange',
        guard('breakerStateChange', (change: BreakerStateChange) => {
          if (change.to !== 'open') return;
          publish(
            {
              ...agent,
              module: 'circuit',
              severity: 'WARNING',
              type: 'ERROR_SPIKE',
              message: clip(`circuit ${change.circuit} opened (was ${change.from})`, EVENT_LIMITS.maxMessageLength),
              meta: { source: 'circuit', circuit: clip(change.circuit, 512), from: change.from, to: change.to, at: change.at },
            },
            'breakerStateChange',
          );
        }),
      ),
    );
  }

  let active = true;
  const stop = (() => {
    if (!active) return;
    active = false;
    for (const sub of subs) sub();
  }) as GuardBridge;
  stop[Symbol.dispose] = stop;
  stop.settled = async () => {
    while (inFlight.size > 0) await Promise.all([...inFlight]);
  };
  return stop;
}
