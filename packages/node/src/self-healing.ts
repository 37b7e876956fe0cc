import type { CloseStack, Env, GuardBus, GuardMode, Logger, Registry } from '@guard/core';
import type { ImmuneService } from '@guard/immune';
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
  type ActionRegistry,
  type FleetDecisionSink,
  type MessageBusOptions,
  type PlaybookNotification,
  type ResourcePressureMonitorOptions,
  type WorkerPool,
} from '@guard/playbooks';

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
  /**
   * Follow the guard's mode for the `playbooks` component: outside `full` every run is a dry run (its plan is
   * logged, nothing changes), so switching the guard to `detect` at run time also stops playbook remedies.
   * Default false (playbooks act whatever the detectors' mode).
   */
  readonly followMode?: boolean;
  /** The replicas `scale_down` acts on (e.g. your worker pool). Default `processes.pool('workers')`. */
  readonly workers?: WorkerPool;
  /**
   * Where `notify` with channel `webhook` posts. Default `GUARD_NOTIFY_WEBHOOK_URL`; without one the `webhook`
   * channel is dropped from a step (the log and the immune log still get the notification) instead of failing it.
   */
  readonly notifyWebhookUrl?: string;
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
  /** The guard's mode of a component (the detector chain's). */
  readonly modeOf?: (component: string) => GuardMode;
  /** The immune log: every playbook notification is recorded there too. */
  readonly immune?: ImmuneService;
  /** Fleet mode: the playbooks' blacklists and rate limits reach every replica. */
  readonly fleet?: FleetDecisionSink | undefined;
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
  return stack.use(new ResourcePressureMonitor({ ...ResourcePressureMonitor.optionsFromEnv(env), ...options, bus, registry, logger }));
}

/** Builds the message bus, ACL monitor, heartbeat watchdog and playbook engine, and wires the monitors to the engine. */
export async function startSelfHealing(options: PlaybooksOptions, pressure: ResourcePressureMonitor | undefined, shared: Shared): Promise<SelfHealing> {
  const { bus, registry, logger, stack, immune } = shared;
  const webhookUrl = options.notifyWebhookUrl ?? (shared.env.GUARD_NOTIFY_WEBHOOK_URL?.trim() || undefined);
  const messageBus = stack.use(new MessageBus({ name: 'app', acl: options.acl ?? {}, controlTopics: options.controlTopics ?? ['control.*'], bus, registry, logger }));
  const aclMonitor = stack.use(new AclViolationMonitor({ messageBus, bus, logger }));
  const watchdog = stack.use(new HeartbeatWatchdog({ bus, registry, logger }));
  const limiter = new RateLimiter();
  const tasks = stack.use(new TaskGate());
  const processes = stack.use(new ProcessRegistry());
  const engine = stack.use(
    new PlaybookEngine({
      bus,
      registry,
      logger,
      dryRun: options.dryRun ?? false,
      actions: webhookOnlyWhenConfigured(
        createActionRegistry({
          messageBus,
          components: watchdog,
          limiter,
          tasks,
          processes,
          workers: options.workers ?? processes.pool('workers'),
          ...(webhookUrl ? { notifyWebhookUrl: webhookUrl } : {}),
          ...(immune ? { publish: (n: PlaybookNotification) => immune.publishEvent(immuneEventOf(n)) } : {}),
          ...(shared.fleet ? { fleet: shared.fleet } : {}),
          logger,
        }),
        webhookUrl,
      ),
      probes: createProbeRegistry({ messageBus, aclMonitor, ...(pressure ? { pressure } : {}), watchdog, ...(options.healthUrl ? { healthUrl: options.healthUrl } : {}) }),
    }),
  );
  const dirs = options.dir === undefined ? [builtinPlaybooksDir()] : typeof options.dir === 'string' ? [options.dir] : options.dir;
  for (const dir of dirs) for (const playbook of await loadPlaybooks(dir)) engine.register(playbook);

  const trigger = (event: string, data: Record<string, unknown>, reason: string) => {
    const dryRun = options.followMode === true && shared.modeOf !== undefined && shared.modeOf('playbooks') !== 'full';
    engine.trigger(event, data, { reason, ...(dryRun ? { dryRun } : {}) }).catch((error: unknown) => logger.error({ err: error, event }, 'guard: playbook trigger failed'));
  };
  stack.use(aclMonitor.onAlarm((alarm) => trigger('message_bus.acl_violation', { ...alarm }, alarm.reason)));
  if (pressure) {
    stack.use(
      pressure.onChange((change) => {
        if (change.state === 'alarm') trigger(`resource_pressure.${change.resource}`, { ...change }, `${change.resource}_pressure`);
      }),
    );
  }
  return { messageBus, aclMonitor, watchdog, engine, limiter, tasks, processes };
}

function immuneEventOf(n: PlaybookNotification) {
  return {
    severity: n.severity === 'critical' ? ('CRITICAL' as const) : n.severity === 'info' ? ('INFO' as const) : ('WARNING' as const),
    type: 'SELF_HEALING_ACTION' as const,
    module: 'playbooks.notify',
    message: n.message,
    meta: { playbook: n.playbook, runId: n.runId, step: n.step },
  };
}

/**
 * Playbooks may list `webhook` among their notify channels while the URL is configuration: without one the
 * channel is dropped instead of failing the step (the log and the immune log still get the notification).
 */
function webhookOnlyWhenConfigured(actions: ActionRegistry, url: string | undefined): ActionRegistry {
  if (url) return actions;
  const notify = actions.get('notify');
  actions.register(
    'notify',
    (params, ctx) => {
      const raw: unknown = params.channels ?? params.channel;
      const channels = Array.isArray(raw) ? raw : [raw];
      if (!channels.includes('webhook')) return notify(params, ctx);
      const { channel: _channel, channels: _channels, ...rest } = params;
      const kept = channels.filter((c) => c !== 'webhook');
      return notify({ ...rest, channels: kept.length > 0 ? kept : ['log'] }, ctx);
    },
    { replace: true },
  );
  return actions;
}
