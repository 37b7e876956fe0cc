import { GuardError } from '@guard/core';
import type { Logger } from '@guard/core';
import { ActionRegistry, ProbeRegistry } from './action-registry.js';
import type { AclViolationMonitor } from './acl-violation-monitor.js';
import type { MessageBus } from './message-bus.js';
import { durationParam, numberParam, stringParam } from './params.js';
import type { ProcessRegistry } from './process-registry.js';
import type { RateLimiter } from './rate-limiter.js';
import type { ResourcePressureMonitor } from './resource-pressure-monitor.js';
import type { TaskGate } from './task-gate.js';
import type { HeartbeatWatchdog } from './heartbeat-watchdog.js';
import './declarations.js';

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

/** The real objects the built-in actions act on; an action is registered only when its object is given. */
export interface BuiltinActionDeps {
  /** `blacklist_actor`, `unblacklist_actor`, `rate_limit_topic`, `clear_rate_limit`, `restart_message_bus`. */
  readonly messageBus?: MessageBus;
  /** `restart_component`. */
  readonly components?: ComponentRestarter;
  /** `throttle`, `enable_rate_limit`, `disable_rate_limit`. */
  readonly limiter?: RateLimiter;
  /** `pause_tasks`, `resume_tasks`. */
  readonly tasks?: TaskGate;
  /** `kill_process`, `identify_hogs` (children); `identify_hogs` works without it too. */
  readonly processes?: ProcessRegistry;
  /** `notify` with `channel: webhook` posts JSON here (the URL is configured in code, never taken from YAML). */
  readonly notifyWebhookUrl?: string;
  /** Webhook timeout. Default 5000. */
  readonly notifyTimeoutMs?: number;
  /** Receives follow-ups of `create_followup` (default: logged). */
  readonly onFollowUp?: (task: FollowUpTask) => void | Promise<void>;
  /** Where `notify` logs (besides the run's logger). */
  readonly logger?: Logger;
  readonly now?: () => number;
}

/**
 * An {@link ActionRegistry} with the built-in actions for the objects given: `blacklist_actor`,
 * `rate_limit_topic`, `restart_component`, `throttle`, `pause_tasks`, `enable_rate_limit`, `notify`,
 * `kill_process` (guard-started children only), `identify_hogs`, `assess`, `create_followup`, `wait`
 * and their undo actions.
 *
 * @example
 * const actions = createActionRegistry({ messageBus: bus, components: watchdog, limiter, tasks, processes });
 */
export function createActionRegistry(deps: BuiltinActionDeps = {}): ActionRegistry {
  const registry = new ActionRegistry();
  const now = deps.now ?? Date.now;
  const { messageBus: bus, components, limiter, tasks, processes } = deps;

  if (bus) {
    registry.register('blacklist_actor', (p) => {
      const actor = stringParam('blacklist_actor', p, 'actor');
      const durationMs = durationParam('blacklist_actor', p, 'duration', 600_000);
      bus.blacklist(actor, { durationMs });
      return { actor, expiresAt: now() + durationMs };
    });
    registry.register('unblacklist_actor', (p) => ({ actor: p.actor, removed: bus.unblacklist(stringParam('unblacklist_actor', p, 'actor')) }));
    registry.register('rate_limit_topic', (p) => {
      const topic = stringParam('rate_limit_topic', p, 'topic');
      const ratePerSec = numberParam('rate_limit_topic', p, 'rate_per_sec', 10);
      const durationMs = durationParam('rate_limit_topic', p, 'duration', 300_000);
      bus.setRateLimit(topic, ratePerSec, { durationMs });
      return { topic, ratePerSec, expiresAt: now() + durationMs };
    });
    registry.register('clear_rate_limit', (p) => ({ removed: bus.clearRateLimit(stringParam('clear_rate_limit', p, 'topic')) }));
    registry.register('restart_message_bus', () => {
      bus.restart();
      return { restarts: bus.health().restarts };
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
    const setLimit = (name: string, keyParam: string, fallbackKey?: string) =>
      registry.register(name, (p) => {
        const key = stringParam(name, p, keyParam, fallbackKey);
        return limiter.setLimit(key, numberParam(name, p, 'rate_per_sec'), { durationMs: durationParam(name, p, 'duration', 60_000) });
      });
    setLimit('throttle', 'target');
    setLimit('enable_rate_limit', 'key', 'api');
    registry.register('disable_rate_limit', (p) => ({ removed: limiter.clear(stringParam('disable_rate_limit', p, 'key', 'api')) }));
  }

  if (tasks) {
    registry.register('pause_tasks', (p) => {
      const group = stringParam('pause_tasks', p, 'group');
      const durationMs = durationParam('pause_tasks', p, 'duration', 60_000);
      const waiting = tasks.pause(group, { durationMs });
      return { group, until: now() + durationMs, waiting };
    });
    registry.register('resume_tasks', (p) => ({ resumed: tasks.resume(stringParam('resume_tasks', p, 'group')) }));
  }

  if (processes) {
    registry.register('kill_process', (p) => {
      const target = p.pid ?? p.name ?? p.id;
      if (typeof target !== 'string' && typeof target !== 'number') {
        throw new GuardError('INVALID_INPUT', 'kill_process: give pid, name or id', { details: { field: 'pid', action: 'kill_process' } });
      }
      const signal = (p.signal ?? 'SIGTERM') as NodeJS.Signals;
      if (!['SIGTERM', 'SIGKILL', 'SIGINT', 'SIGHUP'].includes(signal)) {
        throw new GuardError('INVALID_INPUT', `kill_process: signal must be SIGTERM, SIGKILL, SIGINT or SIGHUP`, { details: { field: 'signal', action: 'kill_process' } });
      }
      const killed = processes.kill(target, signal);
      return { id: killed.id, name: killed.name, pid: killed.pid, signal };
    });
  }

  registry.register('identify_hogs', async (p) => {
    const top = numberParam('identify_hogs', p, 'top', 5);
    const children = processes ? await processes.usage() : [];
    const hogs = children
      .filter((c) => c.cpuPercent !== undefined)
      .sort((a, b) => (b.cpuPercent ?? 0) - (a.cpuPercent ?? 0))
      .slice(0, top)
      .map((c) => ({ id: c.id, name: c.name, pid: c.pid, cpuPercent: c.cpuPercent }));
    const mem = process.memoryUsage();
    return { self: { pid: process.pid, rssBytes: mem.rss, heapUsedBytes: mem.heapUsed, activeResources: countResources() }, hogs };
  });

  registry.register('notify', async (p, ctx) => {
    const message = stringParam('notify', p, 'message');
    const channel = p.channel ?? 'log';
    const severity = p.severity ?? 'warning';
    if (channel !== 'log' && channel !== 'webhook') {
      throw new GuardError('INVALID_INPUT', `notify: channel must be log or webhook, got ${JSON.stringify(channel)}`, { details: { field: 'channel', action: 'notify' } });
    }
    const record = { playbook: ctx.playbook, runId: ctx.runId, step: ctx.step, severity, message };
    (deps.logger ?? ctx.logger).warn(record, `playbook notification: ${message}`);
    if (channel === 'log') return { channel, delivered: true };
    if (!deps.notifyWebhookUrl) {
      throw new GuardError('INVALID_OPTION', 'notify: channel webhook needs notifyWebhookUrl in the action deps', { details: { field: 'notifyWebhookUrl' } });
    }
    const signal = AbortSignal.any([ctx.signal, AbortSignal.timeout(deps.notifyTimeoutMs ?? 5_000)]);
    const response = await fetch(deps.notifyWebhookUrl, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ ...record, event: ctx.event, at: now() }),
      signal,
    });
    await response.body?.cancel();
    if (!response.ok) throw new GuardError('INVALID_INPUT', `notify: webhook answered ${response.status}`, { details: { status: response.status } });
    return { channel, delivered: true, status: response.status };
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
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(done, ms);
      function done(): void {
        ctx.signal.removeEventListener('abort', onAbort);
        resolve();
      }
      function onAbort(): void {
        clearTimeout(timer);
        reject(ctx.signal.reason);
      }
      ctx.signal.addEventListener('abort', onAbort, { once: true });
    });
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
  /** `bus.healthy`, `bus.blacklisted`, `bus.restarts`. */
  readonly messageBus?: MessageBus;
  /** `acl.violations_per_second`, `acl.violations_of` (`actor`). */
  readonly aclMonitor?: AclViolationMonitor;
  /** `pressure.cpu_percent`, `pressure.memory_percent`, `pressure.disk_percent`, `pressure.event_loop_percent`, `pressure.under_pressure`. */
  readonly pressure?: ResourcePressureMonitor;
  /** `component.state` (`component`). */
  readonly watchdog?: HeartbeatWatchdog;
  /** `http.status` (`path`): GETs this base URL (configured in code) and returns the status, 0 when it does not answer. */
  readonly healthUrl?: string;
  /** `http.status` timeout. Default 2000. */
  readonly httpTimeoutMs?: number;
}

/**
 * A {@link ProbeRegistry} with the built-in probes for the objects given.
 *
 * @example
 * const probes = createProbeRegistry({ messageBus: bus, aclMonitor, pressure, healthUrl: 'http://127.0.0.1:3000/self-check' });
 */
export function createProbeRegistry(deps: BuiltinProbeDeps = {}): ProbeRegistry {
  const registry = new ProbeRegistry();
  const { messageBus: bus, aclMonitor, pressure, watchdog } = deps;
  if (bus) {
    registry.register('bus.healthy', () => bus.health().healthy);
    registry.register('bus.blacklisted', () => bus.health().blacklisted.length);
    registry.register('bus.restarts', () => bus.health().restarts);
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
  }
  if (watchdog) {
    registry.register('component.state', (p) => watchdog.state(stringParam('component.state', p, 'component'))?.state ?? null);
  }
  if (deps.healthUrl) {
    const base = deps.healthUrl;
    registry.register('http.status', async (p, ctx) => {
      const path = p.path === undefined ? '' : stringParam('http.status', p, 'path');
      if (path && !path.startsWith('/')) throw new GuardError('INVALID_INPUT', 'http.status: path must start with /', { details: { field: 'path' } });
      const url = path ? new URL(path, base).toString() : base;
      try {
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
