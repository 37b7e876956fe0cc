import { assertNumberOption, envReader, GuardError, silentLogger } from '@guard/core';
import type { Env, GuardBus, Logger, Subscription } from '@guard/core';
import type { AclViolation, MessageBus } from './message-bus.js';
import { SlidingWindow } from './sliding-window.js';
import type { PlaybookTrigger } from './playbook-types.js';
import './declarations.js';

/** Why the monitor raised an alarm. */
export type AclAlarmReason = 'spam' | 'blacklist' | 'control_flood';

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
  readonly actor: string;
  readonly topic: string;
  /** The actor's violations in the blacklist window. */
  readonly violations: number;
  /** The actor's violations in the last spam window (1 s by default). */
  readonly violationsPerSecond: number;
  /** Control-topic violations (all actors) in the flood window. */
  readonly controlViolations: number;
  readonly at: number;
}

/** Options for {@link AclViolationMonitor}. */
export interface AclViolationMonitorOptions {
  /** The bus whose violations are watched. */
  readonly messageBus: MessageBus;
  /** Spam: at least this many violations of one actor within `spamWindowMs`. Default 10. */
  readonly spamThreshold?: number;
  /** Default 1000. */
  readonly spamWindowMs?: number;
  /** Blacklist: at least this many violations of one actor within `blacklistWindowMs`. Default 20. */
  readonly blacklistThreshold?: number;
  /** Default 60 000. */
  readonly blacklistWindowMs?: number;
  /** Control-topic flood: at least this many control-topic violations (any actor) within `controlWindowMs`. Default 5. */
  readonly controlFloodThreshold?: number;
  /** Default 1000. */
  readonly controlWindowMs?: number;
  /** Most actors tracked at once; the least recently seen are forgotten first. Default 10 000. */
  readonly maxTrackedActors?: number;
  /** Playbook engine (or anything with `trigger`) to start the ACL playbook with the alarm as data. */
  readonly engine?: PlaybookTrigger;
  /** Where `aclAlarm` notices go. */
  readonly bus?: GuardBus;
  readonly logger?: Logger;
  readonly now?: () => number;
}

interface ActorState {
  readonly spam: SlidingWindow;
  readonly total: SlidingWindow;
  spamArmed: boolean;
  blacklistArmed: boolean;
}

/**
 * Watches `message_bus.acl_violation` with sliding windows and raises one alarm per crossing
 * (re-armed once the count falls below the threshold): spam, blacklist and control-topic flood.
 * Each alarm triggers the ACL playbook through `engine.trigger('message_bus.acl_violation', alarm)`.
 *
 * @example
 * await using monitor = new AclViolationMonitor({ messageBus: bus, engine });
 * monitor.onAlarm((alarm) => console.log(alarm.reason, alarm.actor));
 */
export class AclViolationMonitor implements AsyncDisposable {
  readonly #options: Required<
    Pick<
      AclViolationMonitorOptions,
      'spamThreshold' | 'spamWindowMs' | 'blacklistThreshold' | 'blacklistWindowMs' | 'controlFloodThreshold' | 'controlWindowMs' | 'maxTrackedActors'
    >
  >;
  readonly #actors = new Map<string, ActorState>();
  readonly #all: SlidingWindow;
  readonly #control: SlidingWindow;
  readonly #listeners = new Set<(alarm: AclAlarm) => void>();
  readonly #engine: PlaybookTrigger | undefined;
  readonly #bus: GuardBus | undefined;
  readonly #logger: Logger;
  readonly #now: () => number;
  readonly #subscription: Subscription;
  #controlArmed = true;
  #total = 0;
  #alarms = 0;
  #closed = false;

  constructor(options: AclViolationMonitorOptions) {
    if (!options || typeof options.messageBus?.onViolation !== 'function') {
      throw new GuardError('INVALID_OPTION', 'messageBus must be a MessageBus', { details: { field: 'messageBus' } });
    }
    this.#options = {
      spamThreshold: options.spamThreshold ?? 10,
      spamWindowMs: options.spamWindowMs ?? 1_000,
      blacklistThreshold: options.blacklistThreshold ?? 20,
      blacklistWindowMs: options.blacklistWindowMs ?? 60_000,
      controlFloodThreshold: options.controlFloodThreshold ?? 5,
      controlWindowMs: options.controlWindowMs ?? 1_000,
      maxTrackedActors: options.maxTrackedActors ?? 10_000,
    };
    for (const [field, value] of Object.entries(this.#options)) assertNumberOption(field, value, { min: 1, integer: true });
    this.#engine = options.engine;
    this.#bus = options.bus;
    this.#logger = options.logger ?? silentLogger;
    this.#now = options.now ?? Date.now;
    this.#all = new SlidingWindow(this.#options.spamWindowMs);
    this.#control = new SlidingWindow(this.#options.controlWindowMs);
    this.#subscription = options.messageBus.onViolation((v) => this.record(v));
  }

  /**
   * Reads thresholds from `GUARD_ACL_THRESHOLDS` (`spam=10,blacklist=20,control_flood=5`) and windows from
   * `GUARD_ACL_SPAM_WINDOW` (1s), `GUARD_ACL_BLACKLIST_WINDOW` (60s), `GUARD_ACL_CONTROL_WINDOW` (1s).
   *
   * @example
   * new AclViolationMonitor({ messageBus: bus, ...AclViolationMonitor.optionsFromEnv() });
   */
  static optionsFromEnv(env: Env = process.env): Partial<AclViolationMonitorOptions> {
    const reader = envReader(env);
    const t = reader.thresholds('GUARD_ACL_THRESHOLDS', ['spam', 'blacklist', 'control_flood']);
    const out: Record<string, number> = {
      spamWindowMs: reader.durationMs('GUARD_ACL_SPAM_WINDOW', 1_000, 'ms', { min: 1 }),
      blacklistWindowMs: reader.durationMs('GUARD_ACL_BLACKLIST_WINDOW', 60_000, 'ms', { min: 1 }),
      controlWindowMs: reader.durationMs('GUARD_ACL_CONTROL_WINDOW', 1_000, 'ms', { min: 1 }),
    };
    if (t.spam !== undefined) out.spamThreshold = t.spam;
    if (t.blacklist !== undefined) out.blacklistThreshold = t.blacklist;
    if (t.control_flood !== undefined) out.controlFloodThreshold = t.control_flood;
    for (const [key, value] of Object.entries(out)) {
      if (!Number.isInteger(value) || value < 1) {
        throw new GuardError('INVALID_ENV', `GUARD_ACL_THRESHOLDS: ${key} must be a positive integer`, { details: { variable: 'GUARD_ACL_THRESHOLDS' } });
      }
    }
    return out;
  }

  /** Records one violation (called for every `message_bus.acl_violation`; callable directly for other sources). */
  record(violation: Pick<AclViolation, 'actor' | 'topic' | 'control'> & { at?: number }): void {
    if (this.#closed) return;
    const now = violation.at ?? this.#now();
    this.#total++;
    this.#all.add(now);
    const state = this.#state(violation.actor);
    state.spam.add(now);
    state.total.add(now);
    const perSecond = state.spam.count(now);
    const total = state.total.count(now);
    let control = 0;
    if (violation.control) {
      this.#control.add(now);
      control = this.#control.count(now);
    }
    const o = this.#options;
    const alarm = (reason: AclAlarmReason): void =>
      this.#raise({ reason, actor: violation.actor, topic: violation.topic, violations: total, violationsPerSecond: perSecond, controlViolations: control, at: now });

    if (perSecond < o.spamThreshold) state.spamArmed = true;
    else if (state.spamArmed) {
      state.spamArmed = false;
      alarm('spam');
    }
    if (total < o.blacklistThreshold) state.blacklistArmed = true;
    else if (state.blacklistArmed) {
      state.blacklistArmed = false;
      alarm('blacklist');
    }
    if (violation.control) {
      if (control < o.controlFloodThreshold) this.#controlArmed = true;
      else if (this.#controlArmed) {
        this.#controlArmed = false;
        alarm('control_flood');
      }
    }
  }

  /** Calls `listener` on every alarm. */
  onAlarm(listener: (alarm: AclAlarm) => void): Subscription {
    this.#listeners.add(listener);
    const off = (() => void this.#listeners.delete(listener)) as Subscription;
    off[Symbol.dispose] = off;
    return off;
  }

  /** Violations (all actors) within the spam window ending now: the "violations per second" probe. */
  violationsPerSecond(): number {
    return this.#all.count(this.#now());
  }

  /** Violations of `actor` within the blacklist window. */
  violationsOf(actor: string): number {
    return this.#actors.get(actor)?.total.count(this.#now()) ?? 0;
  }

  /** Totals since creation. */
  stats(): { violations: number; alarms: number; trackedActors: number } {
    return { violations: this.#total, alarms: this.#alarms, trackedActors: this.#actors.size };
  }

  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    this.#subscription();
    this.#listeners.clear();
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
      spam: new SlidingWindow(this.#options.spamWindowMs, 10_000),
      total: new SlidingWindow(this.#options.blacklistWindowMs, 10_000),
      spamArmed: true,
      blacklistArmed: true,
    };
    this.#actors.set(actor, state);
    return state;
  }

  #raise(alarm: AclAlarm): void {
    this.#alarms++;
    this.#logger.warn({ ...alarm }, `ACL ${alarm.reason} alarm for actor ${alarm.actor}`);
    for (const listener of this.#listeners) {
      try {
        listener(alarm);
      } catch (error) {
        this.#logger.error({ err: error }, 'AclViolationMonitor listener threw');
      }
    }
    this.#bus?.emit('aclAlarm', alarm);
    if (this.#engine) {
      this.#engine.trigger(ACL_ALARM_EVENT, { ...alarm }, { reason: alarm.reason }).catch((error: unknown) => {
        this.#logger.error({ err: error }, 'ACL playbook trigger failed');
      });
    }
  }
}
