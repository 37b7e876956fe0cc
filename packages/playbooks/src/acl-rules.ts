import { GuardError } from '@guard/core';
import { CANARY_ACTOR, CANARY_TOPIC, RESERVED_PREFIX } from './bus-topics.js';
import { topicMatcher } from './topic-pattern.js';

/** One ACL rule: `actor` (or `'*'` for every actor) may publish to topics matching `topics`. */
export interface AclRule {
  readonly actor: string;
  readonly topics: readonly string[];
}

/** Who may publish where, as the bus's options take it: a map actor -> topic patterns, or a list of rules. */
export type AclOption = Readonly<Record<string, readonly string[]>> | readonly AclRule[];

/** Options for {@link AclRules}. */
export interface AclRulesOptions {
  readonly acl?: AclOption;
  /** Topic patterns of control topics: only rules naming the actor (never `'*'`) grant them. */
  readonly controlTopics: readonly string[];
}

interface CompiledRule {
  readonly actor: string;
  readonly matches: (topic: string) => boolean;
}

/**
 * The bus's ACL: who may publish where. Rules grant an actor (or `'*'`) topic patterns; control topics are granted
 * only by rules naming the actor; the bus's reserved topics by none. Decisions are cached by the route cache, which
 * the bus drops when the rules change.
 *
 * @example
 * const acl = new AclRules({ acl: { orders: ['orders.*'] }, controlTopics: ['control.**'] });
 * acl.decide('orders', 'orders.created'); // true
 */
export class AclRules {
  readonly #rules: CompiledRule[] = [];
  readonly #control: ((topic: string) => boolean)[];

  constructor(options: AclRulesOptions) {
    this.#control = options.controlTopics.map((pattern) => topicMatcher(pattern));
    const acl = options.acl ?? {};
    const rules: readonly AclRule[] = Array.isArray(acl)
      ? (acl as readonly AclRule[])
      : Object.entries(acl as Record<string, readonly string[]>).map(([actor, topics]) => ({ actor, topics }));
    for (const rule of rules) this.allow(rule.actor, rule.topics);
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
  }

  /** Removes every rule naming `actor`. */
  revoke(actor: string): void {
    for (let i = this.#rules.length - 1; i >= 0; i--) if (this.#rules[i]!.actor === actor) this.#rules.splice(i, 1);
  }

  /** True when `topic` is a control topic. */
  isControlTopic(topic: string): boolean {
    return this.#control.some((m) => m(topic));
  }

  /** May `actor` publish to `topic`? Reserved topics: only the canary's own; control topics: only rules naming the actor. */
  decide(actor: string, topic: string): boolean {
    if (topic.startsWith(RESERVED_PREFIX)) return actor === CANARY_ACTOR && topic === CANARY_TOPIC;
    const control = this.#control.length !== 0 && this.isControlTopic(topic);
    for (const rule of this.#rules) {
      if (rule.actor === actor || (!control && rule.actor === '*')) {
        if (rule.matches(topic)) return true;
      }
    }
    return false;
  }
}
