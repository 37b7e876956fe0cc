/**
 * The topic on which the bus publishes every denied publish.
 *
 * @example
 * bus.subscribe(ACL_VIOLATION_TOPIC, (v) => console.log(v));
 */
export const ACL_VIOLATION_TOPIC = 'message_bus.acl_violation';

/**
 * The actor and topic of {@link MessageBus.canary}: reserved, so no application actor can publish or fake it.
 *
 * @example
 * bus.canary(); // { delivered: true, outcome: 'delivered', latencyMs: 0.02 }
 */
export const CANARY_ACTOR = 'message_bus.canary';
/** See {@link CANARY_ACTOR}. */
export const CANARY_TOPIC = 'message_bus.canary';

/** Topics under this prefix belong to the bus itself: no ACL rule grants them, only the canary may publish its own. */
export const RESERVED_PREFIX = 'message_bus.';

/** The actor the bus's own notices (violations) are delivered as. */
export const BUS_ACTOR = 'message_bus';
