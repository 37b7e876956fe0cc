import { EventEmitter } from 'eventemitter3';
import { assertNumberOption, createSubscription, GuardError, scrapeGauge, silentLogger, TokenBucket } from '@guard/core';
import type { GuardBus, Logger, MetricsOptions, Subscription } from '@guard/core';
import { DEFAULT_METRICS_PREFIX, pulledCounter } from './metrics.js';
import { topicMatcher } from './topic-pattern.js';
import type {} from './declarations.js';

/**
 * The topic on which the bus publishes every denied publish.
 *
 * @example
 * bus.subscribe(ACL_VIOLATION_TOPIC, (v) => console.log(v));
 */
export const ACL_VIOLATION_TOPIC = 'message_bus.acl_violation';

/** What happened to one publish. Returned as a string so the hot path allocates nothing. */
export type PublishOutcome = 'delivered' | 'no_subscribers' | 'denied' | 'blacklisted' | 'rate_limited';

/** One denied publish, published on {@link ACL_VIOLATION_TOPIC}. */
export interface AclViolation {
  readonly bus: string;
  readonly actor: string;
  readonly topic: string;
  /** True when the topic is a control topic. */
  readonly control: boolean;
  /** Epoch milliseconds. */
  readonly at: number;
}

/** One ACL rule: `actor` (or `'*'` for every actor) may publish to topics matching `topics`. */
export interface AclRule {
  readonly actor: string;
  readonly topics: readonly string[];
}

/** A topic rate limit set on the bus (usually by the `rate_limit_topic` action). */
export interface TopicRateLimit {
  readonly topic: string;
  readonly ratePerSec: number;
  /** Epoch milliseconds when the limit lifts; `Infinity` when it does not. */
  readonly expiresAt: number;
}

/** A per-actor rate limit (usually set by `rate_limit_actor` / `rate_limit_topic` with an actor). */
export interface ActorRateLimit {
  readonly actor: string;
  /** Topic pattern the limit applies to; `'**'` = every topic of this actor. */
  readonly topic: string;
  readonly ratePerSec: number;
  /** Epoch milliseconds when the limit lifts; `Infinity` when it does not. */
  readonly expiresAt: number;
}

/** What {@link MessageBus.restart} did. */
export interface MessageBusRestartReport {
  readonly restarts: number;
  /** Cached ACL decisions dropped (re-decided lazily from the rules). */
  readonly routesDropped: number;
  /** Subscriptions re-attached to the new emitter (violation listeners and the canary's included). */
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

/**
 * The actor and topic of {@link MessageBus.canary}: reserved, so no application actor can publish or fake it.
 *
 * @example
 * bus.canary(); // { delivered: true, outcome: 'delivered', latencyMs: 0.02 }
 */
export const CANARY_ACTOR = 'message_bus.canary';
/** See {@link CANARY_ACTOR}. */
export const CANARY_TOPIC = 'message_bus.canary';

/** Options for {@link MessageBus}. */
export interface MessageBusOptions extends MetricsOptions {
  /** Label of this bus in metrics and violations. Default `'default'`. */
  readonly name?: string;
  /** Who may publish where: a map actor -> topic patterns, or a list of rules. Default: nobody may publish anything. */
  readonly acl?: Readonly<Record<string, readonly string[]>> | readonly AclRule[];
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

/** A message handler: `(payload, actor, topic)`. */
export type MessageHandler<T = unknown> = (payload: T, actor: string, topic: string) => void;

interface Limiter {
  readonly actor?: string;
  readonly topic: string;
  readonly matches: (topic: string) => boolean;
  readonly ratePerSec: number;
  readonly expiresAt: number;
  /** Burst max(1, rate), so a rate below 1/s lets one publish through every 1/rate s; a rate of 0 blocks. */
  readonly bucket: TokenBucket;
}

/** A cached publish decision: the topic's handlers (shared with subscribe/unsubscribe), or denied. */
interface Route {
  handlers: readonly ((payload: unknown, actor: string, topic: string) => void)[];
}

const DENIED: Route = Object.freeze({ handlers: [] });
const NO_SUBSCRIBERS: Route = Object.freeze({ handlers: [] });

interface CompiledRule {
  readonly actor: string;
  readonly matches: (topic: string) => boolean;
}

const RESERVED_PREFIX = 'message_bus.';
/** Violation timestamps kept for {@link MessageBus.violationsSince} (a ring; older ones are counted as "at least"). */
const VIOLATION_RING = 4_096;

/**
 * A topic message bus on eventemitter3 with ACLs. A denied publish is dropped and published on
 * `message_bus.acl_violation`; blacklisted actors are refused until their entry expires; topics can be
 * rate-limited at run time. ACL decisions are cached per actor and topic, so the publish path is a
 * couple of map lookups.
 *
 * @example
 * await using bus = new MessageBus({ acl: { orders: ['orders.*'], admin: ['control.**'] } });
 * bus.subscribe('orders.created', (order, actor) => console.log(actor, order));
 * bus.publish('orders', 'orders.created', { id: 1 }); // 'delivered'
 * bus.publish('orders', 'control.restart', {}); // 'denied' -> message_bus.acl_violation
 */
export class MessageBus implements AsyncDisposable {
  readonly name: string;
  #ee = new EventEmitter();
  /** Every live subscription, so a restart can re-attach them to a fresh emitter. */
  readonly #subscriptions = new Map<object, { topic: string; handler: MessageHandler<never> }>();
  /** actor -> its limits (per topic pattern). */
  readonly #actorLimits = new Map<string, Limiter[]>();
  readonly #violationTimes = new Float64Array(VIOLATION_RING);
  #violationCount = 0;
  readonly #rules: CompiledRule[] = [];
  readonly #control: ((topic: string) => boolean)[];
  /** actor -> topic -> route (a topic's handlers, or DENIED). */
  readonly #routes = new Map<string, Map<string, Route>>();
  /** Topics with at least one subscriber. */
  readonly #topics = new Map<string, Route>();
  #lastActor: string | undefined;
  #lastTopic: string | undefined;
  #lastRoute: Route | undefined;
  readonly #blacklist = new Map<string, number>();
  readonly #limits = new Map<string, Limiter>();
  /** topic -> the limits that apply to it (rebuilt when limits change). */
  readonly #limitsByTopic = new Map<string, Limiter[]>();
  readonly #maxCached: number;
  readonly #now: () => number;
  readonly #guardBus: GuardBus | undefined;
  readonly #logger: Logger;
  readonly #detachViolations: () => void;
  readonly #violationCounts = { topic: 0, control: 0 };
  readonly #violationsFlushed = { topic: 0, control: 0 };
  /** Aborted by close(): stops the scrape-time readers. */
  readonly #closeSignal = new AbortController();
  readonly #detachMessages: () => void;
  #closed = false;
  #restarts = 0;
  #listenerErrors = 0;
  #subscribers = 0;
  #canaryAttached = false;
  #canaryReceived: unknown;
  #delivered = 0;
  #noSubscribers = 0;
  #denied = 0;
  #refused = 0;
  #rateLimited = 0;
  #flushed = { delivered: 0, no_subscribers: 0, denied: 0, blacklisted: 0, rate_limited: 0 };

  constructor(options: MessageBusOptions = {}) {
    this.name = options.name ?? 'default';
    if (typeof this.name !== 'string' || this.name.length === 0) {
      throw new GuardError('INVALID_OPTION', 'name must be a non-empty string', { details: { field: 'name' } });
    }
    this.#maxCached = options.maxCachedTopicsPerActor ?? 10_000;
    assertNumberOption('maxCachedTopicsPerActor', this.#maxCached, { min: 1, integer: true });
    this.#now = options.now ?? Date.now;
    this.#guardBus = options.bus;
    this.#logger = options.logger ?? silentLogger;
    this.#control = (options.controlTopics ?? ['control.**']).map((p) => topicMatcher(p));
    const acl = options.acl ?? {};
    const rules: readonly AclRule[] = Array.isArray(acl)
      ? (acl as readonly AclRule[])
      : Object.entries(acl as Record<string, readonly string[]>).map(([actor, topics]) => ({ actor, topics }));
    for (const rule of rules) this.allow(rule.actor, rule.topics);

    const messages = pulledCounter(options, 'bus_messages_total', 'Publishes on the message bus by outcome', ['bus', 'outcome']);
    this.#detachMessages = messages.attach(() => this.#flushMessages(messages.metric));
    const violations = pulledCounter(options, 'bus_violations_total', 'ACL violations on the message bus', ['bus', 'kind']);
    this.#detachViolations = violations.attach(() => {
      for (const kind of ['topic', 'control'] as const) {
        const delta = this.#violationCounts[kind] - this.#violationsFlushed[kind];
        if (delta > 0) violations.metric.inc({ bus: this.name, kind }, delta);
        this.#violationsFlushed[kind] = this.#violationCounts[kind];
      }
    });
    scrapeGauge(
      options,
      { name: 'bus_blacklisted_actors', help: 'Actors currently blacklisted on the bus', labelNames: ['bus'], defaultPrefix: DEFAULT_METRICS_PREFIX, signal: this.#closeSignal.signal },
      () => [[{ bus: this.name }, this.health().blacklisted.length]],
    );
  }

  /**
   * Publishes `payload` on `topic` as `actor`. Never throws into the caller except `CLOSED`;
   * handler errors are logged and counted.
   */
  publish(actor: string, topic: string, payload?: unknown): PublishOutcome {
    if (this.#closed) throw new GuardError('CLOSED', 'MessageBus is closed');
    if (this.#blacklist.size !== 0 && this.#isBlacklisted(actor)) {
      this.#refused++;
      return 'blacklisted';
    }
    // Per-actor limits act before the ACL decision, so a throttled attacker also stops producing violations.
    if (this.#actorLimits.size !== 0 && !this.#takeActor(actor, topic)) {
      this.#rateLimited++;
      return 'rate_limited';
    }
    let route: Route;
    if (actor === this.#lastActor && topic === this.#lastTopic) {
      route = this.#lastRoute!;
    } else {
      route = this.#route(actor, topic);
      this.#lastActor = actor;
      this.#lastTopic = topic;
      this.#lastRoute = route;
    }
    if (route === DENIED) {
      this.#violation(actor, topic);
      return 'denied';
    }
    if (this.#limits.size !== 0 && !this.#take(topic)) {
      this.#rateLimited++;
      return 'rate_limited';
    }
    const handlers = route.handlers;
    const n = handlers.length;
    if (n === 0) {
      this.#noSubscribers++;
      return 'no_subscribers';
    }
    for (let i = 0; i < n; i++) {
      try {
        handlers[i]!(payload, actor, topic);
      } catch (error) {
        this.#handlerError(error, topic);
      }
    }
    this.#delivered++;
    return 'delivered';
  }

  /** Subscribes to one exact topic (no wildcards: ACL patterns are for publishers). Returns a function (also `Disposable`) that unsubscribes. */
  subscribe<T = unknown>(topic: string, handler: MessageHandler<T>): Subscription {
    if (this.#closed) throw new GuardError('CLOSED', 'MessageBus is closed');
    if (typeof topic !== 'string' || topic.length === 0) {
      throw new GuardError('INVALID_INPUT', 'topic must be a non-empty string', { details: { field: 'topic' } });
    }
    // eventemitter3 holds the subscriptions (a unique context per subscription, so the same function can
    // subscribe twice); publish reads the topic's listener array, cached in a route and refreshed here.
    const token = {};
    this.#ee.on(topic, handler as never, token);
    this.#subscriptions.set(token, { topic, handler: handler as MessageHandler<never> });
    this.#subscribers++;
    this.#refreshTopic(topic);
    return createSubscription(() => {
      if (!this.#subscriptions.delete(token)) return;
      this.#subscribers--;
      this.#ee.off(topic, handler as never, token);
      this.#refreshTopic(topic);
    });
  }

  /** Calls `listener` for every denied publish. */
  onViolation(listener: (violation: AclViolation) => void): Subscription {
    return this.subscribe<AclViolation>(ACL_VIOLATION_TOPIC, (v) => listener(v));
  }

  /** Grants `actor` (or `'*'`) the right to publish to topics matching `topics`. */
  allow(actor: string, topics: readonly string[]): void {
    if (typeof actor !== 'string' || actor.length === 0) {
      throw new GuardError('INVALID_OPTION', 'ACL actor must be a non-empty string', { details: { field: 'acl', value: actor } });
    }
    if (!Array.isArray(topics)) {
      throw new GuardError('INVALID_OPTION', `ACL topics of "${actor}" must be an array of patterns`, { details: { field: 'acl' } });
    }
    for (const pattern of topics) this.#rules.push({ actor, matches: topicMatcher(pattern) });
    this.#clearRoutes();
  }

  /** Removes every rule naming `actor`. */
  revoke(actor: string): void {
    for (let i = this.#rules.length - 1; i >= 0; i--) if (this.#rules[i]!.actor === actor) this.#rules.splice(i, 1);
    this.#clearRoutes();
  }

  /** True when `actor` may publish to `topic` (ignores blacklist and rate limits). */
  isAllowed(actor: string, topic: string): boolean {
    return this.#decide(actor, topic);
  }

  /** True when `topic` is a control topic. */
  isControlTopic(topic: string): boolean {
    return this.#control.some((m) => m(topic));
  }

  /** Refuses every publish of `actor` for `durationMs` (default: until {@link unblacklist}). */
  blacklist(actor: string, options: { durationMs?: number } = {}): void {
    this.#assertOpen();
    const durationMs = options.durationMs ?? Infinity;
    assertNumberOption('durationMs', durationMs, { min: 1 });
    this.#blacklist.set(actor, this.#now() + durationMs);
  }

  /** Lifts a blacklist entry. @returns true when there was one. */
  unblacklist(actor: string): boolean {
    return this.#blacklist.delete(actor);
  }

  /** True when `actor` is blacklisted now. */
  isBlacklisted(actor: string): boolean {
    return this.#blacklist.size !== 0 && this.#isBlacklisted(actor);
  }

  /**
   * Limits publishes of EVERY actor to topics matching `topic` to `ratePerSec` (token bucket, burst =
   * max(1, rate); 0 blocks the topic) for `durationMs`. This throttles legitimate publishers too: to stop
   * one offender use {@link limitActor}.
   */
  setRateLimit(topic: string, ratePerSec: number, options: { durationMs?: number } = {}): void {
    this.#assertOpen();
    assertNumberOption('ratePerSec', ratePerSec, { min: 0 });
    const durationMs = options.durationMs ?? Infinity;
    assertNumberOption('durationMs', durationMs, { min: 1 });
    this.#limits.set(topic, { topic, matches: topicMatcher(topic), ...this.#limiter(ratePerSec, durationMs) });
    this.#limitsByTopic.clear();
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
    this.#assertOpen();
    if (typeof actor !== 'string' || actor.length === 0) throw new GuardError('INVALID_OPTION', 'actor must be a non-empty string', { details: { field: 'actor' } });
    assertNumberOption('ratePerSec', ratePerSec, { min: 0 });
    const durationMs = options.durationMs ?? Infinity;
    assertNumberOption('durationMs', durationMs, { min: 1 });
    const topic = options.topic ?? '**';
    const limit: Limiter = { actor, topic, matches: topicMatcher(topic), ...this.#limiter(ratePerSec, durationMs) };
    const list = (this.#actorLimits.get(actor) ?? []).filter((l) => l.topic !== topic);
    list.push(limit);
    this.#actorLimits.set(actor, list);
    return { actor, topic, ratePerSec, expiresAt: limit.expiresAt };
  }

  /** Removes `actor`'s limit on `topic` (or all of its limits when `topic` is omitted). @returns how many were removed. */
  clearActorLimit(actor: string, topic?: string): number {
    const list = this.#actorLimits.get(actor);
    if (!list) return 0;
    const kept = topic === undefined ? [] : list.filter((l) => l.topic !== topic);
    if (kept.length === 0) this.#actorLimits.delete(actor);
    else this.#actorLimits.set(actor, kept);
    return list.length - kept.length;
  }

  /** Removes a rate limit. @returns true when there was one. */
  clearRateLimit(topic: string): boolean {
    this.#limitsByTopic.clear();
    return this.#limits.delete(topic);
  }

  /**
   * Restarts the bus's routing: drops every cached ACL decision and topic route, replaces the emitter with
   * a fresh one and re-attaches every live subscription (violation listeners included) to it, drops
   * expired blacklist entries and rate limits, and clears the listener error count. ACL rules, live
   * blacklist entries and rate limits are kept. Publishes keep working across the restart.
   *
   * @example
   * const report = bus.restart(); // { restarts: 1, routesDropped: 12, subscribersReattached: 3, ... }
   */
  restart(): MessageBusRestartReport {
    this.#assertOpen();
    let routesDropped = 0;
    for (const routes of this.#routes.values()) routesDropped += routes.size;
    this.#clearRoutes();
    this.#limitsByTopic.clear();
    const ee = new EventEmitter();
    for (const [token, { topic, handler }] of this.#subscriptions) ee.on(topic, handler as never, token);
    this.#ee.removeAllListeners();
    this.#ee = ee;
    this.#topics.clear();
    for (const topic of new Set([...this.#subscriptions.values()].map((s) => s.topic))) this.#refreshTopic(topic);
    const now = this.#now();
    let expiredDropped = 0;
    for (const [actor, expiresAt] of this.#blacklist) if (expiresAt <= now) expiredDropped += Number(this.#blacklist.delete(actor));
    for (const [topic, limit] of this.#limits) if (limit.expiresAt <= now) expiredDropped += Number(this.#limits.delete(topic));
    for (const [actor, list] of this.#actorLimits) {
      const live = list.filter((l) => l.expiresAt > now);
      expiredDropped += list.length - live.length;
      if (live.length === 0) this.#actorLimits.delete(actor);
      else this.#actorLimits.set(actor, live);
    }
    const listenerErrorsCleared = this.#listenerErrors;
    this.#listenerErrors = 0;
    this.#restarts++;
    let actorLimits = 0;
    for (const list of this.#actorLimits.values()) actorLimits += list.length;
    const report: MessageBusRestartReport = {
      restarts: this.#restarts,
      routesDropped,
      subscribersReattached: this.#subscriptions.size,
      topics: this.#topics.size,
      blacklistKept: this.#blacklist.size,
      rateLimitsKept: this.#limits.size + actorLimits,
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
      this.#subscribers--;
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
    if (typeof sinceEpochMs !== 'number' || Number.isNaN(sinceEpochMs)) {
      throw new GuardError('INVALID_INPUT', 'sinceEpochMs must be a number', { details: { field: 'sinceEpochMs' } });
    }
    const kept = Math.min(this.#violationCount, VIOLATION_RING);
    let n = 0;
    for (let i = 1; i <= kept; i++) {
      if (this.#violationTimes[(this.#violationCount - i) % VIOLATION_RING]! < sinceEpochMs) break;
      n++;
    }
    return n;
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
    const blacklisted: { actor: string; expiresAt: number }[] = [];
    for (const [actor, expiresAt] of this.#blacklist) if (expiresAt > now) blacklisted.push({ actor, expiresAt });
    const rateLimits: TopicRateLimit[] = [];
    for (const l of this.#limits.values()) {
      if (l.expiresAt > now) rateLimits.push({ topic: l.topic, ratePerSec: l.ratePerSec, expiresAt: l.expiresAt });
    }
    const actorRateLimits: ActorRateLimit[] = [];
    for (const list of this.#actorLimits.values()) {
      for (const l of list) if (l.expiresAt > now) actorRateLimits.push({ actor: l.actor!, topic: l.topic, ratePerSec: l.ratePerSec, expiresAt: l.expiresAt });
    }
    return {
      healthy: !this.#closed,
      open: !this.#closed,
      restarts: this.#restarts,
      subscribers: this.#subscribers,
      blacklisted,
      rateLimits,
      actorRateLimits,
      listenerErrors: this.#listenerErrors,
      lastViolationAt: this.#violationCount === 0 ? undefined : this.#violationTimes[(this.#violationCount - 1) % VIOLATION_RING],
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
    this.#detachMessages();
    this.#detachViolations();
    this.#closeSignal.abort();
    this.#ee.removeAllListeners();
    this.#subscriptions.clear();
    this.#topics.clear();
    this.#clearRoutes();
    this.#subscribers = 0;
  }

  [Symbol.asyncDispose](): Promise<void> {
    return this.close();
  }

  #assertOpen(): void {
    if (this.#closed) throw new GuardError('CLOSED', 'MessageBus is closed');
  }

  #route(actor: string, topic: string): Route {
    if (typeof actor !== 'string' || typeof topic !== 'string' || topic.length === 0) {
      throw new GuardError('INVALID_INPUT', 'publish needs a string actor and a non-empty string topic', {
        details: { field: typeof actor !== 'string' ? 'actor' : 'topic' },
      });
    }
    let routes = this.#routes.get(actor);
    if (routes === undefined) {
      if (this.#routes.size >= this.#maxCached) this.#routes.clear();
      routes = new Map();
      this.#routes.set(actor, routes);
    }
    let route = routes.get(topic);
    if (route === undefined) {
      route = this.#decide(actor, topic) ? (this.#topics.get(topic) ?? NO_SUBSCRIBERS) : DENIED;
      if (routes.size >= this.#maxCached) routes.clear();
      routes.set(topic, route);
    }
    return route;
  }

  #refreshTopic(topic: string): void {
    const handlers = this.#ee.listeners(topic) as Route['handlers'];
    const existing = this.#topics.get(topic);
    if (handlers.length === 0) {
      if (existing) {
        this.#topics.delete(topic);
        existing.handlers = handlers;
        this.#clearRoutes();
      }
    } else if (existing) {
      existing.handlers = handlers;
    } else {
      this.#topics.set(topic, { handlers });
      // Cached routes point at NO_SUBSCRIBERS for this topic; rebuild them lazily.
      this.#clearRoutes();
    }
  }

  #clearRoutes(): void {
    this.#routes.clear();
    this.#lastActor = undefined;
    this.#lastTopic = undefined;
    this.#lastRoute = undefined;
  }

  #handlerError(error: unknown, topic: string): void {
    this.#listenerErrors++;
    this.#logger.error({ err: error, topic }, 'MessageBus handler threw');
  }

  #decide(actor: string, topic: string): boolean {
    if (topic.startsWith(RESERVED_PREFIX)) return actor === CANARY_ACTOR && topic === CANARY_TOPIC;
    const control = this.#control.length !== 0 && this.isControlTopic(topic);
    for (const rule of this.#rules) {
      if (rule.actor === actor || (!control && rule.actor === '*')) {
        if (rule.matches(topic)) return true;
      }
    }
    return false;
  }

  #isBlacklisted(actor: string): boolean {
    const expiresAt = this.#blacklist.get(actor);
    if (expiresAt === undefined) return false;
    if (expiresAt > this.#now()) return true;
    this.#blacklist.delete(actor);
    return false;
  }

  #take(topic: string): boolean {
    let limits = this.#limitsByTopic.get(topic);
    if (limits === undefined) {
      limits = [...this.#limits.values()].filter((l) => l.matches(topic));
      if (this.#limitsByTopic.size >= this.#maxCached) this.#limitsByTopic.clear();
      this.#limitsByTopic.set(topic, limits);
    }
    if (limits.length === 0) return true;
    const now = this.#now();
    for (const limit of limits) {
      if (limit.expiresAt <= now) {
        this.clearRateLimit(limit.topic);
        return this.#take(topic);
      }
      if (limit.bucket.tokens < 1) return false;
    }
    // Every matching limit had a token: take one from each, so a refused publish costs none.
    for (const limit of limits) limit.bucket.tryTake();
    return true;
  }

  #takeActor(actor: string, topic: string): boolean {
    const list = this.#actorLimits.get(actor);
    if (list === undefined) return true;
    const now = this.#now();
    let limit: Limiter | undefined;
    for (const l of list) {
      if (l.expiresAt <= now) {
        this.clearActorLimit(actor, l.topic);
        return this.#takeActor(actor, topic);
      }
      if (l.matches(topic) && (limit === undefined || l.ratePerSec < limit.ratePerSec)) limit = l;
    }
    if (limit === undefined) return true;
    return limit.bucket.tryTake();
  }

  #limiter(ratePerSec: number, durationMs: number): Pick<Limiter, 'ratePerSec' | 'expiresAt' | 'bucket'> {
    return { ratePerSec, expiresAt: this.#now() + durationMs, bucket: new TokenBucket({ ratePerSec, now: this.#now }) };
  }

  #violation(actor: string, topic: string): void {
    this.#denied++;
    const control = this.isControlTopic(topic);
    this.#violationCounts[control ? 'control' : 'topic']++;
    const at = this.#now();
    this.#violationTimes[this.#violationCount % VIOLATION_RING] = at;
    this.#violationCount++;
    const violation: AclViolation = { bus: this.name, actor, topic, control, at };
    const route = this.#topics.get(ACL_VIOLATION_TOPIC);
    if (route) {
      for (const handler of route.handlers) {
        try {
          handler(violation, 'message_bus', ACL_VIOLATION_TOPIC);
        } catch (error) {
          this.#handlerError(error, ACL_VIOLATION_TOPIC);
        }
      }
    }
    this.#guardBus?.emit('aclViolation', violation);
  }

  #flushMessages(metric: { inc(labels: Record<string, string>, value: number): void }): void {
    const current = {
      delivered: this.#delivered,
      no_subscribers: this.#noSubscribers,
      denied: this.#denied,
      blacklisted: this.#refused,
      rate_limited: this.#rateLimited,
    };
    for (const key of Object.keys(current) as (keyof typeof current)[]) {
      const delta = current[key] - this.#flushed[key];
      if (delta > 0) metric.inc({ bus: this.name, outcome: key }, delta);
    }
    this.#flushed = current;
  }
}
