import { GuardError } from '@guard/core';
import type { TopicRoute } from './topic-subscriptions.js';

/** The route of a publish the ACL denies. */
export const DENIED: TopicRoute = Object.freeze({ handlers: Object.freeze([]) });

/** No last pair yet: equal to no actor or topic a caller can pass, so a bad pair is always validated. */
const NONE = Symbol('none');

/**
 * The publish path's memory: per actor and topic, the route `resolve` chose ({@link DENIED} or the topic's
 * subscribers), with the last pair kept apart, so a repeated publish decides with two comparisons and any other with
 * two map lookups. The bus drops it when the ACL rules change or a topic gains or loses its subscribers.
 *
 * @example
 * const routes = new RouteCache((actor, topic) => (acl.decide(actor, topic) ? subscriptions.route(topic) : DENIED), 10_000);
 * routes.get('orders', 'orders.created') === DENIED; // false
 */
export class RouteCache {
  readonly #resolve: (actor: string, topic: string) => TopicRoute;
  readonly #maxCached: number;
  /** actor -> topic -> route. */
  readonly #routes = new Map<string, Map<string, TopicRoute>>();
  #lastActor: string | symbol = NONE;
  #lastTopic: string | symbol = NONE;
  #lastRoute: TopicRoute = DENIED;

  /** `maxCached`: most topics cached per actor, and most actors, before that map is reset. */
  constructor(resolve: (actor: string, topic: string) => TopicRoute, maxCached: number) {
    this.#resolve = resolve;
    this.#maxCached = maxCached;
  }

  /** The route of `actor` publishing to `topic`. Throws `INVALID_INPUT` for a non-string actor or an empty topic. */
  get(actor: string, topic: string): TopicRoute {
    if (actor === this.#lastActor && topic === this.#lastTopic) return this.#lastRoute;
    const route = this.#cached(actor, topic);
    this.#lastActor = actor;
    this.#lastTopic = topic;
    this.#lastRoute = route;
    return route;
  }

  /** Forgets every route. @returns how many were cached. */
  clear(): number {
    let dropped = 0;
    for (const topics of this.#routes.values()) dropped += topics.size;
    this.#routes.clear();
    this.#lastActor = NONE;
    this.#lastTopic = NONE;
    return dropped;
  }

  #cached(actor: string, topic: string): TopicRoute {
    if (typeof actor !== 'string' || typeof topic !== 'string' || topic.length === 0) {
      throw new GuardError('INVALID_INPUT', 'publish needs a string actor and a non-empty string topic', {
        details: { field: typeof actor !== 'string' ? 'actor' : 'topic' },
      });
    }
    let topics = this.#routes.get(actor);
    if (topics === undefined) {
      if (this.#routes.size >= this.#maxCached) this.#routes.clear();
      topics = new Map();
      this.#routes.set(actor, topics);
    }
    let route = topics.get(topic);
    if (route === undefined) {
      route = this.#resolve(actor, topic);
      if (topics.size >= this.#maxCached) topics.clear();
      topics.set(topic, route);
    }
    return route;
  }
}
