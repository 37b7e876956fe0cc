import { randomUUID } from 'node:crypto';
import { GuardError } from '@guard/core';
import { z } from 'zod';

/**
 * Severities of an immune event, weakest first (upper case, as on the wire).
 *
 * @example
 * IMMUNE_SEVERITIES.includes(value as ImmuneSeverity);
 */
export const IMMUNE_SEVERITIES = ['INFO', 'WARNING', 'CRITICAL'] as const;

/**
 * Kinds of immune event.
 *
 * @example
 * for (const type of IMMUNE_EVENT_TYPES) console.log(type, summary.byType[type]);
 */
export const IMMUNE_EVENT_TYPES = ['POLICY_VIOLATION', 'ERROR_SPIKE', 'SELF_HEALING_ACTION'] as const;

/**
 * `INFO | WARNING | CRITICAL`.
 *
 * @example
 * const severity: ImmuneSeverity = 'CRITICAL';
 */
export type ImmuneSeverity = (typeof IMMUNE_SEVERITIES)[number];

/**
 * `POLICY_VIOLATION | ERROR_SPIKE | SELF_HEALING_ACTION`.
 *
 * @example
 * const type: ImmuneEventType = 'SELF_HEALING_ACTION';
 */
export type ImmuneEventType = (typeof IMMUNE_EVENT_TYPES)[number];

/**
 * Bounds applied to every event.
 *
 * @example
 * const message = text.slice(0, EVENT_LIMITS.maxMessageLength);
 */
export const EVENT_LIMITS = {
  /** Longest `message`, in characters. */
  maxMessageLength: 4096,
  /** Longest `agentId` / `module`, in characters. */
  maxNameLength: 256,
  /** Largest `meta` as serialized JSON, in bytes. */
  maxMetaBytes: 16 * 1024,
  /** Deepest nesting of `meta` (the object itself is depth 1). */
  maxMetaDepth: 8,
} as const;

/**
 * What a caller publishes (camelCase TypeScript API). `id` and `createdAt` are set by the service.
 *
 * @example
 * const input: ImmuneEventInput = { severity: 'CRITICAL', type: 'ERROR_SPIKE', message: '5xx over 20%', module: 'api' };
 */
export interface ImmuneEventInput {
  readonly agentId?: string;
  readonly module?: string;
  readonly severity: ImmuneSeverity;
  readonly type: ImmuneEventType;
  readonly message: string;
  readonly meta?: Readonly<Record<string, unknown>>;
}

/**
 * A stored immune event (camelCase TypeScript API).
 *
 * @example
 * const e: ImmuneEvent = { id, severity: 'INFO', type: 'SELF_HEALING_ACTION', message: 'restarted', meta: {}, createdAt: Date.now() };
 */
export interface ImmuneEvent {
  /** A UUIDv7 string (time-ordered), set by the service. */
  readonly id: string;
  readonly agentId?: string;
  readonly module?: string;
  readonly severity: ImmuneSeverity;
  readonly type: ImmuneEventType;
  readonly message: string;
  readonly meta: Readonly<Record<string, unknown>>;
  /** Epoch milliseconds, set by the service. */
  readonly createdAt: number;
}

/**
 * An event as JSON on the wire (snake_case like the seed; `created_at` is ISO 8601).
 *
 * @example
 * const wire: ImmuneEventWire = toWireEvent(event); // { id, agent_id, severity, type, message, meta, created_at: '2026-...Z' }
 */
export interface ImmuneEventWire {
  readonly id: string;
  readonly agent_id?: string;
  readonly module?: string;
  readonly severity: ImmuneSeverity;
  readonly type: ImmuneEventType;
  readonly message: string;
  readonly meta: Readonly<Record<string, unknown>>;
  readonly created_at: string;
}

function metaProblem(value: unknown): string | undefined {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) return 'meta must be a JSON object';
  // Iterative walk (a hostile deeply nested value cannot blow the stack) that also bounds the JSON size from above:
  // a string costs at most 6 bytes per UTF-16 unit once escaped, so small metas never need a trial JSON.stringify.
  const nodes: unknown[] = [value];
  const depths: number[] = [1];
  let visited = 0;
  let upperBytes = 0;
  while (nodes.length > 0) {
    const node = nodes.pop();
    const depth = depths.pop()!;
    if (++visited > 100_000) return 'meta has too many values';
    if (typeof node === 'string') {
      upperBytes += node.length * 6 + 3;
    } else if (typeof node === 'number') {
      if (!Number.isFinite(node)) return 'meta numbers must be finite';
      upperBytes += 25;
    } else if (typeof node === 'boolean' || node === null) {
      upperBytes += 6;
    } else if (typeof node === 'object') {
      const isArray = Array.isArray(node);
      const kind = Object.getPrototypeOf(node);
      if (!isArray && kind !== Object.prototype && kind !== null) {
        return 'meta may hold only JSON values (plain objects, arrays, strings, numbers, booleans, null)';
      }
      if (depth > EVENT_LIMITS.maxMetaDepth) return `meta is nested deeper than ${EVENT_LIMITS.maxMetaDepth} levels`;
      upperBytes += 2;
      if (isArray) {
        for (const child of node as unknown[]) {
          nodes.push(child);
          depths.push(depth + 1);
        }
      } else {
        for (const key in node) {
          upperBytes += key.length * 6 + 4;
          nodes.push((node as Record<string, unknown>)[key]);
          depths.push(depth + 1);
        }
      }
    } else {
      return `meta may hold only JSON values, found ${typeof node}`;
    }
  }
  if (upperBytes <= EVENT_LIMITS.maxMetaBytes) return undefined;
  const size = Buffer.byteLength(JSON.stringify(value));
  if (size > EVENT_LIMITS.maxMetaBytes) return `meta is ${size} bytes, over the limit of ${EVENT_LIMITS.maxMetaBytes}`;
  return undefined;
}

const name = (field: string) =>
  z
    .string({ error: `${field} must be a string` })
    .min(1, { error: `${field} must not be empty` })
    .max(EVENT_LIMITS.maxNameLength, { error: `${field} must be at most ${EVENT_LIMITS.maxNameLength} characters` });

const common = {
  module: name('module').optional(),
  severity: z.enum(IMMUNE_SEVERITIES, { error: `severity must be one of ${IMMUNE_SEVERITIES.join(', ')}` }),
  type: z.enum(IMMUNE_EVENT_TYPES, { error: `type must be one of ${IMMUNE_EVENT_TYPES.join(', ')}` }),
  message: z
    .string({ error: 'message must be a string' })
    .refine((m) => m.trim().length > 0, { error: 'message must not be empty' })
    .refine((m) => m.length <= EVENT_LIMITS.maxMessageLength, {
      error: `message must be at most ${EVENT_LIMITS.maxMessageLength} characters`,
    }),
  meta: z
    .unknown()
    .superRefine((v, ctx) => {
      const problem = v === undefined ? undefined : metaProblem(v);
      if (problem) ctx.addIssue({ code: 'custom', message: problem });
    })
    .optional(),
};

/**
 * zod schema of {@link ImmuneEventInput} (camelCase; unknown keys are rejected). Prefer {@link parseEventInput},
 * which turns the first issue into a typed `INVALID_INPUT` error.
 *
 * @example
 * const ok = immuneEventInputSchema.safeParse(input).success;
 */
export const immuneEventInputSchema = z.strictObject({ agentId: name('agentId').optional(), ...common });

/**
 * zod schema of a published event on the wire (snake_case, as `POST /api/immune/event` takes it).
 *
 * @example
 * const ok = immuneEventWireInputSchema.safeParse({ severity: 'INFO', type: 'ERROR_SPIKE', message: 'x', agent_id: 'a' }).success;
 */
export const immuneEventWireInputSchema = z.strictObject({ agent_id: name('agent_id').optional(), ...common });

function firstIssue(error: z.ZodError): { field: string; message: string } {
  const issue = error.issues[0]!;
  const field = issue.path.length > 0 ? issue.path.map(String).join('.') : 'body';
  let message = issue.message;
  if (issue.code === 'unrecognized_keys') {
    const key = issue.keys[0] ?? 'unknown';
    return { field: key, message: `unknown field "${key}"` };
  }
  if (issue.code === 'invalid_type' && issue.input === undefined) message = `${field} is required`;
  return { field, message };
}

function invalidInput(error: z.ZodError, status = false): GuardError {
  const { field, message } = firstIssue(error);
  return new GuardError('INVALID_INPUT', message, {
    details: status ? { status: 400, title: 'Invalid event', field } : { field },
  });
}

/**
 * Validates a camelCase event input. Throws `INVALID_INPUT` naming the first bad field (`details.field`).
 *
 * @example
 * const input = parseEventInput({ severity: 'INFO', type: 'SELF_HEALING_ACTION', message: 'cache flushed' });
 */
export function parseEventInput(value: unknown): ImmuneEventInput {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) {
    throw new GuardError('INVALID_INPUT', 'event must be an object', { details: { field: 'body' } });
  }
  const result = immuneEventInputSchema.safeParse(value);
  if (!result.success) throw invalidInput(result.error);
  return result.data as ImmuneEventInput;
}

/**
 * Validates a snake_case wire body and maps it to the camelCase input.
 * Throws an HTTP-aware `INVALID_INPUT` (status 400, `field`), ready for `problemFromError`.
 *
 * @example
 * const input = parseWireEventInput(await readJsonBody(req));
 */
export function parseWireEventInput(value: unknown): ImmuneEventInput {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) {
    throw new GuardError('INVALID_INPUT', 'body must be a JSON object', { details: { status: 400, title: 'Invalid event', field: 'body' } });
  }
  const result = immuneEventWireInputSchema.safeParse(value);
  if (!result.success) throw invalidInput(result.error, true);
  const { agent_id, ...rest } = result.data;
  return { ...(agent_id === undefined ? {} : { agentId: agent_id }), ...rest } as ImmuneEventInput;
}

/**
 * Maps a stored event to its snake_case wire form.
 *
 * @example
 * sendJson(res, 200, toWireEvent(event));
 */
export function toWireEvent(event: ImmuneEvent): ImmuneEventWire {
  return {
    id: event.id,
    ...(event.agentId === undefined ? {} : { agent_id: event.agentId }),
    ...(event.module === undefined ? {} : { module: event.module }),
    severity: event.severity,
    type: event.type,
    message: event.message,
    meta: event.meta,
    created_at: new Date(event.createdAt).toISOString(),
  };
}

/**
 * A time-ordered UUIDv7 string for an event created at `at` (epoch ms).
 *
 * @example
 * createEventId(Date.now()); // '019a....-....-7...-....-............'
 */
export function createEventId(at: number = Date.now()): string {
  if (at !== lastIdMs) {
    lastIdMs = at;
    lastIdSeq = 0;
    const ts = Math.max(0, Math.floor(at)).toString(16).padStart(12, '0').slice(-12);
    lastIdPrefix = `${ts.slice(0, 8)}-${ts.slice(8)}-7`;
  } else {
    lastIdSeq = (lastIdSeq + 1) & 0xfff;
  }
  // rand_a holds a per-millisecond sequence (RFC 9562 method 1), so ids of one process sort in creation order
  // (past 4,096 ids in one millisecond the sequence wraps; ids stay unique by their 62 random bits).
  // randomUUID() is 'xxxxxxxx-xxxx-4xxx-Vxxx-xxxxxxxxxxxx': its variant and last 62 random bits follow.
  hex3 ??= Array.from({ length: 0x1000 }, (_, i) => i.toString(16).padStart(3, '0'));
  return lastIdPrefix + hex3[lastIdSeq]! + randomUUID().slice(18);
}

let hex3: string[] | undefined;
let lastIdMs = -1;
let lastIdSeq = 0;
let lastIdPrefix = '';
