import { SCENARIOS } from './chaos-scenarios.js';

/** Paths the demo serves as they are (each is its own template). */
export const DEMO_PATHS: readonly string[] = [
  '/',
  '/dashboard.js',
  '/dashboard.css',
  '/favicon.ico',
  '/favicon.svg',
  '/dashboard/state',
  '/dashboard/stream',
  '/metrics',
  '/livez',
  '/readyz',
  '/guard/mode',
  '/self-check',
  '/self-check/memory',
  '/self-check/cache',
  '/self-check/baseline',
  '/self-check/detailed',
  '/self-check/restart',
  '/self-check/force-memory-check',
  '/self-check/thresholds',
  '/api/analyses',
  '/api/immune/event',
  '/api/immune/events',
  '/api/immune/health',
  '/api/immune/stream',
];
const EXACT = new Set(DEMO_PATHS);
const SCENARIO_PATHS = new Set(SCENARIOS.map((name) => `/chaos/${name}`));

/**
 * The demo's route template for a path, for metric labels: the fixed paths as they are, `/chaos/:scenario` and
 * `/api/analyses/:id`; anything else (scanners, typos) is undefined, so a label never carries a raw URL.
 *
 * @example
 * demoRouteTemplate('/api/analyses/abc') // '/api/analyses/:id'
 */
export function demoRouteTemplate(path: string): string | undefined {
  if (EXACT.has(path)) return path;
  if (SCENARIO_PATHS.has(path)) return '/chaos/:scenario';
  if (/^\/api\/analyses\/[\w-]{1,64}$/.test(path)) return '/api/analyses/:id';
  return undefined;
}

/** Routes whose answer is a long-lived stream (kept out of latency figures). */
export function isStreamingRoute(route: string): boolean {
  return route === '/dashboard/stream' || route === '/api/immune/stream';
}
