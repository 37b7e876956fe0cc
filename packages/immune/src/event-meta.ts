import { EVENT_LIMITS } from './event.js';

// Fitting guard activity into an immune event: messages clipped, meta kept within the event limits.

/** `text` cut to `max` characters (with an ellipsis); blank text becomes `(no message)`. */
export function clip(text: string, max: number): string {
  const trimmed = text.trim() === '' ? '(no message)' : text;
  return trimmed.length <= max ? trimmed : `${trimmed.slice(0, max - 1)}…`;
}

/** True when `meta` is within the immune event limits (size and depth). */
export function fits(meta: Record<string, unknown>): boolean {
  try {
    const text = JSON.stringify(meta);
    return Buffer.byteLength(text) <= EVENT_LIMITS.maxMetaBytes && depth(meta) <= EVENT_LIMITS.maxMetaDepth;
  } catch {
    return false;
  }
}

/** Keeps meta within the event limits: drops the bulky fields first, then everything but the scalars. */
export function fitMeta(meta: Record<string, unknown>, bulky: readonly string[]): Record<string, unknown> {
  if (fits(meta)) return meta;
  const slim: Record<string, unknown> = { ...meta, truncated: true };
  for (const key of bulky) delete slim[key];
  if (fits(slim)) return slim;
  const scalars: Record<string, unknown> = { truncated: true };
  for (const [key, value] of Object.entries(meta)) {
    if (value === null || ['string', 'number', 'boolean'].includes(typeof value)) scalars[key] = typeof value === 'string' ? clip(value, 512) : value;
  }
  return scalars;
}

/** `value` when it is a finite number. */
export function num(value: unknown): number | undefined {
  return typeof value === 'number' && Number.isFinite(value) ? value : undefined;
}

/** `value` when it is a non-empty string; else a TypeError naming `field` (a malformed notice). */
export function str(value: unknown, field: string): string {
  if (typeof value !== 'string' || value.length === 0) throw new TypeError(`${field} must be a non-empty string`);
  return value;
}

/** One decimal. */
export function round1(value: number): number {
  return Math.round(value * 10) / 10;
}

/** Nesting depth of a JSON value (an object is 1). */
export function depth(value: unknown, level = 1): number {
  if (typeof value !== 'object' || value === null) return level - 1;
  if (level > EVENT_LIMITS.maxMetaDepth + 1) return level;
  let max = level;
  for (const child of Object.values(value)) max = Math.max(max, depth(child, level + 1));
  return max;
}

/**
 * Step results, at most 50, strings clipped. With `scalarsOnly` nested values (a step's `result`) are left out:
 * the fallback when the full results do not fit the event's meta.
 */
export function compactSteps(value: unknown, scalarsOnly = false): Record<string, unknown>[] | undefined {
  if (!Array.isArray(value)) return undefined;
  return value.slice(0, 50).map((step: unknown) => {
    if (typeof step !== 'object' || step === null) return { value: typeof step === 'string' ? clip(step, 512) : String(step) };
    const out: Record<string, unknown> = {};
    for (const [key, v] of Object.entries(step)) {
      if (typeof v === 'string') out[key] = clip(v, 512);
      else if (v === null || typeof v === 'number' || typeof v === 'boolean') out[key] = v;
      else if (!scalarsOnly && v !== undefined) out[key] = v;
    }
    return out;
  });
}

/** `3 steps: 2 ok, 1 failed`. */
export function stepSummary(steps: readonly Record<string, unknown>[]): string {
  const counts = new Map<string, number>();
  for (const step of steps) {
    const outcome = typeof step.outcome === 'string' ? step.outcome : typeof step.status === 'string' ? step.status : 'done';
    counts.set(outcome, (counts.get(outcome) ?? 0) + 1);
  }
  return `${steps.length} step${steps.length === 1 ? '' : 's'}: ${[...counts].map(([o, n]) => `${n} ${o}`).join(', ')}`;
}

/**
 * The finite numbers among `source`'s fields, renamed for meta (`{ recoveryMs: 'recovery_ms' }`); other values are
 * left out, so a notice's optional figures need no `...(x === undefined ? {} : { x })` each.
 *
 * @example
 * numbersOf(notice, { at: 'at', recoveryMs: 'recovery_ms' }); // { at: 1700000000000 } when recoveryMs is absent
 */
export function numbersOf<T extends object>(source: T, names: Partial<Record<keyof T & string, string>>): Record<string, number> {
  const out: Record<string, number> = {};
  for (const [from, to] of Object.entries(names) as Array<[string, string]>) {
    const value = num((source as Record<string, unknown>)[from]);
    if (value !== undefined) out[to] = value;
  }
  return out;
}
