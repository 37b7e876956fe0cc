import type {} from './errors.js';

export {
  IMMUNE_SEVERITIES,
  IMMUNE_EVENT_TYPES,
  EVENT_LIMITS,
  immuneEventInputSchema,
  immuneEventWireInputSchema,
  parseEventInput,
  parseWireEventInput,
  toWireEvent,
  createEventId,
} from './event.js';
export type { ImmuneSeverity, ImmuneEventType, ImmuneEventInput, ImmuneEvent, ImmuneEventWire } from './event.js';
export type { ImmuneEventNotice } from './bus-events.js';
export { emptyCounters } from './event-store.js';
export type { EventStore, EventQuery, EventCounts } from './event-store.js';
export { MemoryEventStore, createMemoryStore, newestFirst } from './memory-store.js';
export type { MemoryEventStoreOptions } from './memory-store.js';
export { GroupCommitter } from './group-commit.js';
export type { GroupCommitterOptions } from './group-commit.js';
export { KyselyEventStore, createKyselyEventStore } from './kysely-store.js';
export type { KyselyEventStoreOptions } from './kysely-store.js';
export { dialectOf } from './store-dialect.js';
export type { EventStoreDialect } from './store-dialect.js';
export type { SqliteHandle } from './sqlite-writer.js';
export { ImmuneService, toStreamEnvelope } from './immune-service.js';
export type {
  ImmuneServiceOptions,
  RecentEventsOptions,
  ImmuneHealthStatus,
  ImmuneHealthSummary,
  ImmuneStreamEvents,
  ImmuneStreamEnvelope,
  ImmuneStreamPayload,
  ImmuneStreamEventName,
} from './immune-service.js';
export { bridgeGuardBus, classifyDetection } from './bridge.js';
export type { GuardBridge, GuardBridgeOptions } from './bridge.js';
export { createImmuneHandler } from './http-handler.js';
export type { ImmuneHandler, ImmuneHandlerOptions } from './http-handler.js';
export { IMMUNE_ENV, immuneConfigFromEnv, immuneHandlerOptionsFromEnv, immuneOptionsFromEnv, immuneStoreOptionsFromEnv } from './env.js';
export type { ImmuneEnvConfig } from './env.js';
export { FleetMembership } from './fleet-membership.js';
export type { FleetMembershipOptions, FleetInstance } from './fleet-membership.js';
export { FleetEventStream } from './fleet-stream.js';
export type { FleetEventStreamOptions } from './fleet-stream.js';
export { createFleetHandler } from './fleet-handler.js';
export type { FleetHandlerOptions } from './fleet-handler.js';
export { FleetDb } from './fleet-db.js';
export type { FleetPoolLike } from './fleet-db.js';
// Moved to @guard/core (shared with @guard/playbooks); re-exported so existing imports keep working.
export { PgNotificationListener } from '@guard/core';
export type { PgNotificationListenerOptions, ListenPoolLike, ListenClientLike } from '@guard/core';
