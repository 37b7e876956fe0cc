import { assertNumberOption, captureSource, shouldSampleSource } from '@guard/core';
import type { CapturedSource, EventBusTarget } from '@guard/core';
import type { Finding } from './detector.js';
import { readAtScrape } from './parasite-metrics.js';
import type { ParasiteMetrics } from './parasite-metrics.js';
import { nextProcessNumber } from './process-numbers.js';
import { Tracker } from './tracker.js';

/** A listener as the tracker holds it: it only passes listeners through, it never calls them. */
type Listener = (...args: unknown[]) => unknown;
/** Any function a caller registers (`(order: Order) => void` too). */
type AnyListener = (...args: never[]) => unknown;
type EventName = string | symbol;

/**
 * The emitter shape the tracker wraps: `node:events` `EventEmitter` and eventemitter3 both fit.
 *
 * @example
 * const emitter: TrackableEmitter = new EventEmitter();
 */
export interface TrackableEmitter {
  // method syntax on purpose: its parameters are checked both ways, so typed emitters (eventemitter3's
  // `EventEmitter<Events>`, a `GuardBus`) fit as well as `node:events`
  on(event: EventName, listener: Listener, ...rest: unknown[]): unknown;
  off?(event: EventName, listener?: Listener, ...rest: unknown[]): unknown;
  removeListener(event: EventName, listener?: Listener, ...rest: unknown[]): unknown;
  listenerCount(event: EventName): number;
  eventNames(): EventName[];
}

/**
 * Options for {@link EventBusTracker}.
 *
 * @example
 * new EventBusTracker({ leakThreshold: 1_000, topSites: 5 });
 */
export interface EventBusTrackerOptions {
  /** An emitter holding more listeners than this (all events together) is leaking. Default 1000. */
  readonly leakThreshold?: number;
  /** How many top registering call sites a detection reports. Default 5. */
  readonly topSites?: number;
  /**
   * Capture registrations' stacks to report call sites. Sampled so it can stay on: per emitter, the first 16
   * registrations capture, then one in 64 at random (a leaking site repeats, so it shows among the samples;
   * `topSites` counts the sampled registrations still registered). Every registration is captured on an emitter under the `pruneUnowned` policy, whose
   * healing picks listeners by call site. Default true.
   */
  readonly traceSources?: boolean;
  /**
   * Opt-in policy: healing a threshold detection (`<name>`) also removes listeners that have **no owner**,
   * those registered at the top call site except its oldest. Off by default because a listener without an owner
   * may belong to a live client (one per WebSocket connection, say): removing it silently breaks that client.
   * Turn it on only for an emitter whose unowned listeners are known to be per-request leftovers. With it on, a
   * threshold detection is critical (healable); with it off it is a warning (reported, nothing removed).
   * Can be set per emitter in {@link EventBusTracker.track}. Default false.
   */
  readonly pruneUnowned?: boolean;
}

/**
 * Options for {@link EventBusTracker.track}.
 *
 * @example
 * tracker.track(bus, { name: 'orders' });
 */
export interface TrackEmitterOptions {
  /** A readable name, used in resource ids. Default `emitter_<n>`, numbered per process. */
  readonly name?: string;
  /** This emitter's {@link EventBusTrackerOptions.pruneUnowned} policy. Default: the tracker's. */
  readonly pruneUnowned?: boolean;
}

interface Registration {
  readonly event: EventName;
  readonly listener: Listener;
  readonly source: CapturedSource | undefined;
  readonly owner: WeakRef<object> | undefined;
}

interface Tracked {
  readonly name: string;
  readonly emitter: TrackableEmitter;
  readonly pruneUnowned: boolean;
  readonly byEvent: Map<EventName, Registration[]>;
  readonly restore: () => void;
  /** Registrations with an owner still registered. */
  readonly owned: Set<Registration>;
  /** Owned registrations whose owner was collected (filled by a FinalizationRegistry, so scans stay O(1)). */
  readonly stale: Set<Registration>;
  /** Registrations recorded so far (drives source sampling). */
  adds: number;
  /** Registered listeners whose stack was captured: what `topSites` groups. */
  readonly sampled: Set<Registration>;
  /** Bumped on every recorded add or remove: a threshold finding is rebuilt only when it changed. */
  version: number;
  leak: { readonly version: number; readonly total: number; readonly finding: Finding } | undefined;
}

const ADD = ['on', 'addListener', 'once', 'prependListener', 'prependOnceListener'] as const;
const REMOVE = ['off', 'removeListener'] as const;
const STALE = '#stale';
const EMPTY_SWEEP_AT = 256;

/**
 * C2: wraps `node:events` and eventemitter3 emitters and counts their listeners. Reports
 * `subscription_leak` when an emitter holds more than `leakThreshold` listeners (resource `<name>`, with the
 * top call sites that registered them: a warning, or critical under the opt-in `pruneUnowned` policy) or when
 * listeners' owners (held by `WeakRef`) were collected (resource `<name>#stale`, critical). Healing removes
 * only listeners whose owner was collected, never one whose owner is alive.
 *
 * @example
 * const tracker = chain.add(new EventBusTracker({ leakThreshold: 1_000 }));
 * tracker.track(bus, { name: 'orders' });
 * tracker.on(bus, 'order', (o) => view.render(o), { owner: view }); // removable once `view` is collected
 */
export class EventBusTracker extends Tracker<'eventbus', 'subscription_leak'> implements EventBusTarget {
  readonly leakThreshold: number;
  readonly topSites: number;
  readonly pruneUnowned: boolean;
  readonly #tracked = new Map<string, Tracked>();
  readonly #byEmitter = new WeakMap<object, Tracked>();
  #pendingOwner: WeakRef<object> | undefined;
  #depth = 0;
  readonly #finalizer = new FinalizationRegistry<{ tracked: Tracked; registration: Registration }>(({ tracked, registration }) => {
    if (!tracked.owned.has(registration)) return;
    tracked.stale.add(registration);
    if (tracked.stale.size === 1) this.trigger();
  });

  constructor(options: EventBusTrackerOptions = {}) {
    super('eventbus', 'subscription_leak', options);
    this.leakThreshold = options.leakThreshold ?? 1_000;
    this.topSites = options.topSites ?? 5;
    assertNumberOption('leakThreshold', this.leakThreshold, { min: 1, integer: true });
    assertNumberOption('topSites', this.topSites, { min: 1, integer: true });
    this.pruneUnowned = options.pruneUnowned ?? false;
  }

  /**
   * Wraps `emitter` in place (its add/remove methods are patched on the instance) and returns its name.
   * Listeners added before tracking are counted but have no call site.
   */
  track(emitter: TrackableEmitter, options: TrackEmitterOptions = {}): string {
    this.assertOpen();
    const known = this.#byEmitter.get(emitter);
    if (known) return known.name;
    // default names are numbered per process, so two trackers never report the same resource id
    const name = options.name ?? `emitter_${nextProcessNumber('emitter')}`;
    const target = emitter as unknown as Record<string, unknown>;
    const originals = new Map<string, { own: boolean; value: unknown }>();
    const tracked: Tracked = {
      name,
      emitter,
      pruneUnowned: options.pruneUnowned ?? this.pruneUnowned,
      byEvent: new Map(),
      owned: new Set(),
      stale: new Set(),
      adds: 0,
      sampled: new Set(),
      version: 0,
      leak: undefined,
      restore: () => {
        for (const [method, original] of originals) {
          if (original.own) target[method] = original.value;
          else delete target[method];
        }
      },
    };
    // eslint-disable-next-line @typescript-eslint/no-this-alias
    const tracker = this;
    for (const method of ADD) {
      const original = target[method];
      if (typeof original !== 'function') continue;
      originals.set(method, { own: Object.prototype.hasOwnProperty.call(target, method), value: original });
      const call = original as (...args: unknown[]) => unknown;
      const patched = function (this: unknown, event: EventName, listener: Listener) {
        // two arguments is every emitter's signature; anything else goes through as given
        // eslint-disable-next-line prefer-rest-params
        const args = arguments.length === 2 ? undefined : arguments;
        // node's `once` calls `this.on` with a wrapper: record only the outermost call.
        if (tracker.#depth > 0) return args === undefined ? call.call(this, event, listener) : call.apply(this, args as unknown as unknown[]);
        tracker.#depth++;
        let result: unknown;
        try {
          result = args === undefined ? call.call(this, event, listener) : call.apply(this, args as unknown as unknown[]);
        } finally {
          tracker.#depth--;
        }
        tracker.#record(tracked, event, listener, patched);
        return result;
      };
      target[method] = patched;
    }
    for (const method of REMOVE) {
      const original = target[method];
      if (typeof original !== 'function') continue;
      originals.set(method, { own: Object.prototype.hasOwnProperty.call(target, method), value: original });
      const call = original as (...args: unknown[]) => unknown;
      target[method] = function (this: unknown, event: EventName, listener?: Listener) {
        // eslint-disable-next-line prefer-rest-params
        const result = arguments.length === 2 ? call.call(this, event, listener) : call.apply(this, arguments as unknown as unknown[]);
        if (listener !== undefined) tracker.#unrecord(tracked, event, listener);
        return result;
      };
    }
    const removeAll = target.removeAllListeners;
    if (typeof removeAll === 'function') {
      originals.set('removeAllListeners', { own: Object.prototype.hasOwnProperty.call(target, 'removeAllListeners'), value: removeAll });
      target.removeAllListeners = function (this: unknown, event?: EventName) {
        const result = (removeAll as Listener).apply(this, event === undefined ? [] : [event]);
        const removed = event === undefined ? [...tracked.byEvent.values()].flat() : (tracked.byEvent.get(event) ?? []);
        for (const r of removed) {
          tracker.#forgetOwner(tracked, r);
          tracked.sampled.delete(r);
        }
        tracked.version++;
        if (event === undefined) tracked.byEvent.clear();
        else tracked.byEvent.delete(event);
        return result;
      };
    }
    this.#tracked.set(name, tracked);
    this.#byEmitter.set(emitter, tracked);
    return name;
  }

  /** Stops tracking `emitter` and restores its methods. */
  untrack(emitter: TrackableEmitter): boolean {
    const tracked = this.#byEmitter.get(emitter);
    if (!tracked) return false;
    tracked.restore();
    this.#byEmitter.delete(emitter);
    this.#tracked.delete(tracked.name);
    return true;
  }

  /**
   * Adds a listener whose lifetime is tied to `owner`: once `owner` is garbage-collected the listener
   * is stale, reported, and removable by `removeStale`. The emitter is tracked on first use. Safe to call in the
   * owner's constructor (the call site is formatted at once, so the capture does not keep the owner alive);
   * `listener` itself must not reference the owner, or the emitter keeps the owner alive through it.
   */
  on(emitter: TrackableEmitter, event: EventName, listener: AnyListener, options: { owner?: object } = {}): () => void {
    this.assertOpen();
    this.track(emitter);
    this.#pendingOwner = options.owner ? new WeakRef(options.owner) : undefined;
    const held = listener as Listener;
    try {
      emitter.on(event, held);
    } finally {
      this.#pendingOwner = undefined;
    }
    return () => {
      emitter.removeListener(event, held);
    };
  }

  listenerCount(): number {
    let total = 0;
    for (const tracked of this.#tracked.values()) total += countAll(tracked.emitter);
    return total;
  }

  /** `parasite_eventbus_subscriptions{event_type}`: every tracked emitter's listeners, counted when Prometheus scrapes. */
  protected override readMetrics(metrics: ParasiteMetrics, signal: AbortSignal): void {
    readAtScrape(metrics, 'eventbusSubscriptions', this, (tracker) => tracker.#listenersByEvent(), signal);
  }

  scan(_now: number): Finding[] {
    const findings: Finding[] = [];
    for (const tracked of this.#tracked.values()) {
      const counts: Record<string, number> = {};
      let total = 0;
      for (const event of tracked.emitter.eventNames()) {
        const n = tracked.emitter.listenerCount(event);
        total += n;
        counts[String(event)] = n;
      }
      if (total > this.leakThreshold) {
        // unchanged since the last scan: report the same finding, without regrouping call sites
        let leak = tracked.leak;
        if (leak === undefined || leak.version !== tracked.version || leak.total !== total) {
          const sites = this.#topSites(tracked);
          leak = tracked.leak = {
            version: tracked.version,
            total,
            finding: {
              pattern: 'subscription_leak',
              // Without the prune policy only collected owners' listeners can be removed, and those have their own
              // `#stale` detection: a critical here would answer 503 "being healed" while nothing heals.
              severity: tracked.pruneUnowned ? 'critical' : 'warning',
              resourceId: tracked.name,
              message: `${total} listeners on ${tracked.name} (leakThreshold ${this.leakThreshold})${sites[0] ? `, most from ${sites[0].site}` : ''}`,
              details: { total, leakThreshold: this.leakThreshold, byEvent: topCounts(counts, 10), topSites: sites, owned: tracked.owned.size, pruneUnowned: tracked.pruneUnowned },
              source: sites.map((s) => s.site),
            },
          };
        }
        findings.push(leak.finding);
      }
      if (tracked.stale.size > 0) {
        const stale = this.#stale(tracked);
        if (stale.length > 0) {
          findings.push({
            pattern: 'subscription_leak',
            severity: 'critical',
            resourceId: tracked.name + STALE,
            message: `${stale.length} listener(s) on ${tracked.name} outlived their collected owner`,
            details: { stale: stale.length, events: [...new Set(stale.map((r) => String(r.event)))] },
            source: stale.find((r) => r.source !== undefined)?.source?.frames(),
          });
        }
      }
    }
    return findings;
  }

  /**
   * Removes the listeners behind a detection whose owner was collected (for `<name>#stale` and `<name>` alike);
   * never a listener whose owner is alive. Under the opt-in `pruneUnowned` policy, a threshold detection
   * (`<name>`) also removes the listeners **without owner** registered at the top call site, except its oldest
   * registration. Returns how many were removed.
   */
  removeStale(resourceId: string): number {
    const isStale = resourceId.endsWith(STALE);
    const tracked = this.#tracked.get(isStale ? resourceId.slice(0, -STALE.length) : resourceId);
    if (!tracked) return 0;
    const victims = this.#stale(tracked);
    if (!isStale && tracked.pruneUnowned) {
      const top = this.#topSites(tracked)[0];
      const unowned: Registration[] = [];
      if (top) for (const list of tracked.byEvent.values()) for (const r of list) if (r.owner === undefined && r.source?.frames()[0] === top.site) unowned.push(r);
      unowned.shift();
      victims.push(...unowned);
    }
    for (const r of victims) tracked.emitter.removeListener(r.event, r.listener);
    if (victims.length > 0) this.trigger();
    return victims.length;
  }

  /** True when `resourceId` names an emitter of this tracker (`<name>` or `<name>#stale`): sanitizers route by it. */
  owns(resourceId: string): boolean {
    return this.#tracked.has(resourceId.endsWith(STALE) ? resourceId.slice(0, -STALE.length) : resourceId);
  }

  /** `close()`: stops tracking every emitter and restores their methods. */
  protected stopTracking(): void {
    for (const tracked of this.#tracked.values()) tracked.restore();
    this.#tracked.clear();
  }

  /** One `[labels, listeners]` pair per event of every tracked emitter (the gauge adds up equal labels). */
  *#listenersByEvent(): Generator<readonly [{ event_type: string }, number]> {
    for (const tracked of this.#tracked.values()) {
      for (const event of tracked.emitter.eventNames()) yield [{ event_type: String(event) }, tracked.emitter.listenerCount(event)];
    }
  }

  #record(tracked: Tracked, event: EventName, listener: Listener, skip: AnyListener): void {
    const owner = this.#pendingOwner;
    this.#pendingOwner = undefined;
    tracked.version++;
    // With an owner, format now: a lazy capture keeps the frames' receivers, often the owner itself, alive.
    const source =
      this.traceSources && (tracked.pruneUnowned || shouldSampleSource(tracked.adds++))
        ? captureSource({ skip: owner ? EventBusTracker.prototype.on : skip, limit: 3, depth: 10, eager: owner !== undefined })
        : undefined;
    let list = tracked.byEvent.get(event);
    if (!list) {
      // emptied lists stay (an on/off pair then costs no Map churn); swept when many events have come and gone
      if (tracked.byEvent.size >= EMPTY_SWEEP_AT) for (const [name, l] of tracked.byEvent) if (l.length === 0) tracked.byEvent.delete(name);
      tracked.byEvent.set(event, (list = []));
    }
    const registration: Registration = { event, listener, source, owner };
    list.push(registration);
    if (source !== undefined) tracked.sampled.add(registration);
    if (owner) {
      tracked.owned.add(registration);
      const target = owner.deref();
      if (target !== undefined) this.#finalizer.register(target, { tracked, registration }, registration);
    }
    if (list.length === this.leakThreshold + 1) this.trigger();
  }

  #unrecord(tracked: Tracked, event: EventName, listener: Listener): void {
    const list = tracked.byEvent.get(event);
    if (!list) return;
    tracked.version++;
    for (let i = list.length - 1; i >= 0; i--) {
      const r = list[i]!;
      if (r.listener === listener || (listener as { listener?: Listener }).listener === r.listener) {
        if (r.owner !== undefined) this.#forgetOwner(tracked, r);
        if (r.source !== undefined) tracked.sampled.delete(r);
        if (i === list.length - 1) list.pop();
        else list.splice(i, 1);
        break;
      }
    }
  }

  #stale(tracked: Tracked): Registration[] {
    const stale: Registration[] = [];
    for (const r of tracked.stale) if (r.owner!.deref() === undefined) stale.push(r);
    return stale;
  }

  #forgetOwner(tracked: Tracked, r: Registration): void {
    if (!r.owner) return;
    tracked.owned.delete(r);
    tracked.stale.delete(r);
    this.#finalizer.unregister(r);
  }

  /**
   * Groups the sampled registrations still registered by their first frame (formatted once per registration), most
   * first. Runs only when the emitter changed since the last scan (the finding is cached by `version`).
   */
  #topSites(tracked: Tracked): { site: string; count: number }[] {
    const bySite = new Map<string, number>();
    for (const r of tracked.sampled) {
      const site = r.source!.frames()[0];
      if (site) bySite.set(site, (bySite.get(site) ?? 0) + 1);
    }
    return [...bySite]
      .sort((a, b) => b[1] - a[1])
      .slice(0, this.topSites)
      .map(([site, count]) => ({ site, count }));
  }
}

function countAll(emitter: TrackableEmitter): number {
  let total = 0;
  for (const event of emitter.eventNames()) total += emitter.listenerCount(event);
  return total;
}

function topCounts(counts: Record<string, number>, n: number): Record<string, number> {
  return Object.fromEntries(
    Object.entries(counts)
      .sort((a, b) => b[1] - a[1])
      .slice(0, n),
  );
}
