/** Counters shared by every copy of this package in the process (ESM and CJS builds both loaded, or two versions). */
const COUNTERS = Symbol.for('@guard/detectors.processNumbers');

/**
 * The next number of `kind` in this process: 1, 2, 3... Trackers number their resources with it (`ws_<n>`,
 * `emitter_<n>`, unnamed pools and writers) so two trackers never report the same resource id, even when two
 * copies of the package are loaded. The counters live on `globalThis` under a registered symbol, created on
 * first use (nothing happens at import).
 *
 * @example
 * const id = `ws_${nextProcessNumber('websocket-connection')}`;
 */
export function nextProcessNumber(kind: string): number {
  const holder = globalThis as { [COUNTERS]?: Map<string, number> };
  const counters = (holder[COUNTERS] ??= new Map<string, number>());
  const next = (counters.get(kind) ?? 0) + 1;
  counters.set(kind, next);
  return next;
}
