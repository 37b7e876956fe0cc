/**
 * One thing or many, by name: `x`, `[x, y]` or `{ main: x, replica: y }`.
 *
 * @example
 * const db: OneOrMany<DbInput> = { orders: ordersPool, audit: auditPool };
 */
export type OneOrMany<T> = T | readonly T[] | Readonly<Record<string, T>>;

/**
 * Normalises {@link OneOrMany} to `[name, value]` pairs. A single value is named `base`; an array gets
 * `base`, `base_2`, ...; a record keeps its keys. Names become resource-id prefixes and metric labels.
 */
export function named<T>(input: OneOrMany<T> | undefined, base: string, isOne: (value: unknown) => value is T): [string, T][] {
  if (input === undefined || input === null) return [];
  if (isOne(input)) return [[base, input]];
  if (Array.isArray(input)) return input.map((value: T, i) => [i === 0 ? base : `${base}_${i + 1}`, value]);
  return Object.entries(input as Readonly<Record<string, T>>);
}
