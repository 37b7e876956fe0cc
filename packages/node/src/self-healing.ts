import type { Env, GuardBus, Logger, Registry } from '@guard/core';
import {
  AclViolationMonitor,
  HeartbeatWatchdog,
  MessageBus,
  PlaybookEngine,
  ProcessRegistry,
  RateLimiter,
  ResourcePressureMonitor,
  TaskGate,
  builtinPlaybooksDir,
  createActionRegistry,
  createProbeRegistry,
  loadPlaybooks,
  type MessageBusOptions,
  type ResourcePressureMonitorOptions,
} from '@guard/playbooks';
import type { CloseStack } from './close-stack.js';

/**
 * The self-healing half: YAML playbooks and the monitors that trigger them.
 *
 * @example
 * createGuard({ playbooks: { dir: './playbooks', acl: { api: ['orders.*'] }, pressure: true } });
 */
export interface PlaybooksOptions {
  /** Folder(s) of playbook YAML files. Default: the built-in playbooks of `@guard/playbooks`. */
  readonly dir?: string | readonly string[];
  /** Topic ACL of the message bus (actor -> topic patterns); its violations trigger `message_bus.acl_violation`. */
  readonly acl?: MessageBusOptions['acl'];
  /** Topics whose flood is a `control_flood`. Default `control.*`. */
  readonly controlTopics?: readonly string[];
  /** Run playbooks as plans only (nothing changes). Default false. */
  readonly dryRun?: boolean;
  /** URL the CPU playbook's verification probes (e.g. your `/livez`), or a function for one known after `listen`. */
  readonly healthUrl?: string | (() => string | undefined);
}

/** What {@link startSelfHealing} built. */
export interface SelfHealing {
  readonly messageBus: MessageBus;
  readonly aclMonitor: AclViolationMonitor;
  readonly watchdog: HeartbeatWatchdog;
  readonly engine: PlaybookEngine;
  readonly limiter: RateLimiter;
  readonly tasks: TaskGate;
  /** Child processes the playbooks may act on (`kill_runaway`, `scale_down` on the `workers` group): spawn yours through it. */
  readonly processes: ProcessRegistry;
}

interface Shared {
  readonly env: Env;
  readonly bus: GuardBus;
  readonly registry: Registry;
  readonly logger: Logger;
  readonly stack: CloseStack;
}

/**
 * The resource pressure monitor (CPU, memory, disk, event-loop delay); it drives load shedding even without
 * playbooks. Options from code win over `GUARD_PRESSURE_*`.
 */
export function startPressureMonitor(options: ResourcePressureMonitorOptions, shared: Shared): ResourcePressureMonitor {
  const { env, bus, registry, logger, stack } = shared;
  return stack.defer(
    'pressure',
    new ResourcePressureMonitor({ ...ResourcePressureMonitor.optionsFromEnv(env), ...options, bus, registry, logger }),
    (m) => m.close(),
  );
}

/** Builds the message bus, ACL monitor, heartbeat watchdog and playbook engine, and wires the monitors to the engine. */
export async function startSelfHealing(options: PlaybooksOptions, pressure: ResourcePressureMonitor | undefined, shared: Shared): Promise<SelfHealing> {
  const { bus, registry, logger, stack } = shared;
  const messageBus = stack.defer(
    'message-bus',
    new MessageBus({ name: 'app', acl: options.acl ?? {}, controlTopics: options.controlTopics ?? ['control.*'], bus, registry, logger }),
    (m) => m.close(),
  );
  const aclMonitor = stack.defer('acl-monitor', new AclViolationMonitor({ messageBus, bus, logger }), (m) => m.close());
  const watchdog = stack.defer('watchdog', new HeartbeatWatchdog({ bus, registry, logger }), (w) => w.close());
  const limiter = new RateLimiter();
  const tasks = stack.defer('tasks', new TaskGate(), (t) => t.close());
  const processes = stack.defer('processes', new ProcessRegistry(), (p) => p.close());
  const engine = stack.defer(
    'playbook-engine',
    new PlaybookEngine({
      bus,
      registry,
      logger,
      dryRun: options.dryRun ?? false,
      actions: createActionRegistry({ messageBus, components: watchdog, limiter, tasks, processes, workers: processes.pool('workers'), logger }),
      probes: createProbeRegistry({ messageBus, aclMonitor, ...(pressure ? { pressure } : {}), watchdog, ...(options.healthUrl ? { healthUrl: options.healthUrl } : {}) }),
    }),
    (e) => e.close(),
  );
  const dirs = options.dir === undefined ? [builtinPlaybooksDir()] : typeof options.dir === 'string' ? [options.dir] : options.dir;
  for (const dir of dirs) for (const playbook of await loadPlaybooks(dir)) engine.register(playbook);

  const trigger = (event: string, data: Record<string, unknown>, reason: string) => {
    engine.trigger(event, data, { reason }).catch((error: unknown) => logger.error({ err: error, event }, 'guard: playbook trigger failed'));
  };
  const offAcl = aclMonitor.onAlarm((alarm) => trigger('message_bus.acl_violation', { ...alarm }, alarm.reason));
  stack.defer('acl-trigger', offAcl, (off) => off());
  if (pressure) {
    const offPressure = pressure.onChange((change) => {
      if (change.state === 'alarm') trigger(`resource_pressure.${change.resource}`, { ...change }, `${change.resource}_pressure`);
    });
    stack.defer('pressure-trigger', offPressure, (off) => off());
  }
  return { messageBus, aclMonitor, watchdog, engine, limiter, tasks, processes };
}
