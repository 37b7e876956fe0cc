import type { Condition, ConditionOp } from './playbook-types.js';

const FORBIDDEN = new Set(['__proto__', 'prototype', 'constructor']);

/**
 * Reads a dotted path (`event.actor`, `steps.assess.output.count`) from plain data. Only own
 * properties are followed; `__proto__`, `prototype` and `constructor` never resolve.
 *
 * @example
 * getPath({ event: { actor: 'a' } }, 'event.actor'); // 'a'
 */
export function getPath(data: unknown, path: string): unknown {
  let current: unknown = data;
  for (const key of path.split('.')) {
    if (current === null || typeof current !== 'object' || FORBIDDEN.has(key)) return undefined;
    if (!Object.prototype.hasOwnProperty.call(current, key)) return undefined;
    current = (current as Record<string, unknown>)[key];
  }
  return current;
}

/** Compares `actual` with `expected` by `op`. Ordering ops need two numbers or two strings. */
export function compare(actual: unknown, op: ConditionOp, expected: unknown): boolean {
  switch (op) {
    case '==':
      return looseEqual(actual, expected);
    case '!=':
      return !looseEqual(actual, expected);
    case '>':
    case '>=':
    case '<':
    case '<=': {
      const a = toComparable(actual);
      const b = toComparable(expected);
      if (a === undefined || b === undefined || typeof a !== typeof b) return false;
      if (op === '>') return a > b;
      if (op === '>=') return a >= b;
      if (op === '<') return a < b;
      return a <= b;
    }
    case 'in':
      return Array.isArray(expected) && expected.some((e) => looseEqual(actual, e));
    case 'not_in':
      return Array.isArray(expected) && !expected.some((e) => looseEqual(actual, e));
    case 'exists':
      return actual !== undefined && actual !== null;
    case 'not_exists':
      return actual === undefined || actual === null;
    case 'contains':
      if (typeof actual === 'string') return typeof expected === 'string' && actual.includes(expected);
      return Array.isArray(actual) && actual.some((e) => looseEqual(e, expected));
  }
}

/**
 * Evaluates a declarative condition against `context`. No code is ever evaluated.
 *
 * @example
 * evaluateCondition({ field: 'event.violations', op: '>', value: 200 }, { event: { violations: 250 } }); // true
 */
export function evaluateCondition(condition: Condition | undefined, context: unknown): boolean {
  if (condition === undefined) return true;
  if ('all' in condition) return condition.all.every((c) => evaluateCondition(c, context));
  if ('any' in condition) return condition.any.some((c) => evaluateCondition(c, context));
  if ('not' in condition) return !evaluateCondition(condition.not, context);
  return compare(getPath(context, condition.field), condition.op, condition.value);
}

/** True when a condition reads a path under `prefix` (used by dry-run to mark unknowable conditions). */
export function conditionReads(condition: Condition | undefined, prefix: string): boolean {
  if (condition === undefined) return false;
  if ('all' in condition) return condition.all.some((c) => conditionReads(c, prefix));
  if ('any' in condition) return condition.any.some((c) => conditionReads(c, prefix));
  if ('not' in condition) return conditionReads(condition.not, prefix);
  return condition.field === prefix || condition.field.startsWith(`${prefix}.`);
}

const TEMPLATE = /\{\{\s*([A-Za-z0-9_.]+)\s*\}\}/g;
const WHOLE = /^\{\{\s*([A-Za-z0-9_.]+)\s*\}\}$/;

/**
 * Fills `{{ path }}` placeholders in params from the context. A string that is exactly one
 * placeholder keeps the value's type; otherwise values are interpolated as text. Nothing is evaluated.
 *
 * @example
 * resolveParams({ actor: '{{ event.actor }}' }, { event: { actor: 'bot' } }); // { actor: 'bot' }
 */
export function resolveParams(value: unknown, context: unknown): unknown {
  if (typeof value === 'string') {
    const whole = WHOLE.exec(value);
    if (whole) return getPath(context, whole[1]!);
    return value.replace(TEMPLATE, (_, path: string) => {
      const found = getPath(context, path);
      return found === undefined || found === null ? '' : typeof found === 'object' ? JSON.stringify(found) : String(found);
    });
  }
  if (Array.isArray(value)) return value.map((v) => resolveParams(v, context));
  if (value !== null && typeof value === 'object') {
    const out: Record<string, unknown> = {};
    for (const [k, v] of Object.entries(value)) out[k] = resolveParams(v, context);
    return out;
  }
  return value;
}

function toComparable(value: unknown): number | string | undefined {
  if (typeof value === 'number' && !Number.isNaN(value)) return value;
  if (typeof value === 'string') return value;
  if (typeof value === 'boolean') return value ? 1 : 0;
  return undefined;
}

function looseEqual(a: unknown, b: unknown): boolean {
  if (a === b) return true;
  if (typeof a === 'number' && typeof b === 'string') return String(a) === b;
  if (typeof a === 'string' && typeof b === 'number') return a === String(b);
  return false;
}
