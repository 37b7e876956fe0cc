import type { FleetDecisionSink } from './fleet-decisions.js';
import { GuardError, sleep } from '@guard/core';
import type { Logger } from '@guard/core';
import { ActionRegistry, ProbeRegistry } from './action-registry.js';
import type { AclViolationMonitor } from './acl-violation-monitor.js';
import type { MessageBus } from './message-bus.js';
import { durationParam, numberParam, stringParam } from './params.js';
import { topHostProcesses } from './proc-stat.js';
import type { ProcessRegistry, WorkerPool } from './process-registry.js';
import type { RateLimiter } from './rate-limiter.js';
import type { ResourcePressureMonitor } from './resource-pressure-monitor.js';
import type { TaskGate } from './task-gate.js';
import type { HeartbeatWatchdog } from './heartbeat-watchdog.js';
import type {} from './declarations.js';

/** Something that restarts named components (the {@link HeartbeatWatchdog} is one). */
export interface ComponentRestarter {
  restart(name: string, reason?: string): Promise<unknown>;
}

/** A follow-up created by `create_followup` (a ticket, or work routed to a scheduler). */
export interface FollowUpTask {
  readonly title: string;
  readonly queue: string;
  readonly playbook: string;
  readonly runId: string;
  /** Epoch ms when the task is due (now plus `delay`). */
  readonly dueAt: number;
  readonly details: Readonly<Record<string, unknown>>;
}

/** A notification of the `notify` action, as sent to the webhook and to `publish`. */
export interface PlaybookNotification {
  readonly playbook: string;
  readonly runId: string;
  readonly step: string;
  readonly severity: 'info' | 'warning' | 'critical';
  readonly message: string;
  /** The trigger's data. */
  readonly event: Readonly<Record<string, unknown>>;
  readonly at: number;
}

/** The real objects the built-in actions act on; an action is registered only when its object is given. */
export interface BuiltinActionDeps {
  /** `blacklist_actor`, `unblacklist_actor`, `rate_limit_actor`, `rate_limit_topic`, `clear_rate_limit`, `restart_message_bus`. */
  readonly messageBus?: MessageBus;
  /**
   * Fleet mode: `blacklist_actor`, `unblacklist_actor`, `rate_limit_actor` and `rate_limit_topic` go through this
   * sink (e.g. a `FleetDecisions` on the same bus), which applies them here at once and shares them with every replica.
   */
  readonly fleet?: FleetDecisionSink;
  /** `restart_component`. */
  readonly components?: ComponentRestarter;
  /** `throttle`, `enable_rate_limit`, `disable_rate_limit`. */
  readonly limiter?: RateLimiter;
  /** `pause_tasks`, `resume_tasks`. */
  readonly tasks?: TaskGate;
  /** `kill_process`, `kill_runaway` (owned processes only); `identify_hogs` marks the processes it owns. */
  readonly processes?: ProcessRegistry;
  /** `scale_down`: a pool of worker instances (e.g. `processes.pool('workers')`). */
  readonly workers?: WorkerPool;
  /** `notify` with channel `webhook` posts JSON here (the URL is configured in code, never taken from YAML). */
  readonly notifyWebhookUrl?: string | (() => string | undefined);
  /** Webhook timeout. Default 5000. */
  readonly notifyTimeoutMs?: number;
  /** `notify` with channel `immune` hands the notification to this function (e.g. an immune service's `publishEvent`). */
  readonly publish?: (notification: PlaybookNotification) => unknown;
  /** Receives follow-ups of `create_followup` (default: logged). */
  readonly onFollowUp?: (task: FollowUpTask) => void | Promise<void>;
  /** Where `notify` logs (besides the run's logger). */
  readonly logger?: Logger;
  readonly now?: () => number;
}

const SIGNALS = ['SIGTERM', 'SIGKILL', 'SIGINT', 'SIGHUP'] as const;
const SEVERITIES = ['info', 'warning', 'critical'] as const;
const CHANNELS = ['log', 'webhook', 'immune'] as const;

function invalid(action: string, field: string, message: string): GuardError {
  return new GuardError('INVALID_INPUT', `${action}: ${message}`, { details: { field, action } });
}

/**
 * An {@link ActionRegistry} with the built-in actions for the objects given (see the README for each
 * action's params, effect and how the effect is measured): `blacklist_actor`, `rate_limit_actor`,
 * `rate_limit_topic`, `restart_message_bus`, `restart_component`, `throttle`, `pause_tasks`,
 * `enable_rate_limit`, `kill_process`, `kill_runaway`, `scale_down`, `identify_hogs`, `notify`,
 * `assess`, `create_followup`, `wait` and their undo actions.
 *
 * @example
 * const actions = createActionRegistry({ messageBus: bus, components: watchdog, limiter, tasks, processes, workers: processes.pool('workers') });
 */
export function createActionRegistry(deps: BuiltinActionDeps = {}): ActionRegistry {
  const registry = new ActionRegistry();
  const now = deps.now ?? Date.now;
  const { messageBus: bus, fleet, components, limiter, tasks, processes, workers } = deps;

  if (bus) {
    registry.register('blacklist_actor', (p) => {
      const actor = stringParam('blacklist_actor', p, 'actor');
      const durationMs = durationParam('blacklist_actor', p, 'duration', 600_000);
      if (fleet) fleet.blacklist(actor, { durationMs, reason: 'playbook blacklist_actor' });
      else bus.blacklist(actor, { durationMs });
      // The effect, read back: the bus now refuses the actor.
      return { actor, blacklisted: bus.isBlacklisted(actor), expiresAt: now() + durationMs };
    });
    registry.register('unblacklist_actor', (p) => {
      const actor = stringParam('unblacklist_actor', p, 'actor');
      const removed = bus.isBlacklisted(actor);
      if (fleet) fleet.unblacklist(actor);
      else bus.unblacklist(actor);
      return { actor, removed };
    });
    const limitActor = (action: string, p: Readonly<Record<string, unknown>>, topic: string | undefined) => {
      const actor = stringParam(action, p, 'actor');
      const ratePerSec = numberParam(action, p, 'rate_per_sec', 1);
      const durationMs = durationParam(action, p, 'duration', 300_000);
      if (fleet) {
        fleet.limitActor(actor, ratePerSec, { durationMs, ...(topic === undefined ? {} : { topic }), reason: `playbook ${action}` });
        return { scope: 'actor', actor, topic: topic ?? '**', ratePerSec, expiresAt: now() + durationMs };
      }
      return { scope: 'actor', ...bus.limitActor(actor, ratePerSec, { durationMs, ...(topic === undefined ? {} : { topic }) }) };
    };
    registry.register('rate_limit_actor', (p) => limitActor('rate_limit_actor', p, p.topic === undefined ? undefined : stringParam('rate_limit_actor', p, 'topic')));
    registry.register('rate_limit_topic', (p) => {
      const topic = stringParam('rate_limit_topic', p, 'topic');
      if (p.actor !== undefined) return limitActor('rate_limit_topic', p, topic);
      if (p.scope !== 'all') {
        throw invalid('rate_limit_topic', 'actor', 'give "actor" (limits only that actor on the topic) or scope: all (limits every publisher of the topic, legitimate ones too)');
      }
      const ratePerSec = numberParam('rate_limit_topic', p, 'rate_per_sec', 10);
      const durationMs = durationParam('rate_limit_topic', p, 'duration', 300_000);
      if (fleet) fleet.limitTopic(topic, ratePerSec, { durationMs, reason: 'playbook rate_limit_topic' });
      else bus.setRateLimit(topic, ratePerSec, { durationMs });
      return { scope: 'all', topic, ratePerSec, expiresAt: now() + durationMs };
    });
    registry.register('clear_rate_limit', (p) => {
      const topic = stringParam('clear_rate_limit', p, 'topic');
      if (p.actor !== undefined) return { removed: bus.clearActorLimit(stringParam('clear_rate_limit', p, 'actor'), topic) > 0 };
      return { removed: bus.clearRateLimit(topic) };
    });
    registry.register('restart_message_bus', () => {
      const report = bus.restart();
      // Measured: a canary goes through the fresh routing and reaches its subscriber.
      return { ...report, canaryDelivered: bus.canary().delivered };
    });
  }

  if (components) {
    registry.register('restart_component', async (p, ctx) => {
      const component = stringParam('restart_component', p, 'component');
      await components.restart(component, `playbook ${ctx.playbook}`);
      return { component, restarted: true };
    });
  }

  if (limiter) {
    registry.register('throttle', (p) => {
      const key = stringParam('throttle', p, 'target');
      const durationMs = durationParam('throttle', p, 'duration', 60_000);
      const observedRatePerSec = limiter.observedRate(key);
      let ratePerSec: number;
      if (p.percent !== undefined) {
        const percent = numberParam('throttle', p, 'percent');
        if (percent > 100) throw invalid('throttle', 'percent', 'percent must be between 0 and 100');
        // Keep `percent` of the rate the work ran at, never less than `min_rate_per_sec`.
        ratePerSec = Math.max(numberParam('throttle', p, 'min_rate_per_sec', 0.1), Math.round(observedRatePerSec * percent) / 100);
      } else ratePerSec = numberParam('throttle', p, 'rate_per_sec');
      return { ...limiter.setLimit(key, ratePerSec, { durationMs }), observedRatePerSec };
    });
    registry.register('enable_rate_limit', (p) => {
      const key = stringParam('enable_rate_limit', p, 'key', 'api');
      return limiter.setLimit(key, numberParam('enable_rate_limit', p, 'rate_per_sec'), { durationMs: durationParam('enable_rate_limit', p, 'duration', 60_000) });
    });
    registry.register('disable_rate_limit', (p) => ({ removed: limiter.clear(stringParam('disable_rate_limit', p, 'key', 'api')) }));
  }

  if (tasks) {
    registry.register('pause_tasks', (p) => {
      const group = stringParam('pause_tasks', p, 'group');
      const durationMs = durationParam('pause_tasks', p, 'duration', 60_000);
      const waiting = tasks.pause(group, { durationMs });
      return { group, paused: tasks.isPaused(group), until: now() + durationMs, waiting };
    });
    registry.register('resume_tasks', (p) => ({ resumed: tasks.resume(stringParam('resume_tasks', p, 'group')) }));
  }

  if (processes) {
    registry.register('kill_process', (p) => {
      const target = p.pid ?? p.name ?? p.id;
      if (typeof target !== 'string' && typeof target !== 'number') throw invalid('kill_process', 'pid', 'give pid, name or id');
      const signal = (p.signal ?? 'SIGTERM') as NodeJS.Signals;
      if (!(SIGNALS as readonly string[]).includes(signal)) throw invalid('kill_process', 'signal', 'signal must be SIGTERM, SIGKILL, SIGINT or SIGHUP');
      const killed = processes.kill(target, signal);
      return { id: killed.id, name: killed.name, pid: killed.pid, signal };
    });
    registry.register('kill_runaway', async (p, ctx) => {
      const measure = p.measure ?? 'demand';
      if (measure !== 'demand' && measure !== 'cpu') throw invalid('kill_runaway', 'measure', 'measure must be demand or cpu');
      const signal = p.signal ?? 'SIGTERM';
      if (!(SIGNALS as readonly string[]).includes(signal)) throw invalid('kill_runaway', 'signal', 'signal must be SIGTERM, SIGKILL, SIGINT or SIGHUP');
      const result = await processes.killRunaway({
        thresholdPercent: numberParam('kill_runaway', p, 'threshold_percent', 50),
        measure,
        intervalMs: durationParam('kill_runaway', p, 'interval', 500),
        graceMs: durationParam('kill_runaway', p, 'grace', 2_000),
        signal,
        ...(p.group === undefined ? {} : { group: stringParam('kill_runaway', p, 'group') }),
        abortSignal: ctx.signal,
      });
      const stuck = result.killed.filter((k) => !k.exited);
      if (stuck.length > 0) throw invalid('kill_runaway', 'pid', `processes ${stuck.map((k) => k.pid).join(', ')} did not exit`);
      return result;
    });
  }

  if (workers) {
    registry.register('scale_down', async (p) => {
      const count = numberParam('scale_down', p, 'count', 1);
      const min = numberParam('scale_down', p, 'min', 0);
      if (!Number.isInteger(count) || !Number.isInteger(min)) throw invalid('scale_down', 'count', 'count and min must be integers');
      const before = workers.size;
      const wanted = Math.max(0, Math.min(count, before - min));
      const removed = wanted === 0 ? 0 : await workers.scaleDown(wanted);
      const after = workers.size;
      if (removed < wanted) throw invalid('scale_down', 'count', `asked to stop ${wanted} workers, ${removed} stopped (size ${before} -> ${after})`);
      return { before, after, removed };
    });
  }

  registry.register('identify_hogs', async (p, ctx) => {
    const scope = p.scope ?? 'cgroup';
    if (scope !== 'cgroup' && scope !== 'host') throw invalid('identify_hogs', 'scope', 'scope must be cgroup or host');
    const top = await topHostProcesses({
      top: numberParam('identify_hogs', p, 'top', 5),
      intervalMs: durationParam('identify_hogs', p, 'interval', 250),
      scope,
      signal: ctx.signal,
    });
    const mem = process.memoryUsage();
    return {
      scope: top.scope,
      ...(top.cgroup === undefined ? {} : { cgroup: top.cgroup }),
      sampledMs: top.sampledMs,
      scanned: top.scanned,
      hogs: top.processes.map((h) => ({ ...h, owned: processes?.owns(h.pid) ?? false, self: h.pid === process.pid })),
      self: { pid: process.pid, rssBytes: mem.rss, heapUsedBytes: mem.heapUsed, activeResources: countResources() },
    };
  });

  registry.register('notify', async (p, ctx) => {
    const message = stringParam('notify', p, 'message');
    const severity = p.severity ?? 'warning';
    if (!(SEVERITIES as readonly string[]).includes(severity)) throw invalid('notify', 'severity', 'severity must be info, warning or critical');
    const raw: unknown = p.channels ?? p.channel ?? 'log';
    const channels = Array.isArray(raw) ? raw : [raw];
    if (channels.length === 0 || channels.some((c) => !(CHANNELS as readonly unknown[]).includes(c))) {
      throw invalid('notify', 'channel', `channel must be log, webhook or immune (or a list of them), got ${JSON.stringify(raw)}`);
    }
    const notification: PlaybookNotification = { playbook: ctx.playbook, runId: ctx.runId, step: ctx.step, severity, message, event: ctx.event, at: now() };
    const delivered: Record<string, unknown> = {};
    // Always logged, whatever the channels: the log is the last resort when a channel is down.
    (deps.logger ?? ctx.logger).warn({ playbook: ctx.playbook, runId: ctx.runId, step: ctx.step, severity, message }, `playbook notification: ${message}`);
    if (channels.includes('log')) delivered.log = true;
    if (channels.includes('webhook')) {
      const url = typeof deps.notifyWebhookUrl === 'function' ? deps.notifyWebhookUrl() : deps.notifyWebhookUrl;
      if (!url) throw new GuardError('INVALID_OPTION', 'notify: channel webhook needs notifyWebhookUrl in the action deps', { details: { field: 'notifyWebhookUrl' } });
      const signal = AbortSignal.any([ctx.signal, AbortSignal.timeout(deps.notifyTimeoutMs ?? 5_000)]);
      const response = await fetch(url, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(notification), signal });
      await response.body?.cancel();
      if (!response.ok) throw invalid('notify', 'channel', `webhook answered ${response.status}`);
      delivered.webhook = { status: response.status };
    }
    if (channels.includes('immune')) {
      if (!deps.publish) throw new GuardError('INVALID_OPTION', 'notify: channel immune needs publish in the action deps', { details: { field: 'publish' } });
      const id = await deps.publish(notification);
      delivered.immune = typeof id === 'string' ? { id } : true;
    }
    return { delivered, severity };
  });

  registry.register('create_followup', async (p, ctx) => {
    const task: FollowUpTask = {
      title: stringParam('create_followup', p, 'title'),
      queue: typeof p.queue === 'string' ? p.queue : 'tickets',
      playbook: ctx.playbook,
      runId: ctx.runId,
      dueAt: now() + (p.delay === undefined ? 0 : durationParam('create_followup', p, 'delay')),
      details: typeof p.details === 'object' && p.details !== null ? (p.details as Record<string, unknown>) : {},
    };
    if (deps.onFollowUp) await deps.onFollowUp(task);
    else (deps.logger ?? ctx.logger).info({ ...task }, `follow-up: ${task.title}`);
    return task;
  });

  registry.register('assess', async (p, ctx) => {
    const names = p.probes;
    if (!Array.isArray(names) || names.some((n) => typeof n !== 'string')) {
      throw new GuardError('INVALID_INPUT', 'assess: param "probes" must be a list of probe names', { details: { field: 'probes', action: 'assess' } });
    }
    const out: Record<string, unknown> = {};
    for (const name of names as string[]) out[name.replace(/\./g, '_')] = await ctx.probe(name);
    return out;
  });

  registry.register('wait', async (p, ctx) => {
    const ms = durationParam('wait', p, 'duration');
    await sleep(ms, { signal: ctx.signal });
    return { waitedMs: ms };
  });

  return registry;
}

function countResources(): Record<string, number> {
  const counts: Record<string, number> = {};
  for (const type of process.getActiveResourcesInfo()) counts[type] = (counts[type] ?? 0) + 1;
  return counts;
}

/** The objects the built-in probes read. */
export interface BuiltinProbeDeps {
  /** `bus.canary`, `bus.healthy` (= the canary), `bus.blacklisted`, `bus.restarts`, `bus.subscribers`, `acl.violations_since`. */
  readonly messageBus?: MessageBus;
  /** `acl.violations_per_second`, `acl.violations_of` (`actor`). */
  readonly aclMonitor?: AclViolationMonitor;
  /** `pressure.cpu_percent`, `pressure.memory_percent`, `pressure.disk_percent`, `pressure.event_loop_percent`, `pressure.under_pressure`, `pressure.alarm` (`resource`). */
  readonly pressure?: ResourcePressureMonitor;
  /** `component.state` (`component`). */
  readonly watchdog?: HeartbeatWatchdog;
  /** `processes.count` (`group`), `processes.over_cpu` (`threshold_percent`, `group`). */
  readonly processes?: ProcessRegistry;
  /** `workers.size`. */
  readonly workers?: WorkerPool;
  /**
   * `http.status` (`path`): GETs this base URL and returns the status, 0 when it does not answer. Pass a
   * function when the URL is known only once the server listens: it is read at each probe, never before.
   * Configured in code, never taken from YAML.
   */
  readonly healthUrl?: string | (() => string | undefined);
  /** `http.status` timeout. Default 2000. */
  readonly httpTimeoutMs?: number;
}

/**
 * A {@link ProbeRegistry} with the built-in probes for the objects given.
 *
 * @example
 * const probes = createProbeRegistry({ messageBus: bus, aclMonitor, pressure, healthUrl: () => server.url });
 */
export function createProbeRegistry(deps: BuiltinProbeDeps = {}): ProbeRegistry {
  const registry = new ProbeRegistry();
  const { messageBus: bus, aclMonitor, pressure, watchdog, processes, workers } = deps;
  if (bus) {
    registry.register('bus.canary', () => bus.canary().delivered);
    // Kept for old playbooks: it used to be "open", which cannot fail; now it is the canary.
    registry.register('bus.healthy', () => bus.canary().delivered);
    registry.register('bus.blacklisted', (p) => (p.actor === undefined ? bus.health().blacklisted.length : bus.isBlacklisted(stringParam('bus.blacklisted', p, 'actor'))));
    registry.register('bus.restarts', () => bus.health().restarts);
    registry.register('bus.subscribers', () => bus.health().subscribers);
    registry.register('acl.violations_since', (p) => bus.violationsWithin(durationParam('acl.violations_since', p, 'window', 1_000)));
  }
  if (aclMonitor) {
    registry.register('acl.violations_per_second', () => aclMonitor.violationsPerSecond());
    registry.register('acl.violations_of', (p) => aclMonitor.violationsOf(stringParam('acl.violations_of', p, 'actor')));
  }
  if (pressure) {
    for (const resource of ['cpu', 'memory', 'disk', 'event_loop'] as const) {
      registry.register(`pressure.${resource}_percent`, () => pressure.levels().find((l) => l.resource === resource)?.percent ?? null);
    }
    registry.register('pressure.under_pressure', () => pressure.isUnderPressure());
    // One resource's alarm: it clears only after the level stayed below the clear level for the monitor's
    // clearSustainMs, so a check on it is a sustained measurement, not one lucky sample.
    registry.register('pressure.alarm', (p) => {
      const resource = stringParam('pressure.alarm', p, 'resource', 'cpu');
      const level = pressure.levels().find((l) => l.resource === resource);
      if (!level) throw new GuardError('INVALID_INPUT', `pressure.alarm: unknown resource ${JSON.stringify(resource)}`, { details: { field: 'resource' } });
      return level.alarm;
    });
  }
  if (watchdog) {
    registry.register('component.state', (p) => watchdog.state(stringParam('component.state', p, 'component'))?.state ?? null);
  }
  if (processes) {
    registry.register('processes.count', (p) => processes.list().filter((x) => p.group === undefined || x.group === p.group).length);
    registry.register('processes.over_cpu', async (p, ctx) => {
      const threshold = numberParam('processes.over_cpu', p, 'threshold_percent', 50);
      const usage = await processes.sampleCpu({
        intervalMs: durationParam('processes.over_cpu', p, 'interval', 250),
        ...(p.group === undefined ? {} : { group: stringParam('processes.over_cpu', p, 'group') }),
        signal: ctx.signal,
      });
      return usage.filter((u) => Math.max(u.cpuPercent ?? 0, u.demandPercent ?? 0) >= threshold).length;
    });
  }
  if (workers) registry.register('workers.size', () => workers.size);
  if (deps.healthUrl !== undefined) {
    const baseOf = typeof deps.healthUrl === 'function' ? deps.healthUrl : () => deps.healthUrl as string;
    registry.register('http.status', async (p, ctx) => {
      const path = p.path === undefined ? '' : stringParam('http.status', p, 'path');
      if (path && !path.startsWith('/')) throw new GuardError('INVALID_INPUT', 'http.status: path must start with /', { details: { field: 'path' } });
      const base = baseOf();
      if (!base) return 0;
      try {
        const url = path ? new URL(path, base).toString() : base;
        const response = await fetch(url, { signal: AbortSignal.any([ctx.signal, AbortSignal.timeout(deps.httpTimeoutMs ?? 2_000)]) });
        await response.body?.cancel();
        return response.status;
      } catch {
        return 0;
      }
    });
  }
  return registry;
}
