import type { ImmuneEvent, ImmuneEventType, ImmuneSeverity } from './event.js';

/** One row of the events table, as the store writes it and the fleet stream reads it back. */
export interface EventRow {
  id: string;
  agent_id: string | null;
  module: string | null;
  severity: string;
  type: string;
  message: string;
  meta: string;
  created_at: number | string;
}

/** The row the store inserts for `e`. */
export function toRow(e: ImmuneEvent): EventRow {
  return {
    id: e.id,
    agent_id: e.agentId ?? null,
    module: e.module ?? null,
    severity: e.severity,
    type: e.type,
    message: e.message,
    meta: JSON.stringify(e.meta),
    created_at: e.createdAt,
  };
}

/** The event a row holds. */
export function fromRow(r: EventRow): ImmuneEvent {
  return {
    id: r.id,
    ...(r.agent_id === null ? {} : { agentId: r.agent_id }),
    ...(r.module === null ? {} : { module: r.module }),
    severity: r.severity as ImmuneSeverity,
    type: r.type as ImmuneEventType,
    message: r.message,
    meta: JSON.parse(r.meta) as Record<string, unknown>,
    createdAt: Number(r.created_at),
  };
}
