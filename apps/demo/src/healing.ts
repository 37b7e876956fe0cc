import { fileURLToPath } from 'node:url';
import type { Registry } from 'prom-client';
import type { Env, GuardBus, Logger } from '@guard/core';
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
  loadPlaybooks,
} from '@guard/playbooks';

/** The self-healing half of the demo: ACL message bus, monitors, watchdog and the YAML playbooks. */
export interface Healing {
  readonly messageBus: MessageBus;
  readonly aclMonitor: AclViolationMonitor;
  readonly pressure: ResourcePressureMonitor;
  readonly watchdog: HeartbeatWatchdog;
  readonly engine: PlaybookEngine;
  readonly limiter: RateLimiter;
  readonly tasks: TaskGate;
  /** The watched background worker; chaos `heartbeat-pause` stops its heartbeats. */
  readonly worker: { paused: boolean; restarts: number };
  close(): Promise<void>;
}

/** Options for {@link createHealing}. */
export interface HealingDeps {
  readonly env: Env;
  readonly bus: GuardBus;
  readonly registry: Registry;
  readonly logger: Logger;
  /** The demo's own health endpoint, probed by the CPU playbook's verification. */
  readonly healthUrl: () => string;
  /** Folder of playbook YAML files. */
  readonly playbooksDir?: string;
}

const HEARTBEAT_MS = 100;

/** Loads `apps/demo/playbooks/*.yaml` and wires the monitors to the engine. */
export async function createHealing(deps: HealingDeps): Promise<Healing> {
  const { bus, registry, logger } = deps;
  const messageBus = new MessageBus({
    name: 'app',
    acl: { api: ['analysis.*', 'notifications.*'], scheduler: ['analysis.*', 'control.*'], dashboard: ['notifications.*'] },
    controlTopics: ['control.*'],
    bus,
    registry,
    logger,
  });
  const aclMonitor = new AclViolationMonitor({ messageBus, bus, logger });
  const pressure = new ResourcePressureMonitor({
    ...ResourcePressureMonitor.optionsFromEnv(deps.env),
    system: { cpuSource: 'demand' },
    bus,
    registry,
    logger,
    autoStart: false,
  });
  const watchdog = new HeartbeatWatchdog({ bus, registry, logger });
  const limiter = new RateLimiter();
  const tasks = new TaskGate();

  const engine = new PlaybookEngine({
    bus,
    registry,
    logger,
    actions: createActionRegistry({ messageBus, components: watchdog, limiter, tasks, logger }),
    probes: createProbeRegistry({ messageBus, aclMonitor, pressure, watchdog, healthUrl: deps.healthUrl() }),
  });
  const dir = deps.playbooksDir ?? fileURLToPath(new URL('../playbooks/', import.meta.url));
  for (const playbook of await loadPlaybooks(dir)) engine.register(playbook);

  aclMonitor.onAlarm((alarm) => void engine.trigger('message_bus.acl_violation', { ...alarm }, { reason: alarm.reason }));
  pressure.onChange((change) => {
    if (change.state === 'alarm') void engine.trigger(`resource_pressure.${change.resource}`, { ...change }, { reason: `${change.resource}_pressure` });
  });
  pressure.start();

  // A background worker that proves it is alive; a missed heartbeat restarts it through the watchdog.
  const worker = { paused: false, restarts: 0 };
  const beat = setInterval(() => {
    if (!worker.paused) watchdog.heartbeat('results-worker');
  }, HEARTBEAT_MS);
  beat.unref();
  watchdog.register('results-worker', {
    deadlineMs: 5 * HEARTBEAT_MS,
    restart: () => {
      worker.restarts += 1;
      worker.paused = false;
      watchdog.heartbeat('results-worker');
    },
  });

  return {
    messageBus,
    aclMonitor,
    pressure,
    watchdog,
    engine,
    limiter,
    tasks,
    worker,
    close: async () => {
      clearInterval(beat);
      await engine.close();
      await Promise.all([aclMonitor.close(), pressure.close(), watchdog.close(), messageBus.close()]);
    },
  };
}
