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
} from '@guard/playbooks';
import { createServiceCpu } from './service-cpu.js';
import { createWorkload, type Workload } from './workload.js';
import { registerWorkloadActions } from './workload-actions.js';

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

  const actions = createActionRegistry({
    messageBus,
    components: watchdog,
    limiter,
    tasks,
    processes: workload.processes,
    logger,
    ...(env.GUARD_NOTIFY_WEBHOOK_URL ? { notifyWebhookUrl: env.GUARD_NOTIFY_WEBHOOK_URL } : {}),
  });
  registerWorkloadActions(actions, workload);
  if (deps.immune) recordNotifications(actions, deps.immune, logger);
  const probes = createProbeRegistry({ messageBus, aclMonitor, pressure, watchdog });
  // Read the URL when probed: server.ts learns its port only after listen, long after this runs.
  probes.register('http.status', async (p, ctx) => {
    const path = typeof p.path === 'string' ? p.path : '';
    try {
      const response = await fetch(`${deps.healthUrl()}${path}`, { signal: AbortSignal.any([ctx.signal, AbortSignal.timeout(2_000)]) });
      await response.body?.cancel();
      return response.status;
    } catch {
      return 0;
    }
  }, { replace: true });

  const engine = new PlaybookEngine({ bus, registry, logger, actions, probes });
  const dir = deps.playbooksDir ?? env.GUARD_PLAYBOOKS_DIR ?? fileURLToPath(new URL('../playbooks/', import.meta.url));
  for (const playbook of await loadPlaybooks(dir)) engine.register(playbook);

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

/** Wraps `notify` so every notification also lands in the immune log (the log and webhook stay as they are). */
function recordNotifications(actions: ActionRegistry, immune: NotificationSink, logger: Logger): void {
  const notify = actions.get('notify');
  actions.register(
    'notify',
    async (params, ctx) => {
      const output = await notify(params, ctx);
      const severity = params.severity === 'critical' ? 'CRITICAL' : params.severity === 'info' ? 'INFO' : 'WARNING';
      try {
        const id = await immune.publishEvent({
          severity,
          type: 'SELF_HEALING_ACTION',
          module: 'playbooks.notify',
          message: String(params.message),
          meta: { playbook: ctx.playbook, runId: ctx.runId, step: ctx.step, channel: params.channel ?? 'log' },
        });
        return { ...(output as object), immuneEventId: id };
      } catch (error) {
        logger.error({ err: error }, 'notification not recorded in the immune log');
        return output;
      }
    },
    { replace: true },
  );
}
