import { z } from 'zod';
import type { Condition, Playbook, PlaybookStep } from './playbook-types.js';

const UNIT_MS: Record<string, number> = { ms: 1, s: 1_000, sec: 1_000, m: 60_000, min: 60_000, h: 3_600_000 };
const DURATION = /^(\d+(?:\.\d+)?)\s*(ms|s|sec|m|min|h)$/;
const NAME = /^[a-z][a-z0-9_]*$/;
const MAX_CONDITION_DEPTH = 8;

/**
 * Parses `250ms`, `5s`, `10min`, `1h` or a number of milliseconds.
 * @returns ms, or undefined when invalid.
 *
 * @example
 * parseDurationMs('5min'); // 300000
 */
export function parseDurationMs(value: unknown): number | undefined {
  if (typeof value === 'number') return Number.isFinite(value) && value >= 0 ? value : undefined;
  if (typeof value !== 'string') return undefined;
  const match = DURATION.exec(value.trim());
  return match ? Number(match[1]) * UNIT_MS[match[2]!]! : undefined;
}

const duration = (max: number) =>
  z.union([z.number(), z.string()]).transform((value, ctx) => {
    const ms = parseDurationMs(value);
    if (ms === undefined || ms > max) {
      ctx.addIssue({ code: 'custom', message: `expected a duration like 500ms, 5s, 10min or 1h (at most ${max} ms), got ${JSON.stringify(value)}` });
      return z.NEVER;
    }
    return ms;
  });

const OPS = ['==', '!=', '>', '>=', '<', '<=', 'in', 'not_in', 'exists', 'not_exists', 'contains'] as const;

const scalar = z.union([z.string().max(1_000), z.number(), z.boolean(), z.null()]);
const conditionValue = z.union([scalar, z.array(scalar).max(100)]);

const leaf = z.strictObject({
  field: z.string().regex(/^[A-Za-z0-9_]+(\.[A-Za-z0-9_]+)*$/, 'expected a dotted path like event.violations').max(200),
  op: z.enum(OPS),
  value: conditionValue.optional(),
});

const condition: z.ZodType<Condition> = z.lazy(() =>
  z.union([
    leaf,
    z.strictObject({ all: z.array(condition).min(1).max(20) }),
    z.strictObject({ any: z.array(condition).min(1).max(20) }),
    z.strictObject({ not: condition }),
  ]),
) as z.ZodType<Condition>;

/** A condition, or a list of conditions that must all hold. */
const conditions = z.union([condition, z.array(condition).min(1).max(20)]).transform((c): Condition => (Array.isArray(c) ? { all: c } : c));

const params = z.record(z.string().max(100), z.unknown()).default({});

const step = z.strictObject({
  id: z.string().regex(NAME, 'expected snake_case').max(64).optional(),
  action: z.string().regex(NAME, 'expected a snake_case action name').max(64),
  params,
  when: conditions.optional(),
  timeout: duration(3_600_000).default(30_000),
  continue_on_error: z.boolean().default(false),
  fleet: z.boolean().default(false),
});

const check = z.strictObject({
  id: z.string().regex(NAME, 'expected snake_case').max(64).optional(),
  probe: z.string().regex(/^[a-z][a-z0-9_.]*$/, 'expected a probe name like bus.healthy').max(64),
  params,
  op: z.enum(OPS),
  value: conditionValue.optional(),
});

/** The zod schema of a playbook document (YAML keys are snake_case; durations are strings with a unit). */
export const playbookDocumentSchema = z.strictObject({
  name: z.string().regex(NAME, 'expected a snake_case name').max(100),
  description: z.string().max(2_000).optional(),
  trigger: z.strictObject({
    event: z.string().regex(/^[a-z][a-z0-9_.]*$/, 'expected an event type like message_bus.acl_violation').max(100),
    conditions: conditions.optional(),
  }),
  cooldown: duration(86_400_000).default(60_000),
  timeout: duration(3_600_000).default(300_000),
  steps: z.array(step).min(1).max(50),
  verify: z
    .strictObject({
      checks: z.array(check).min(1).max(20),
      retries: z.number().int().min(0).max(100).default(5),
      interval: duration(600_000).default(1_000),
      deadline: duration(3_600_000).default(30_000),
    })
    .optional(),
  rollback: z.array(step).max(50).default([]),
});

type Document = z.output<typeof playbookDocumentSchema>;

function conditionDepth(c: Condition | undefined): number {
  if (c === undefined) return 0;
  if ('all' in c) return 1 + Math.max(...c.all.map(conditionDepth));
  if ('any' in c) return 1 + Math.max(...c.any.map(conditionDepth));
  if ('not' in c) return 1 + conditionDepth(c.not);
  return 1;
}

/** Converts a validated document to a {@link Playbook}; returns problems it finds beyond the schema. */
export function toPlaybook(doc: Document, source?: string): { playbook: Playbook; problems: { path: (string | number)[]; message: string }[] } {
  const problems: { path: (string | number)[]; message: string }[] = [];
  const seen = new Set<string>();
  const mapSteps = (list: Document['steps'], key: 'steps' | 'rollback'): PlaybookStep[] =>
    list.map((s, i) => {
      const id = s.id ?? `${s.action}_${i + 1}`;
      if (seen.has(id)) problems.push({ path: [key, i, 'id'], message: `duplicate step id "${id}"` });
      seen.add(id);
      if (conditionDepth(s.when) > MAX_CONDITION_DEPTH) problems.push({ path: [key, i, 'when'], message: `conditions nest deeper than ${MAX_CONDITION_DEPTH}` });
      return {
        id,
        action: s.action,
        params: s.params,
        ...(s.when ? { when: s.when } : {}),
        timeoutMs: s.timeout,
        continueOnError: s.continue_on_error,
        fleet: s.fleet,
      };
    });
  const steps = mapSteps(doc.steps, 'steps');
  const rollback = mapSteps(doc.rollback, 'rollback');
  if (conditionDepth(doc.trigger.conditions) > MAX_CONDITION_DEPTH) {
    problems.push({ path: ['trigger', 'conditions'], message: `conditions nest deeper than ${MAX_CONDITION_DEPTH}` });
  }
  const playbook: Playbook = {
    name: doc.name,
    ...(doc.description === undefined ? {} : { description: doc.description }),
    trigger: { event: doc.trigger.event, ...(doc.trigger.conditions ? { conditions: doc.trigger.conditions } : {}) },
    cooldownMs: doc.cooldown,
    timeoutMs: doc.timeout,
    steps,
    ...(doc.verify
      ? {
          verify: {
            checks: doc.verify.checks.map((c, i) => ({
              id: c.id ?? `check_${i + 1}`,
              probe: c.probe,
              params: c.params,
              op: c.op,
              ...(c.value === undefined ? {} : { value: c.value }),
            })),
            retries: doc.verify.retries,
            intervalMs: doc.verify.interval,
            deadlineMs: doc.verify.deadline,
          },
        }
      : {}),
    rollback,
    ...(source === undefined ? {} : { source }),
  };
  return { playbook, problems };
}
