import type { ParasiteRoute } from './parasite-middleware.js';

/** True when `url` is `prefix` or continues it with a new segment, a query or a fragment. */
export function matchesPrefix(url: string, prefix: string): boolean {
  if (!url.startsWith(prefix)) return false;
  if (url.length === prefix.length || prefix.endsWith('/')) return true;
  const next = url[prefix.length];
  return next === '/' || next === '?' || next === '#';
}

/**
 * The routes, indexed so a lookup does not grow with the number of prefix routes: a prefix can only match at a
 * segment boundary of the URL (before a `/`, `?`, `#` or the end, or just after a `/` for a prefix ending in `/`),
 * so the lookup tries the URL's boundaries up to the longest prefix, each one Map probe, and keeps the first route
 * (in the given order) that matches. Pattern routes, and the rare prefix holding `?` or `#`, are tested in order,
 * one test each, and only those listed before the best prefix match.
 */
export class RouteTable {
  /** prefix -> index of the first route with it */
  readonly #prefixes = new Map<string, number>();
  readonly #maxPrefixLength: number;
  /** routes tested one by one, in order: [index, route] */
  readonly #linear: [number, ParasiteRoute][] = [];
  readonly #components: string[];

  constructor(routes: readonly ParasiteRoute[]) {
    let max = -1;
    this.#components = routes.map((r) => r.component);
    routes.forEach((route, i) => {
      const prefix = route.prefix;
      if (prefix === undefined || prefix.includes('?') || prefix.includes('#')) {
        this.#linear.push([i, route]);
      } else if (!this.#prefixes.has(prefix)) {
        this.#prefixes.set(prefix, i);
        if (prefix.length > max) max = prefix.length;
      }
    });
    this.#maxPrefixLength = max;
  }

  componentOf(url: string): string | undefined {
    let best = this.#bestPrefix(url);
    for (const [i, route] of this.#linear) {
      if (i >= best) break;
      if (route.prefix !== undefined ? matchesPrefix(url, route.prefix) : route.pattern!.test(url)) {
        best = i;
        break;
      }
    }
    return best === Infinity ? undefined : this.#components[best];
  }

  /** Index of the first prefix route matching `url`, or Infinity. */
  #bestPrefix(url: string): number {
    const prefixes = this.#prefixes;
    if (prefixes.size === 0) return Infinity;
    let best = Infinity;
    const end = Math.min(url.length, this.#maxPrefixLength + 1);
    if (prefixes.size > 0 && url.length <= this.#maxPrefixLength) best = indexOr(prefixes.get(url), best);
    for (let i = 0; i < end; i++) {
      const c = url.charCodeAt(i);
      if (c === SLASH) {
        best = Math.min(indexOr(prefixes.get(url.slice(0, i)), best), i + 1 <= this.#maxPrefixLength ? indexOr(prefixes.get(url.slice(0, i + 1)), best) : best);
      } else if (c === QUESTION || c === HASH) {
        best = indexOr(prefixes.get(url.slice(0, i)), best);
        break;
      }
    }
    return best;
  }
}

const SLASH = 47;
const QUESTION = 63;
const HASH = 35;

function indexOr(index: number | undefined, best: number): number {
  return index !== undefined && index < best ? index : best;
}
