import { assertNumberOption, assertOpen, GuardError, silentLogger } from '@guard/core';
import type { GuardBus, Logger, MetricsOptions, Subscription } from '@guard/core';
import { AclRules } from './acl-rules.js';
import type { AclOption } from './acl-rules.js';
import { ActorBlacklist } from './actor-blacklist.js';
import { BusRateLimits } from './bus-rate-limits.js';
import type { ActorRateLimit, TopicRateLimit } from './bus-rate-limits.js';
import { ACL_VIOLATION_TOPIC, BUS_ACTOR, CANARY_ACTOR, CANARY_TOPIC } from './bus-topics.js';
import { messageBusMetrics } from './message-bus-metrics.js';
import { DENIED, RouteCache } from './route-cache.js';
import { TopicSubscriptions } from './topic-subscriptions.js';
import type { MessageHandler } from './topic-subscriptions.js';
import { ViolationLog } from './violation-log.js';
import type { AclViolation } from './violation-log.js';
import type {} from './declarations.js';

export { ACL_VIOLATION_TOPIC, CANARY_ACTOR, CANARY_TOPIC } from './bus-topics.js';
export type { AclRule } from './acl-rules.js';
export type { ActorRateLimit, TopicRateLimit } from './bus-rate-limits.js';
export type { MessageHandler } from './topic-subscriptions.js';
export type { AclViolation } from './violation-log.js';

/** What happened to one publish. Returned as a string so the hot path allocates nothing. */
export type PublishOutcome = 'delivered' | 'no_subscribers' | 'denied' | 'blacklisted' | 'rate_limited';

/** What {@link MessageBus.restart} did. */
export interface MessageBusRestartReport {
  readonly restarts: number;
  /** Cached ACL decisions dropped (re-decided lazily from the rules). */
  readonly routesDropped: number;
  /** Subscriptions carried into the rebuilt subscriber table (violation listeners and the canary's included). */
  readonly subscribersReattached: number;
  readonly topics: number;
  /** Blacklist entries and rate limits that outlived the restart (expired ones are dropped). */
  readonly blacklistKept: number;
  readonly rateLimitsKept: number;
  readonly expiredDropped: number;
  readonly listenerErrorsCleared: number;
}

/** The result of {@link MessageBus.canary}. */
export interface CanaryResult {
  /** True when the canary went through the publish path (blacklist, ACL, rate limits, dispatch) and reached its subscriber. */
  readonly delivered: boolean;
  readonly outcome: PublishOutcome | 'closed';
  readonly latencyMs: number;
}

/** Options for {@link MessageBus}. */
export interface MessageBusOptions extends MetricsOptions {
  /** Label of this bus in metrics and violations. Default `'default'`. */
  readonly name?: string;
  /** Who may publish where: a map actor -> topic patterns, or a list of rules. Default: nobody may publish anything. */
  readonly acl?: AclOption;
  /** Topic patterns of control topics: only rules naming the actor (never `'*'`) grant them. Default `['control.**']`. */
  readonly controlTopics?: readonly string[];
  /** Where `aclViolation` notices go. */
  readonly bus?: GuardBus;
  readonly logger?: Logger;
  /** Most cached ACL decisions per actor before that actor's cache is reset. Default 10 000. */
  readonly maxCachedTopicsPerActor?: number;
  /** Clock for blacklist expiry and rate limits. Default `Date.now`. */
  readonly now?: () => number;
}

/** A point-in-time view of the bus for health checks and dashboards. */
export interface MessageBusHealth {
  readonly healthy: boolean;
  readonly open: boolean;
  readonly restarts: number;
  readonly subscribers: number;
  readonly blacklisted: readonly { actor: string; expiresAt: number }[];
  readonly rateLimits: readonly TopicRateLimit[];
  readonly actorRateLimits: readonly ActorRateLimit[];
  readonly listenerErrors: number;
  /** Epoch ms of the last ACL violation, undefined when there was none. */
  readonly lastViolationAt: number | undefined;
}

/** Counters of the bus since it was created. */
export interface MessageBusStats {
  readonly delivered: number;
  readonly noSubscribers: number;
  readonly denied: number;
  readonly blacklisted: number;
  readonly rateLimited: number;
  readonly violations: number;
}

/**
 * A topic message bus with ACLs. A denied publish is dropped and published on `message_bus.acl_violation`;
 * blacklisted actors are refused until their entry expires; topics and actors can be rate-limited at run time.
 * Routes (the ACL decision and the topic's handlers) are cached per actor and topic, so the publish path is a
 * couple of map lookups.
 *
 * The parts live in their own files: the ACL (`acl-rules.ts`), the route cache (`route-cache.ts`), the subscribers
 * and their dispatch (`topic-subscriptions.ts`), the blacklist (`actor-blacklist.ts`), the rate limits
 * (`bus-rate-limits.ts`), the violation record (`violation-log.ts`) and the metrics (`message-bus-metrics.ts`);
 * this class wires them into the publish path, restart, canary and health.
 *
 * @example
 * await using bus = new MessageBus({ acl: { orders: ['orders.*'], admin: ['control.**'] } });
 * bus.subscribe('orders.created', (order, actor) => console.log(actor, order));
 * bus.publish('orders', 'orders.created', { id: 1 }); // 'delivered'
 * bus.publish('orders', 'control.restart', {}); // 'denied' -> message_bus.acl_violation
 */
export class MessageBus implements AsyncDisposable {
  readonly name: string;
  readonly #acl: AclRules;
  readonly #routes: RouteCache;
  readonly #blacklist: ActorBlacklist;
  readonly #limits: BusRateLimits;
  readonly #subscriptions: TopicSubscriptions;
  readonly #violations = new ViolationLog();
  readonly #now: () => number;
  readonly #guardBus: GuardBus | undefined;
  readonly #logger: Logger;
  /** Aborted by close(): stops the scrape-time readers. */
  readonly #closeSignal = new AbortController();
  readonly #detachMetrics: () => void;
  #closed = false;
  #restarts = 0;
  #listenerErrors = 0;
  #canaryAttached = false;
  #canaryReceived: unknown;
  #delivered = 0;
  #noSubscribers = 0;
  #denied = 0;
  #refused = 0;
  #rateLimited = 0;

  constructor(options: MessageBusOptions = {}) {
    this.name = options.name ?? 'default';
    if (typeof this.name !== 'string' || this.name.length === 0) {
      throw new GuardError('INVALID_OPTION', 'name must be a non-empty string', { details: { field: 'name' } });
    }
    const maxCached = options.maxCachedTopicsPerActor ?? 10_000;
    assertNumberOption('maxCachedTopicsPerActor', maxCached, { min: 1, integer: true });
    this.#now = options.now ?? Date.now;
    this.#guardBus = options.bus;
    this.#logger = options.logger ?? silentLogger;
    this.#acl = new AclRules({ acl: options.acl, controlTopics: options.controlTopics ?? ['control.**'] });
    this.#blacklist = new ActorBlacklist(this.#now);
    this.#limits = new BusRateLimits({ now: this.#now, maxCachedTopics: maxCached });
    this.#subscriptions = new TopicSubscriptions({
      onError: (error, topic) => {
        this.#listenerErrors++;
        this.#logger.error({ err: error, topic }, 'MessageBus handler threw');
      },
      // Cached routes of a topic that gained its first subscriber (or lost its last) are stale.
      onTopicsChanged: () => this.#routes.clear(),
    });
    this.#routes = new RouteCache((actor, topic) => (this.#acl.decide(actor, topic) ? this.#subscriptions.route(topic) : DENIED), maxCached);
    this.#detachMetrics = messageBusMetrics(
      options,
      this.name,
      () => ({ ...this.stats(), violations: this.#violations.counts, blacklistedActors: this.#blacklist.live(this.#now()).length }),
      this.#closeSignal.signal,
    );
  }

  /**
   * Publishes `payload` on `topic` as `actor`. Never throws into the caller except `CLOSED`;
   * handler errors are logged and counted.
   */
  publish(actor: string, topic: string, payload?: unknown): PublishOutcome {
    assertOpen(this.#closed, 'MessageBus');
    if (this.#blacklist.has(actor)) {
      this.#refused++;
      return 'blacklisted';
    }
    // Per-actor limits act before the ACL decision, so a throttled attacker also stops producing violations.
    if (this.#limits.hasActorLimits && !this.#limits.takeActor(actor, topic)) {
      this.#rateLimited++;
      return 'rate_limited';
    }
    const route = this.#routes.get(actor, topic);
    if (route === DENIED) {
      this.#violation(actor, topic);
      return 'denied';
    }
    if (this.#limits.hasTopicLimits && !this.#limits.takeTopic(topic)) {
      this.#rateLimited++;
      return 'rate_limited';
    }
    if (route.handlers.length === 0) {
      this.#noSubscribers++;
      return 'no_subscribers';
    }
    this.#subscriptions.deliver(route, payload, actor, topic);
    this.#delivered++;
    return 'delivered';
  }

  /** Subscribes to one exact topic (no wildcards: ACL patterns are for publishers). Returns a function (also `Disposable`) that unsubscribes. */
  subscribe<T = unknown>(topic: string, handler: MessageHandler<T>): Subscription {
    assertOpen(this.#closed, 'MessageBus');
    if (typeof topic !== 'string' || topic.length === 0) {
      throw new GuardError('INVALID_INPUT', 'topic must be a non-empty string', { details: { field: 'topic' } });
    }
    return this.#subscriptions.add(topic, handler);
  }

  /** Calls `listener` for every denied publish. */
  onViolation(listener: (violation: AclViolation) => void): Subscription {
    return this.subscribe<AclViolation>(ACL_VIOLATION_TOPIC, (v) => listener(v));
  }

  /** Grants `actor` (or `'*'`) the right to publish to topics matching `topics`. */
  allow(actor: string, topics: readonly string[]): void {
    this.#acl.allow(actor, topics);
    this.#routes.clear();
  }

  /** Removes every rule naming `actor`. */
  revoke(actor: string): void {
    this.#acl.revoke(actor);
    this.#routes.clear();
  }

  /** True when `actor` may publish to `topic` (ignores blacklist and rate limits). */
  isAllowed(actor: string, topic: string): boolean {
    return this.#acl.decide(actor, topic);
  }

  /** True when `topic` is a control topic. */
  isControlTopic(topic: string): boolean {
    return this.#acl.isControlTopic(topic);
  }

  /** Refuses every publish of `actor` for `durationMs` (default: until {@link unblacklist}). */
  blacklist(actor: string, options: { durationMs?: number } = {}): void {
    assertOpen(this.#closed, 'MessageBus');
    this.#blacklist.add(actor, options.durationMs ?? Infinity);
  }

  /** Lifts a blacklist entry. @returns true when there was one. */
  unblacklist(actor: string): boolean {
    return this.#blacklist.delete(actor);
  }

  /** True when `actor` is blacklisted now. */
  isBlacklisted(actor: string): boolean {
    return this.#blacklist.has(actor);
  }

  /**
   * Limits publishes of EVERY actor to topics matching `topic` to `ratePerSec` (token bucket, burst =
   * max(1, rate); 0 blocks the topic) for `durationMs`. This throttles legitimate publishers too: to stop
   * one offender use {@link limitActor}.
   */
  setRateLimit(topic: string, ratePerSec: number, options: { durationMs?: number } = {}): void {
    assertOpen(this.#closed, 'MessageBus');
    this.#limits.limitTopic(topic, ratePerSec, options.durationMs ?? Infinity);
  }

  /**
   * Limits publishes of one `actor` (to topics matching `topic`, default every topic) to `ratePerSec`
   * (token bucket, burst = max(1, rate); 0 blocks) for `durationMs`. Other actors are not affected. The
   * limit applies before the ACL decision, so a throttled offender also stops producing violations.
   *
   * @example
   * bus.limitActor('rogue', 1, { topic: 'orders.*', durationMs: 300_000 });
   */
  limitActor(actor: string, ratePerSec: number, options: { topic?: string; durationMs?: number } = {}): ActorRateLimit {
    assertOpen(this.#closed, 'MessageBus');
    return this.#limits.limitActor(actor, ratePerSec, options.topic ?? '**', options.durationMs ?? Infinity);
  }

  /** Removes `actor`'s limit on `topic` (or all of its limits when `topic` is omitted). @returns how many were removed. */
  clearActorLimit(actor: string, topic?: string): number {
    return this.#limits.clearActor(actor, topic);
  }

  /** Removes a rate limit. @returns true when there was one. */
  clearRateLimit(topic: string): boolean {
    return this.#limits.clearTopic(topic);
  }

  /**
   * Restarts the bus's routing: drops every cached route (ACL decision), rebuilds the subscriber table from
   * every live subscription (violation listeners included), drops expired blacklist entries and rate limits,
   * and clears the listener error count. ACL rules, live blacklist entries and rate limits
   * are kept. Publishes keep working across the restart.
   *
   * @example
   * const report = bus.restart(); // { restarts: 1, routesDropped: 12, subscribersReattached: 3, ... }
   */
  restart(): MessageBusRestartReport {
    assertOpen(this.#closed, 'MessageBus');
    const routesDropped = this.#routes.clear();
    const subscribersReattached = this.#subscriptions.rebuild();
    const now = this.#now();
    const expiredDropped = this.#blacklist.dropExpired(now) + this.#limits.dropExpired(now);
    const listenerErrorsCleared = this.#listenerErrors;
    this.#listenerErrors = 0;
    this.#restarts++;
    const report: MessageBusRestartReport = {
      restarts: this.#restarts,
      routesDropped,
      subscribersReattached,
      topics: this.#subscriptions.topicCount,
      blacklistKept: this.#blacklist.size,
      rateLimitsKept: this.#limits.size,
      expiredDropped,
      listenerErrorsCleared,
    };
    this.#logger.info({ bus: this.name, ...report }, 'MessageBus restarted');
    return report;
  }

  /**
   * Publishes a canary through the real publish path (blacklist, rate limits, ACL decision, dispatch) as
   * the reserved {@link CANARY_ACTOR} on {@link CANARY_TOPIC}, and reports whether the bus's own canary
   * subscriber received it. That subscriber is created on the first call and lives like any other
   * subscription (a {@link restart} must re-attach it), but is not counted in `health().subscribers`.
   * False on a closed bus, or when a rate limit (e.g. a topic-wide `**` limit) swallows the canary.
   *
   * @example
   * if (!bus.canary().delivered) alert('message bus does not deliver');
   */
  canary(): CanaryResult {
    const t0 = performance.now();
    if (this.#closed) return { delivered: false, outcome: 'closed', latencyMs: 0 };
    if (!this.#canaryAttached) {
      this.subscribe(CANARY_TOPIC, (payload) => void (this.#canaryReceived = payload));
      this.#canaryAttached = true;
    }
    const nonce = {};
    const outcome = this.publish(CANARY_ACTOR, CANARY_TOPIC, nonce);
    const delivered = this.#canaryReceived === nonce && outcome === 'delivered';
    this.#canaryReceived = undefined;
    return { delivered, outcome, latencyMs: performance.now() - t0 };
  }

  /**
   * How many ACL violations happened at or after `sinceEpochMs` (exact for the last 4 096 violations; a
   * larger count is reported as at least that).
   *
   * @example
   * const quiet = bus.violationsSince(Date.now() - 2_000) === 0;
   */
  violationsSince(sinceEpochMs: number): number {
    return this.#violations.since(sinceEpochMs);
  }

  /**
   * ACL violations within the last `windowMs` on the bus's clock ("no new violations for N s" is `=== 0`).
   *
   * @example
   * bus.violationsWithin(2_000); // 0 once the offenders are stopped
   */
  violationsWithin(windowMs: number): number {
    assertNumberOption('windowMs', windowMs, { min: 0 });
    return this.violationsSince(this.#now() - windowMs);
  }

  /** A point-in-time view (`healthy` is only "open": verification should use {@link canary}). */
  health(): MessageBusHealth {
    const now = this.#now();
    return {
      healthy: !this.#closed,
      open: !this.#closed,
      restarts: this.#restarts,
      // The canary's subscriber is the bus's own.
      subscribers: this.#subscriptions.size - (this.#canaryAttached && !this.#closed ? 1 : 0),
      blacklisted: this.#blacklist.live(now),
      rateLimits: this.#limits.liveTopicLimits(now),
      actorRateLimits: this.#limits.liveActorLimits(now),
      listenerErrors: this.#listenerErrors,
      lastViolationAt: this.#violations.lastAt,
    };
  }

  /** Counters since the bus was created. */
  stats(): MessageBusStats {
    return {
      delivered: this.#delivered,
      noSubscribers: this.#noSubscribers,
      denied: this.#denied,
      blacklisted: this.#refused,
      rateLimited: this.#rateLimited,
      violations: this.#denied,
    };
  }

  /** Stops accepting publishes and drops every subscriber. Idempotent. */
  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    this.#detachMetrics();
    this.#closeSignal.abort();
    this.#subscriptions.clear();
  }

  [Symbol.asyncDispose](): Promise<void> {
    return this.close();
  }

  #violation(actor: string, topic: string): void {
    this.#denied++;
    const control = this.#acl.isControlTopic(topic);
    const at = this.#now();
    this.#violations.record(at, control);
    const violation: AclViolation = { bus: this.name, actor, topic, control, at };
    this.#subscriptions.deliver(this.#subscriptions.route(ACL_VIOLATION_TOPIC), violation, BUS_ACTOR, ACL_VIOLATION_TOPIC);
    this.#guardBus?.emit('aclViolation', violation);
  }
}
