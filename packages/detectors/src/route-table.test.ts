import { describe, expect, it } from 'vitest';
import type { ParasiteRoute } from './parasite-middleware.js';
import { RouteTable, matchesPrefix } from './route-table.js';

/** The definition: the first route, in order, whose prefix or pattern matches. */
function firstMatch(routes: readonly ParasiteRoute[], url: string): string | undefined {
  return routes.find((r) => (r.prefix !== undefined ? matchesPrefix(url, r.prefix) : r.pattern!.test(url)))?.component;
}

describe('RouteTable', () => {
  it('answers as a first-match scan over the routes in order, for every URL shape', () => {
    const routes: ParasiteRoute[] = [
      { prefix: '/live', component: 'c0' },
      { pattern: /^\/live\/special/, component: 'c1' },
      { prefix: '/live/special', component: 'c2' },
      { prefix: '/a/', component: 'c3' },
      { prefix: '/a', component: 'c4' },
      { prefix: '/a/b', component: 'c5' },
      { pattern: /\?debug/, component: 'c6' },
      { prefix: '/q?x', component: 'c7' },
      { prefix: '/orders', component: 'c8' },
      { prefix: '/orders', component: 'c9' },
      { prefix: '/', component: 'c10' },
      { prefix: '', component: 'c11' },
    ];
    const urls = ['', '/', '/live', '/lively', '/live/', '/live?x', '/live#f', '/live/special', '/live/specialx', '/a', '/a/', '/ab', '/a/b', '/a/bc',
      '/a?b', '/q?x', '/q?xy', '/orders/1?debug', '/orders', '/ordersx', 'x', '/x/y/z', '/x?debug', '//', '/a//b'];
    for (let drop = 0; drop < routes.length; drop++) {
      const subset = routes.filter((_, i) => i !== drop);
      const table = new RouteTable(subset);
      for (const url of urls) expect([drop, url, table.componentOf(url)]).toEqual([drop, url, firstMatch(subset, url)]);
    }
  });

  it('keeps segment-aware prefixes: /live matches /live/x and /live?x, never /lively', () => {
    const table = new RouteTable([{ prefix: '/live', component: 'ws' }]);
    expect(table.componentOf('/live/x')).toBe('ws');
    expect(table.componentOf('/live?x')).toBe('ws');
    expect(table.componentOf('/lively')).toBeUndefined();
  });

  it('matches among 300 prefix routes the same as the scan', () => {
    const routes: ParasiteRoute[] = Array.from({ length: 300 }, (_, i) => ({ prefix: `/svc${i}/v${i % 3}`, component: `c${i}` }));
    const table = new RouteTable(routes);
    for (const url of ['/svc0/v0', '/svc299/v2/items?x=1', '/svc150/v0/', '/svc150/v1', '/nope', '/svc12/v0#x']) {
      expect(table.componentOf(url)).toBe(firstMatch(routes, url));
    }
  });
});
