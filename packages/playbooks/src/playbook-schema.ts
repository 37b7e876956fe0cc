import { isGuardError, parseDuration } from '@guard/core';
import { z } from 'zod';
import type { Condition, Playbook, PlaybookCheck, PlaybookStep } from './playbook-types.js';

const NAME = /^[a-z][a-z0-9_]*$/;
const MAX_CONDITION_DEPTH = 8;

/**
 * Milliseconds of a playbook duration (`250ms`, `5s`, `10min`, `1h`, or a number of ms), undefined when it is not one.
 *
 * @example
 * durationOrUndefined('5min'); // 300000
 */
export function durationOrUndefined(value: unknown): number | undefined {
  if (typeof value !== 'string' && typeof value !== 'number') return undefined;
  try {
    return parseDuration(value);
  } catch (error) {
    if (isGuardError(error, 'INVALID_INPUT')) return undefined;
    throw error;
  }
}

const duration = (max: number) =>
  z.union([z.number(), z.string()]).transform((value, ctx) => {
    const ms = durationOrUndefined(value);
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

const TEMPLATE_ONLY = /^\{\{\s*[A-Za-z0-9_.]+\s*\}\}$/;

const retry = z
  .strictObject({
    count: z.number().int().min(0).max(20),
    delay: duration(600_000).optional(),
    /** Alias of `delay` in ms (the issue's spelling). */
    delayMs: z.number().min(0).max(600_000).optional(),
  })
  .transform((r) => ({ count: r.count, delayMs: r.delay ?? r.delayMs ?? 0 }));

const step = z.strictObject({
  id: z.string().regex(NAME, 'expected snake_case').max(64).optional(),
  action: z.string().regex(NAME, 'expected a snake_case action name').max(64),
  params,
  when: conditions.optional(),
  timeout: duration(3_600_000).default(30_000),
  continue_on_error: z.boolean().default(false),
  fleet: z.boolean().default(false),
  retry: retry.optional(),
  for_each: z.string().regex(TEMPLATE_ONLY, 'expected one template like "{{ event.offenders }}"').max(200).optional(),
});

const check = z.strictObject({
  id: z.string().regex(NAME, 'expected snake_case').max(64).optional(),
  probe: z.string().regex(/^[a-z][a-z0-9_.]*$/, 'expected a probe name like bus.healthy').max(64),
  params,
  op: z.enum(OPS),
  value: conditionValue.optional(),
});

const steadyState = z.strictObject({
  checks: z.array(check).min(1).max(20),
  on_failure: z.enum(['continue', 'skip']).default('continue'),
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
  input: z.array(z.string().regex(/^[A-Za-z_][A-Za-z0-9_]*$/, 'expected a field name like actor')).max(50).optional(),
  concurrency_key: z.string().max(200).optional(),
  before: steadyState.optional(),
  after: steadyState.optional(),
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
export function toPlaybook(doc: Document, source?: string): { playbook: Playbook; problems: Problem[] } {
  const problems: Problem[] = [];
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
        retry: s.retry ?? { count: 0, delayMs: 0 },
        ...(s.for_each === undefined ? {} : { forEach: s.for_each }),
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
            checks: toChecks(doc.verify.checks, 'check'),
            retries: doc.verify.retries,
            intervalMs: doc.verify.interval,
            deadlineMs: doc.verify.deadline,
          },
        }
      : {}),
    rollback,
    ...(doc.input === undefined ? {} : { input: doc.input }),
    ...(doc.concurrency_key === undefined ? {} : { concurrencyKey: doc.concurrency_key }),
    ...(doc.before ? { before: { checks: toChecks(doc.before.checks, 'before'), onFailure: doc.before.on_failure } } : {}),
    ...(doc.after ? { after: { checks: toChecks(doc.after.checks, 'after'), onFailure: doc.after.on_failure } } : {}),
    ...(source === undefined ? {} : { source }),
  };
  problems.push(...checkReferences(playbook));
  return { playbook, problems };
}

function toChecks(list: Document['verify'] extends infer V ? (V extends { checks: infer C } ? C : never) : never, prefix: string): PlaybookCheck[] {
  return list.map((c, i) => ({
    id: c.id ?? `${prefix}_${i + 1}`,
    probe: c.probe,
    params: c.params,
    op: c.op,
    ...(c.value === undefined ? {} : { value: c.value }),
  }));
}

const TEMPLATE_REF = /\{\{\s*([A-Za-z0-9_.]+)\s*\}\}/g;
const ROOTS = new Set(['event', 'steps', 'playbook', 'run']);

/**
 * Every template and condition path must start at a known root; `item` only inside a `for_each` step;
 * `steps.<id>` only names an earlier step; with `input` declared, `event.<field>` must be one of them.
 * The loader runs it on every file; the engine runs it on playbooks built in code.
 */
export function checkReferences(playbook: Playbook): Problem[] {
  const problems: Problem[] = [];
  const input = playbook.input ? new Set(playbook.input) : undefined;
  const check = (path: string, where: (string | number)[], known: ReadonlySet<string>, item: boolean): void => {
    const [root, field] = path.split('.');
    const say = (message: string): void => void problems.push({ path: where, message: `playbook "${playbook.name}": ${message}`, field: path });
    if (root === 'item' || root === 'item_index') {
      if (!item) say(`"${path}" is only defined inside a for_each step`);
      return;
    }
    if (!ROOTS.has(root!)) return say(`"${path}" starts with unknown root "${root}" (expected event, steps, playbook, run or item)`);
    if (root === 'event' && input && field !== undefined && !input.has(field)) {
      return say(`"${path}" reads event.${field}, which is not a declared input (input: ${[...input].join(', ')})`);
    }
    if (root === 'steps' && field !== undefined && !known.has(field)) say(`"${path}" names step "${field}", which does not run before this point`);
  };
  const templates = (value: unknown, where: (string | number)[], known: ReadonlySet<string>, item: boolean): void => {
    if (typeof value === 'string') for (const m of value.matchAll(TEMPLATE_REF)) check(m[1]!, where, known, item);
    else if (Array.isArray(value)) value.forEach((v, i) => templates(v, [...where, i], known, item));
    else if (value !== null && typeof value === 'object') for (const [k, v] of Object.entries(value)) templates(v, [...where, k], known, item);
  };
  const fields = (c: Condition | undefined, where: (string | number)[], known: ReadonlySet<string>, item: boolean): void => {
    if (c === undefined) return;
    if ('all' in c) c.all.forEach((x) => fields(x, where, known, item));
    else if ('any' in c) c.any.forEach((x) => fields(x, where, known, item));
    else if ('not' in c) fields(c.not, where, known, item);
    else check(c.field, where, known, item);
  };
  fields(playbook.trigger.conditions, ['trigger', 'conditions'], new Set(), false);
  if (playbook.concurrencyKey !== undefined) templates(playbook.concurrencyKey, ['concurrency_key'], new Set(), false);
  const known = new Set<string>();
  for (const [key, list] of [['steps', playbook.steps], ['rollback', playbook.rollback]] as const) {
    list.forEach((s, i) => {
      fields(s.when, [key, i, 'when'], known, false);
      if (s.forEach !== undefined) templates(s.forEach, [key, i, 'for_each'], known, false);
      templates(s.params, [key, i, 'params'], known, s.forEach !== undefined);
      known.add(s.id);
    });
  }
  for (const [key, checks] of [['before', playbook.before?.checks], ['verify', playbook.verify?.checks], ['after', playbook.after?.checks]] as const) {
    checks?.forEach((c, i) => templates(c.params, [key, ...(key === 'verify' ? ['checks'] : ['checks']), i, 'params'], known, false));
  }
  return problems;
}

/** A problem found in a playbook, with where it is. */
export interface Problem {
  readonly path: (string | number)[];
  readonly message: string;
  readonly field?: string;
}
