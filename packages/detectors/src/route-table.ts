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
 * segment boundary of the URL (before a `/`, `?`, `#` or the end, or just after a `/` for a prefix ending in `/`).
 * The lookup walks the URL once, up to the longest prefix, keeping a rolling hash of what it has read; at a boundary
 * whose length some prefix has, it probes a Map by that number (no substring is made) and confirms with
 * `startsWith`. The first route (in the given order) that matches wins. Pattern routes, and the rare prefix holding
 * `?` or `#`, are tested in order, one test each, and only those listed before the best prefix match.
 */
export class RouteTable {
  /** rolling hash of a prefix -> the prefixes with that hash and the index of their first route */
  readonly #byHash = new Map<number, { prefix: string; index: number }[]>();
  /** lengths[n] === 1 when some prefix is n characters long */
  readonly #lengths: Uint8Array;
  readonly #maxPrefixLength: number;
  /** routes tested one by one, in order: [index, route] */
  readonly #linear: [number, ParasiteRoute][] = [];
  readonly #components: string[];

  constructor(routes: readonly ParasiteRoute[]) {
    let max = -1;
    this.#components = routes.map((r) => r.component);
    const seen = new Set<string>();
    routes.forEach((route, i) => {
      const prefix = route.prefix;
      if (prefix === undefined || prefix.includes('?') || prefix.includes('#')) {
        this.#linear.push([i, route]);
      } else if (!seen.has(prefix)) {
        seen.add(prefix);
        const h = hashOf(prefix, prefix.length);
        let bucket = this.#byHash.get(h);
        if (bucket === undefined) this.#byHash.set(h, (bucket = []));
        bucket.push({ prefix, index: i });
        if (prefix.length > max) max = prefix.length;
      }
    });
    this.#maxPrefixLength = max;
    this.#lengths = new Uint8Array(max + 1);
    for (const prefix of seen) this.#lengths[prefix.length] = 1;
  }

  componentOf(url: string): string | undefined {
    let best = this.#maxPrefixLength < 0 ? Infinity : this.#bestPrefix(url);
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
    const lengths = this.#lengths;
    const end = Math.min(url.length, this.#maxPrefixLength);
    let best = Infinity;
    let h = 0;
    let previous = -1;
    for (let i = 0; i <= end; i++) {
      const c = i < url.length ? url.charCodeAt(i) : -1;
      if (lengths[i] === 1 && (c === -1 || c === SLASH || c === QUESTION || c === HASH || previous === SLASH)) {
        const bucket = this.#byHash.get(h);
        if (bucket !== undefined) {
          for (const { prefix, index } of bucket) if (index < best && prefix.length === i && url.startsWith(prefix)) best = index;
        }
      }
      // a mapped prefix holds no `?` or `#`: none can reach past the first of them
      if (c === QUESTION || c === HASH || c === -1) break;
      h = (Math.imul(h, 31) + c) | 0;
      previous = c;
    }
    return best;
  }
}

function hashOf(text: string, length: number): number {
  let h = 0;
  for (let i = 0; i < length; i++) h = (Math.imul(h, 31) + text.charCodeAt(i)) | 0;
  return h;
}

const SLASH = 47;
const QUESTION = 63;
const HASH = 35;
