import { assertNumberOption, GuardError, TokenBucket } from '@guard/core';
import { topicMatcher } from './topic-pattern.js';

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

interface Limiter {
  readonly topic: string;
  readonly matches: (topic: string) => boolean;
  readonly ratePerSec: number;
  readonly expiresAt: number;
  /** Burst max(1, rate), so a rate below 1/s lets one publish through every 1/rate s; a rate of 0 blocks. */
  readonly bucket: TokenBucket;
}

/**
 * The bus's run-time rate limits, each a core `TokenBucket` with an expiry: per topic pattern for every actor, and per
 * actor (optionally per topic pattern). An expired limit is dropped when it is next consulted, so the publish path
 * needs no timer.
 *
 * @example
 * const limits = new BusRateLimits({ now: Date.now, maxCachedTopics: 10_000 });
 * limits.limitActor('rogue', 1, { durationMs: 60_000 });
 * limits.takeActor('rogue', 'orders.created'); // true, then false until a token refills
 */
export class BusRateLimits {
  readonly #now: () => number;
  readonly #maxCachedTopics: number;
  /** topic pattern -> its limit, for every actor. */
  readonly #topicLimits = new Map<string, Limiter>();
  /** topic -> the topic limits that apply to it (rebuilt when limits change). */
  readonly #limitsByTopic = new Map<string, Limiter[]>();
  /** actor -> its limits (per topic pattern). */
  readonly #actorLimits = new Map<string, (Limiter & { readonly actor: string })[]>();

  constructor(options: { now: () => number; maxCachedTopics: number }) {
    this.#now = options.now;
    this.#maxCachedTopics = options.maxCachedTopics;
  }

  /** True when some actor has a limit (the publish path skips {@link takeActor} otherwise). */
  get hasActorLimits(): boolean {
    return this.#actorLimits.size !== 0;
  }

  /** True when some topic has a limit (the publish path skips {@link takeTopic} otherwise). */
  get hasTopicLimits(): boolean {
    return this.#topicLimits.size !== 0;
  }

  /** Limits held, expired ones not yet dropped included. */
  get size(): number {
    let n = this.#topicLimits.size;
    for (const list of this.#actorLimits.values()) n += list.length;
    return n;
  }

  /** Limits every actor's publishes to topics matching `topic` (replacing a limit on the same pattern). */
  limitTopic(topic: string, ratePerSec: number, durationMs: number): void {
    const bucket = this.#bucket(ratePerSec, durationMs);
    this.#topicLimits.set(topic, { topic, matches: topicMatcher(topic), ...bucket });
    this.#limitsByTopic.clear();
  }

  /** Removes the limit on the pattern `topic`. @returns true when there was one. */
  clearTopic(topic: string): boolean {
    this.#limitsByTopic.clear();
    return this.#topicLimits.delete(topic);
  }

  /** Limits `actor`'s publishes to topics matching `topic` (replacing its limit on the same pattern). */
  limitActor(actor: string, ratePerSec: number, topic: string, durationMs: number): ActorRateLimit {
    if (typeof actor !== 'string' || actor.length === 0) throw new GuardError('INVALID_OPTION', 'actor must be a non-empty string', { details: { field: 'actor' } });
    const bucket = this.#bucket(ratePerSec, durationMs);
    const limit = { actor, topic, matches: topicMatcher(topic), ...bucket };
    const list = (this.#actorLimits.get(actor) ?? []).filter((l) => l.topic !== topic);
    list.push(limit);
    this.#actorLimits.set(actor, list);
    return { actor, topic, ratePerSec, expiresAt: limit.expiresAt };
  }

  /** Removes `actor`'s limit on `topic`, or all of its limits. @returns how many were removed. */
  clearActor(actor: string, topic?: string): number {
    const list = this.#actorLimits.get(actor);
    if (!list) return 0;
    const kept = topic === undefined ? [] : list.filter((l) => l.topic !== topic);
    if (kept.length === 0) this.#actorLimits.delete(actor);
    else this.#actorLimits.set(actor, kept);
    return list.length - kept.length;
  }

  /**
   * Takes a token from every topic limit matching `topic`, or none when one of them is empty (a refused publish
   * costs no token). @returns whether the publish may go.
   */
  takeTopic(topic: string): boolean {
    let limits = this.#limitsByTopic.get(topic);
    if (limits === undefined) {
      limits = [...this.#topicLimits.values()].filter((l) => l.matches(topic));
      if (this.#limitsByTopic.size >= this.#maxCachedTopics) this.#limitsByTopic.clear();
      this.#limitsByTopic.set(topic, limits);
    }
    if (limits.length === 0) return true;
    const now = this.#now();
    for (const limit of limits) {
      if (limit.expiresAt <= now) {
        this.clearTopic(limit.topic);
        return this.takeTopic(topic);
      }
      if (limit.bucket.tokens < 1) return false;
    }
    for (const limit of limits) limit.bucket.tryTake();
    return true;
  }

  /** Takes a token from the strictest of `actor`'s limits matching `topic`. @returns whether the publish may go. */
  takeActor(actor: string, topic: string): boolean {
    const list = this.#actorLimits.get(actor);
    if (list === undefined) return true;
    const now = this.#now();
    let limit: Limiter | undefined;
    for (const l of list) {
      if (l.expiresAt <= now) {
        this.clearActor(actor, l.topic);
        return this.takeActor(actor, topic);
      }
      if (l.matches(topic) && (limit === undefined || l.ratePerSec < limit.ratePerSec)) limit = l;
    }
    if (limit === undefined) return true;
    return limit.bucket.tryTake();
  }

  /** The topic limits live at `now`. */
  liveTopicLimits(now: number): TopicRateLimit[] {
    const live: TopicRateLimit[] = [];
    for (const l of this.#topicLimits.values()) if (l.expiresAt > now) live.push({ topic: l.topic, ratePerSec: l.ratePerSec, expiresAt: l.expiresAt });
    return live;
  }

  /** The actor limits live at `now`. */
  liveActorLimits(now: number): ActorRateLimit[] {
    const live: ActorRateLimit[] = [];
    for (const list of this.#actorLimits.values()) {
      for (const l of list) if (l.expiresAt > now) live.push({ actor: l.actor, topic: l.topic, ratePerSec: l.ratePerSec, expiresAt: l.expiresAt });
    }
    return live;
  }

  /** Drops the limits expired at `now` and the per-topic cache. @returns how many limits were dropped. */
  dropExpired(now: number): number {
    this.#limitsByTopic.clear();
    let dropped = 0;
    for (const [topic, limit] of this.#topicLimits) if (limit.expiresAt <= now) dropped += Number(this.#topicLimits.delete(topic));
    for (const [actor, list] of this.#actorLimits) {
      const live = list.filter((l) => l.expiresAt > now);
      dropped += list.length - live.length;
      if (live.length === 0) this.#actorLimits.delete(actor);
      else this.#actorLimits.set(actor, live);
    }
    return dropped;
  }

  #bucket(ratePerSec: number, durationMs: number): Pick<Limiter, 'ratePerSec' | 'expiresAt' | 'bucket'> {
    assertNumberOption('ratePerSec', ratePerSec, { min: 0 });
    assertNumberOption('durationMs', durationMs, { min: 1 });
    return { ratePerSec, expiresAt: this.#now() + durationMs, bucket: new TokenBucket({ ratePerSec, now: this.#now }) };
  }
}
