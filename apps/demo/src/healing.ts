import { fileURLToPath } from 'node:url';
import type { Registry } from 'prom-client';
import { GuardError, type Env, type GuardBus, type GuardMode, type Logger } from '@guard/core';
import {
  AclViolationMonitor,
  HeartbeatWatchdog,
  MessageBus,
  PlaybookEngine,
  RateLimiter,
  ResourcePressureMonitor,
  TaskGate,
  createActionRegistry,
  createProbeRegistry,
  createSystemSampler,
  loadPlaybooks,
  type ActionRegistry,
  type PlaybookNotification,
} from '@guard/playbooks';
import { createServiceCpu } from './service-cpu.js';
import { createWorkload, type Workload } from './workload.js';

/** The self-healing half of the demo: ACL message bus, monitors, watchdog, the YAML playbooks and the work they act on. */
export interface Healing {
  readonly messageBus: MessageBus;
  readonly aclMonitor: AclViolationMonitor;
  readonly pressure: ResourcePressureMonitor;
  readonly watchdog: HeartbeatWatchdog;
  readonly engine: PlaybookEngine;
  readonly limiter: RateLimiter;
  readonly tasks: TaskGate;
  /** Background jobs, heavy tasks, worker pool and owned child processes. */
  readonly workload: Workload;
  /** The watched background worker; chaos `heartbeat-pause` stops its heartbeats. */
  readonly worker: { paused: boolean; restarts: number };
  close(): Promise<void>;
}

/** Where notifications go besides the log (the demo passes its immune service). */
export interface NotificationSink {
  publishEvent(input: { severity: 'INFO' | 'WARNING' | 'CRITICAL'; type: 'SELF_HEALING_ACTION'; module?: string; message: string; meta?: Record<string, unknown> }): Promise<string>;
}

/** Options for {@link createHealing}. */
export interface HealingDeps {
  readonly env: Env;
  readonly bus: GuardBus;
  readonly registry: Registry;
  readonly logger: Logger;
  /** The demo's own health endpoint, probed by the CPU playbook's verification; read when probed (the port is known only after listen). */
  readonly healthUrl: () => string;
  /** The guard's mode per component: playbooks and restarts act only in `full`, as the detectors' sanitizers do. Default: always `full`. */
  readonly modeOf?: (component: string) => GuardMode;
  /** The immune log: every playbook notification is recorded there too. */
  readonly immune?: NotificationSink;
  /** Folder of playbook YAML files. Default `GUARD_PLAYBOOKS_DIR`, else `apps/demo/playbooks`. */
  readonly playbooksDir?: string;
}

const HEARTBEAT_MS = 100;

/** Loads the playbooks and wires the monitors to the engine, over the demo's real workload. */
export async function createHealing(deps: HealingDeps): Promise<Healing> {
  const { bus, registry, logger, env } = deps;
  const modeOf = deps.modeOf ?? (() => 'full' as const);
  const messageBus = new MessageBus({
    name: 'app',
    acl: { api: ['analysis.*', 'notifications.*'], scheduler: ['analysis.*', 'control.*'], dashboard: ['notifications.*'] },
    controlTopics: ['control.*'],
    bus,
    registry,
    logger,
  });
  const aclMonitor = new AclViolationMonitor({ messageBus, bus, logger });
  const limiter = new RateLimiter();
  const tasks = new TaskGate();
  const workload = createWorkload({ limiter, tasks });

  // CPU is the service's own demand (this process and its children) against its CPU limit; memory, disk and the
  // event loop come from the package's system sampler.
  const system = createSystemSampler({ cpuSource: 'process' });
  const serviceCpu = createServiceCpu();
  const pressure = new ResourcePressureMonitor({
    ...ResourcePressureMonitor.optionsFromEnv(env),
    sampler: async () => {
      const [reading, cpu] = await Promise.all([system.sample(), serviceCpu.sample()]);
      return { ...reading, cpuPercent: cpu === undefined ? 0 : Math.min(100, cpu.percent) };
    },
    bus,
    registry,
    logger,
    autoStart: false,
  });
  const watchdog = new HeartbeatWatchdog({ bus, registry, logger });

  const webhookUrl = (): string | undefined => env.GUARD_NOTIFY_WEBHOOK_URL || undefined;
  const immune = deps.immune;
  const actions = createActionRegistry({
    messageBus,
    components: watchdog,
    limiter,
    tasks,
    processes: workload.processes,
    workers: workload.pool,
    notifyWebhookUrl: webhookUrl,
    ...(immune
      ? {
          publish: (n: PlaybookNotification) =>
            immune.publishEvent({
              severity: n.severity === 'critical' ? 'CRITICAL' : n.severity === 'info' ? 'INFO' : 'WARNING',
              type: 'SELF_HEALING_ACTION',
              module: 'playbooks.notify',
              message: n.message,
              meta: { playbook: n.playbook, runId: n.runId, step: n.step },
            }),
        }
      : {}),
    logger,
  });
  webhookOnlyWhenConfigured(actions, webhookUrl);
  // The health URL is read at each probe: server.ts learns its port only after listen, long after this runs.
  const probes = createProbeRegistry({ messageBus, aclMonitor, pressure, watchdog, processes: workload.processes, workers: workload.pool, healthUrl: deps.healthUrl });

  const engine = new PlaybookEngine({ bus, registry, logger, actions, probes });
  const dir = deps.playbooksDir ?? env.GUARD_PLAYBOOKS_DIR ?? fileURLToPath(new URL('../playbooks/', import.meta.url));
  try {
    for (const playbook of await loadPlaybooks(dir)) engine.register(playbook);
  } catch (error) {
    // A bad playbook folder must not leave the worker processes and monitors behind.
    await Promise.allSettled([engine.close(), aclMonitor.close(), pressure.close(), watchdog.close(), messageBus.close(), workload.close()]);
    system.close();
    throw error;
  }

  // Outside `full` mode a trigger still runs, as a dry run: the plan is logged and nothing changes.
  const trigger = (event: string, data: Record<string, unknown>, reason: string) =>
    void engine.trigger(event, data, { reason, dryRun: modeOf('playbooks') !== 'full' }).catch((error: unknown) => logger.error({ err: error, event }, 'playbook trigger failed'));
  const offAcl = aclMonitor.onAlarm((alarm) => trigger('message_bus.acl_violation', { ...alarm }, alarm.reason));
  const offPressure = pressure.onChange((change) => {
    if (change.state === 'alarm') trigger(`resource_pressure.${change.resource}`, { ...change }, `${change.resource}_pressure`);
  });
  pressure.start();

  // A background worker that proves it is alive; a missed heartbeat restarts it through the watchdog (in full mode).
  const worker = { paused: false, restarts: 0 };
  const beat = setInterval(() => {
    if (!worker.paused) watchdog.heartbeat('results-worker');
  }, HEARTBEAT_MS);
  beat.unref();
  watchdog.register('results-worker', {
    deadlineMs: 5 * HEARTBEAT_MS,
    restart: () => {
      const mode = modeOf('heartbeat');
      if (mode !== 'full') throw new GuardError('INVALID_OPTION', `restart of results-worker skipped: heartbeat mode is ${mode}`, { details: { mode } });
      worker.restarts += 1;
      worker.paused = false;
      watchdog.heartbeat('results-worker');
    },
  });

  let closed = false;
  return {
    messageBus,
    aclMonitor,
    pressure,
    watchdog,
    engine,
    limiter,
    tasks,
    workload,
    worker,
    close: async () => {
      if (closed) return;
      closed = true;
      clearInterval(beat);
      offAcl();
      offPressure();
      await engine.close();
      await Promise.all([aclMonitor.close(), pressure.close(), watchdog.close(), messageBus.close(), workload.close()]);
      system.close();
    },
  };
}

/**
 * The playbooks list `webhook` among their notify channels; the URL is configuration (`GUARD_NOTIFY_WEBHOOK_URL`),
 * so without one the channel is dropped here instead of failing the step (the log and the immune log still get it).
 */
function webhookOnlyWhenConfigured(actions: ActionRegistry, url: () => string | undefined): void {
  const notify = actions.get('notify');
  actions.register(
    'notify',
    (params, ctx) => {
      const raw: unknown = params.channels ?? params.channel;
      if (url() || !Array.isArray(raw) || !raw.includes('webhook')) return notify(params, ctx);
      const { channel: _channel, ...rest } = params;
      return notify({ ...rest, channels: raw.filter((c) => c !== 'webhook') }, ctx);
    },
    { replace: true },
  );
}
