import { assertNumberOption, Emitter, envReader, GuardError, silentLogger } from '@guard/core';
import type { Env, GuardBus, Logger, Subscription } from '@guard/core';
import type { AclViolation, MessageBus } from './message-bus.js';
import { SlidingWindow } from './sliding-window.js';
import type { PlaybookTrigger } from './playbook-types.js';
import type {} from './declarations.js';

/** Why the monitor raised an alarm (the seed's names). */
export type AclAlarmReason = 'spam_attack' | 'actor_blacklist' | 'control_topic_flood';

/**
 * The reason names of earlier releases and what they are called now. The monitor only emits the new names;
 * the map is for playbooks or dashboards that still filter on the old ones.
 *
 * @example
 * const reason = LEGACY_ACL_ALARM_REASONS[old as keyof typeof LEGACY_ACL_ALARM_REASONS] ?? old;
 */
export const LEGACY_ACL_ALARM_REASONS = {
  spam: 'spam_attack',
  blacklist: 'actor_blacklist',
  control_flood: 'control_topic_flood',
} as const satisfies Record<string, AclAlarmReason>;

/**
 * The event type the monitor triggers playbooks with.
 *
 * @example
 * monitor.onAlarm((alarm) => engine.trigger(ACL_ALARM_EVENT, { ...alarm }));
 */
export const ACL_ALARM_EVENT = 'message_bus.acl_violation';

/** An alarm of the {@link AclViolationMonitor}; also the data its playbook trigger gets. */
export interface AclAlarm {
  readonly reason: AclAlarmReason;
  /** The offender this alarm is about (one alarm per actor: playbook runs can be keyed by it). */
  readonly actor: string;
  /** Every actor with violations in the blacklist window, most violations first, at most `maxOffenders`. */
  readonly offenders: readonly string[];
  /** The topic of the actor's latest violation. */
  readonly topic: string;
  /** The actor's violations in the blacklist window (60 s by default). */
  readonly violations: number;
  /** Violations of all actors in the blacklist window. */
  readonly totalViolations: number;
  /** Violations of all actors in the spam window (the last second by default). */
  readonly violationsPerSecond: number;
  /** The actor's own violations in the spam window. */
  readonly actorViolationsPerSecond: number;
  /** Control-topic violations (all actors) in the control window. */
  readonly controlViolations: number;
  readonly at: number;
}

/** Options for {@link AclViolationMonitor}. */
export interface AclViolationMonitorOptions {
  /** The bus whose violations are watched. */
  readonly messageBus: MessageBus;
  /** Spam: at least this many violations of all actors together within `spamWindowMs`. Default 10 (the seed's rule). */
  readonly spamThreshold?: number;
  /** Spam by one actor alone (matters only when set below `spamThreshold`). Default `spamThreshold`. */
  readonly actorSpamThreshold?: number;
  /** Default 1000. */
  readonly spamWindowMs?: number;
  /** Blacklist: at least this many violations of one actor within `blacklistWindowMs`. Default 20. */
  readonly blacklistThreshold?: number;
  /** Default 60 000. Also the window of `violations`, `totalViolations` and `offenders`. */
  readonly blacklistWindowMs?: number;
  /** Control-topic flood: at least this many control-topic violations (any actor) within `controlWindowMs`. Default 5. */
  readonly controlFloodThreshold?: number;
  /** Default 1000. */
  readonly controlWindowMs?: number;
  /** While a rule keeps holding, the same actor is alarmed again for it at most this often (updated counts). Default 1000. */
  readonly reraiseIntervalMs?: number;
  /** Most actors listed in `offenders`, and most actors alarmed at once when a shared rule first holds. Default 100. */
  readonly maxOffenders?: number;
  /** Most actors tracked at once; the least recently seen are forgotten first. Default 10 000. */
  readonly maxTrackedActors?: number;
  /**
   * Most alarms per second, all actors and reasons together. An alarm over the budget is not raised (counted in
   * `stats().suppressedAlarms`); the actor stays due and is alarmed on its next violation once there is room, so a
   * botnet of thousands of actors cannot start thousands of playbook runs in one second. Default 200.
   */
  readonly maxAlarmsPerSecond?: number;
  /** Playbook engine (or anything with `trigger`) to start the ACL playbook with the alarm as data. */
  readonly engine?: PlaybookTrigger;
  /** Where `aclAlarm` notices go. */
  readonly bus?: GuardBus;
  readonly logger?: Logger;
  readonly now?: () => number;
}

type NumericOption =
  | 'spamThreshold'
  | 'actorSpamThreshold'
  | 'spamWindowMs'
  | 'blacklistThreshold'
  | 'blacklistWindowMs'
  | 'controlFloodThreshold'
  | 'controlWindowMs'
  | 'reraiseIntervalMs'
  | 'maxOffenders'
  | 'maxTrackedActors'
  | 'maxAlarmsPerSecond';

interface ActorState {
  readonly name: string;
  readonly spam: SlidingWindow;
  readonly total: SlidingWindow;
  readonly control: SlidingWindow;
  lastTopic: string;
  /** When this actor was last alarmed, per reason. */
  readonly raisedAt: Map<AclAlarmReason, number>;
}

/** How often the offenders list is recomputed at most. */
const OFFENDERS_REFRESH_MS = 100;

/**
 * Watches `message_bus.acl_violation` with sliding windows and alarms per actor:
 * - `spam_attack`: >= 10 violations within 1 s across all actors (ten actors with one each is spam), or by one actor;
 * - `actor_blacklist`: >= 20 violations of one actor within 60 s;
 * - `control_topic_flood`: >= 5 control-topic violations within 1 s.
 *
 * Alarms are armed per actor: when a shared rule first holds, every actor in its window is alarmed (most
 * violations first, at most `maxOffenders`); after that each violating actor is alarmed on its own, and again
 * at most once per `reraiseIntervalMs` while the attack goes on, with updated counts. Each alarm triggers the
 * ACL playbook through `engine.trigger('message_bus.acl_violation', alarm)`.
 *
 * @example
 * await using monitor = new AclViolationMonitor({ messageBus: bus, engine });
 * monitor.onAlarm((alarm) => console.log(alarm.reason, alarm.actor, alarm.offenders));
 */
export class AclViolationMonitor implements AsyncDisposable {
  readonly #options: Record<NumericOption, number>;
  readonly #actors = new Map<string, ActorState>();
  readonly #all: SlidingWindow;
  readonly #allTotal: SlidingWindow;
  readonly #control: SlidingWindow;
  readonly #events: Emitter<{ alarm: [AclAlarm] }>;
  readonly #engine: PlaybookTrigger | undefined;
  readonly #bus: GuardBus | undefined;
  readonly #logger: Logger;
  readonly #now: () => number;
  readonly #subscription: Subscription;
  #spamHeld = false;
  #controlHeld = false;
  #offenders: { at: number; list: readonly string[] } | undefined;
  readonly #raised = new SlidingWindow(1_000, 1_000);
  #total = 0;
  #alarms = 0;
  #suppressed = 0;
  #closed = false;

  constructor(options: AclViolationMonitorOptions) {
    if (!options || typeof options.messageBus?.onViolation !== 'function') {
      throw new GuardError('INVALID_OPTION', 'messageBus must be a MessageBus', { details: { field: 'messageBus' } });
    }
    const spamThreshold = options.spamThreshold ?? 10;
    this.#options = {
      spamThreshold,
      actorSpamThreshold: options.actorSpamThreshold ?? spamThreshold,
      spamWindowMs: options.spamWindowMs ?? 1_000,
      blacklistThreshold: options.blacklistThreshold ?? 20,
      blacklistWindowMs: options.blacklistWindowMs ?? 60_000,
      controlFloodThreshold: options.controlFloodThreshold ?? 5,
      controlWindowMs: options.controlWindowMs ?? 1_000,
      reraiseIntervalMs: options.reraiseIntervalMs ?? 1_000,
      maxOffenders: options.maxOffenders ?? 100,
      maxTrackedActors: options.maxTrackedActors ?? 10_000,
      maxAlarmsPerSecond: options.maxAlarmsPerSecond ?? 200,
    };
    for (const [field, value] of Object.entries(this.#options)) assertNumberOption(field, value, { min: 1, integer: true });
    this.#engine = options.engine;
    this.#bus = options.bus;
    this.#logger = options.logger ?? silentLogger;
    this.#events = new Emitter({ onError: (error) => this.#logger.error({ err: error }, 'AclViolationMonitor listener threw') });
    this.#now = options.now ?? Date.now;
    this.#all = new SlidingWindow(this.#options.spamWindowMs);
    this.#allTotal = new SlidingWindow(this.#options.blacklistWindowMs);
    this.#control = new SlidingWindow(this.#options.controlWindowMs);
    this.#subscription = options.messageBus.onViolation((v) => this.record(v));
  }

  /**
   * A monitor configured from the environment (see {@link aclViolationMonitorOptionsFromEnv}); `overrides`, given in
   * code, win over the environment.
   *
   * @example
   * const monitor = AclViolationMonitor.fromEnv(process.env, { messageBus: bus, engine });
   */
  static fromEnv(env: Env = process.env, overrides: AclViolationMonitorOptions): AclViolationMonitor {
    return new AclViolationMonitor({ ...aclViolationMonitorOptionsFromEnv(env), ...overrides });
  }

  /** @deprecated use {@link aclViolationMonitorOptionsFromEnv} (or {@link AclViolationMonitor.fromEnv}). */
  static optionsFromEnv(env: Env = process.env): Partial<AclViolationMonitorOptions> {
    return aclViolationMonitorOptionsFromEnv(env);
  }

  /** Records one violation (called for every `message_bus.acl_violation`; callable directly for other sources). */
  record(violation: Pick<AclViolation, 'actor' | 'topic' | 'control'> & { at?: number }): void {
    if (this.#closed) return;
    const now = violation.at ?? this.#now();
    const o = this.#options;
    this.#total++;
    this.#all.add(now);
    this.#allTotal.add(now);
    const state = this.#state(violation.actor);
    state.lastTopic = violation.topic;
    state.spam.add(now);
    state.total.add(now);
    if (violation.control) {
      this.#control.add(now);
      state.control.add(now);
    }

    // Spam: the shared rule (all actors) or the actor's own rate.
    const spamHeld = this.#all.count(now) >= o.spamThreshold;
    if (spamHeld && !this.#spamHeld) {
      this.#alarmWindow('spam_attack', (s) => s.spam.count(now), now);
    }
    this.#spamHeld = spamHeld;
    if (spamHeld || state.spam.count(now) >= o.actorSpamThreshold) this.#alarmIfDue(state, 'spam_attack', now);

    if (state.total.count(now) >= o.blacklistThreshold) this.#alarmIfDue(state, 'actor_blacklist', now);

    if (violation.control) {
      const controlHeld = this.#control.count(now) >= o.controlFloodThreshold;
      if (controlHeld && !this.#controlHeld) {
        this.#alarmWindow('control_topic_flood', (s) => s.control.count(now), now);
      }
      this.#controlHeld = controlHeld;
      if (controlHeld) this.#alarmIfDue(state, 'control_topic_flood', now);
    }
  }

  /** Calls `listener` on every alarm; a listener that throws or rejects is logged and never stops the others. */
  onAlarm(listener: (alarm: AclAlarm) => unknown): Subscription {
    return this.#events.on('alarm', listener);
  }

  /** Violations (all actors) within the spam window ending now: the "violations per second" probe. */
  violationsPerSecond(): number {
    return this.#all.count(this.#now());
  }

  /** Violations of `actor` within the blacklist window (all actors when `actor` is omitted). */
  violationsOf(actor?: string): number {
    if (actor === undefined) return this.#allTotal.count(this.#now());
    return this.#actors.get(actor)?.total.count(this.#now()) ?? 0;
  }

  /** Every actor with violations in the blacklist window, most first (at most `maxOffenders`). */
  offenders(): readonly string[] {
    return this.#offendersAt(this.#now());
  }

  /** Totals since creation (`suppressedAlarms`: over `maxAlarmsPerSecond`, raised later if the actor goes on). */
  stats(): { violations: number; alarms: number; suppressedAlarms: number; trackedActors: number } {
    return { violations: this.#total, alarms: this.#alarms, suppressedAlarms: this.#suppressed, trackedActors: this.#actors.size };
  }

  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    this.#subscription();
    this.#events.removeAllListeners();
    this.#actors.clear();
  }

  [Symbol.asyncDispose](): Promise<void> {
    return this.close();
  }

  #state(actor: string): ActorState {
    let state = this.#actors.get(actor);
    if (state) {
      // Move to the back: the map's order is least recently seen first.
      this.#actors.delete(actor);
      this.#actors.set(actor, state);
      return state;
    }
    if (this.#actors.size >= this.#options.maxTrackedActors) {
      const oldest = this.#actors.keys().next().value;
      if (oldest !== undefined) this.#actors.delete(oldest);
    }
    state = {
      name: actor,
      spam: new SlidingWindow(this.#options.spamWindowMs, 1_000),
      total: new SlidingWindow(this.#options.blacklistWindowMs, 1_000),
      control: new SlidingWindow(this.#options.controlWindowMs, 1_000),
      lastTopic: '',
      raisedAt: new Map(),
    };
    this.#actors.set(actor, state);
    return state;
  }

  /** A shared rule just started to hold: alarm every actor that contributed within its window. */
  #alarmWindow(reason: AclAlarmReason, countOf: (s: ActorState) => number, now: number): void {
    const contributors: [ActorState, number][] = [];
    for (const state of this.#actors.values()) {
      const n = countOf(state);
      if (n > 0) contributors.push([state, n]);
    }
    contributors.sort((a, b) => b[1] - a[1]);
    for (const [state] of contributors.slice(0, this.#options.maxOffenders)) this.#alarmIfDue(state, reason, now);
  }

  #alarmIfDue(state: ActorState, reason: AclAlarmReason, now: number): void {
    const last = state.raisedAt.get(reason);
    if (last !== undefined && now - last < this.#options.reraiseIntervalMs && now >= last) return;
    if (this.#raised.count(now) >= this.#options.maxAlarmsPerSecond) {
      this.#suppressed++;
      return;
    }
    this.#raised.add(now);
    state.raisedAt.set(reason, now);
    this.#raise({
      reason,
      actor: state.name,
      offenders: this.#offendersAt(now, state.name),
      topic: state.lastTopic,
      violations: state.total.count(now),
      totalViolations: this.#allTotal.count(now),
      violationsPerSecond: this.#all.count(now),
      actorViolationsPerSecond: state.spam.count(now),
      controlViolations: this.#control.count(now),
      at: now,
    });
  }

  /** Recomputed at most every 100 ms (O(actors)); `mustInclude` is added when the cached list lacks it. */
  #offendersAt(now: number, mustInclude?: string): readonly string[] {
    const cached = this.#offenders;
    if (cached && now >= cached.at && now - cached.at < OFFENDERS_REFRESH_MS) {
      if (mustInclude === undefined || cached.list.includes(mustInclude) || cached.list.length >= this.#options.maxOffenders) return cached.list;
      const list = [...cached.list, mustInclude];
      this.#offenders = { at: cached.at, list };
      return list;
    }
    const counted: [string, number][] = [];
    for (const state of this.#actors.values()) {
      const n = state.total.count(now);
      if (n > 0) counted.push([state.name, n]);
    }
    counted.sort((a, b) => b[1] - a[1]);
    const list = counted.slice(0, this.#options.maxOffenders).map(([name]) => name);
    this.#offenders = { at: now, list };
    return list;
  }

  #raise(alarm: AclAlarm): void {
    this.#alarms++;
    // Named fields only: never spread a payload over the fields a pino logger owns.
    this.#logger.warn(
      {
        reason: alarm.reason,
        actor: alarm.actor,
        topic: alarm.topic,
        violations: alarm.violations,
        totalViolations: alarm.totalViolations,
        violationsPerSecond: alarm.violationsPerSecond,
        offenderCount: alarm.offenders.length,
      },
      `ACL ${alarm.reason} alarm for actor ${alarm.actor}`,
    );
    this.#events.emit('alarm', alarm);
    this.#bus?.emit('aclAlarm', alarm);
    if (this.#engine) {
      this.#engine.trigger(ACL_ALARM_EVENT, { ...alarm }, { reason: alarm.reason }).catch((error: unknown) => {
        this.#logger.error({ err: error }, 'ACL playbook trigger failed');
      });
    }
  }
}

/**
 * Reads thresholds from `GUARD_ACL_THRESHOLDS` (`spam=10,blacklist=20,control_flood=5`, also `actor_spam`) and
 * windows from `GUARD_ACL_SPAM_WINDOW` (1s), `GUARD_ACL_BLACKLIST_WINDOW` (60s), `GUARD_ACL_CONTROL_WINDOW` (1s),
 * `GUARD_ACL_REALARM_INTERVAL` (1s). A bad value throws `INVALID_ENV` naming the variable.
 *
 * @example
 * new AclViolationMonitor({ ...aclViolationMonitorOptionsFromEnv(process.env), messageBus: bus });
 */
export function aclViolationMonitorOptionsFromEnv(env: Env = process.env): Partial<AclViolationMonitorOptions> {
  const reader = envReader(env);
  const t = reader.thresholds('GUARD_ACL_THRESHOLDS', ['spam', 'actor_spam', 'blacklist', 'control_flood']);
  const out: Record<string, number> = {
    spamWindowMs: reader.durationMs('GUARD_ACL_SPAM_WINDOW', 1_000, 'ms', { min: 1 }),
    blacklistWindowMs: reader.durationMs('GUARD_ACL_BLACKLIST_WINDOW', 60_000, 'ms', { min: 1 }),
    controlWindowMs: reader.durationMs('GUARD_ACL_CONTROL_WINDOW', 1_000, 'ms', { min: 1 }),
    reraiseIntervalMs: reader.durationMs('GUARD_ACL_REALARM_INTERVAL', 1_000, 'ms', { min: 1 }),
  };
  if (t.spam !== undefined) out.spamThreshold = t.spam;
  if (t.actor_spam !== undefined) out.actorSpamThreshold = t.actor_spam;
  if (t.blacklist !== undefined) out.blacklistThreshold = t.blacklist;
  if (t.control_flood !== undefined) out.controlFloodThreshold = t.control_flood;
  for (const [key, value] of Object.entries(out)) {
    if (!Number.isInteger(value) || value < 1) {
      throw new GuardError('INVALID_ENV', `GUARD_ACL_THRESHOLDS: ${key} must be a positive integer`, { details: { variable: 'GUARD_ACL_THRESHOLDS' } });
    }
  }
  return out;
}
