import {
  GuardBus,
  GuardError,
  assertOpen,
  closeOnce,
  createId,
  isGuardMode,
  assertNumberOption,
  silentLogger,
  unrefInterval,
} from '@guard/core';
import type { Detection, Env, GuardMode, Logger, MetricsOptions, SanitizationScheduler } from '@guard/core';
import type { Detector, Finding } from './detector.js';
import { DEFAULT_THRESHOLDS, detectorChainOptionsFromEnv } from './parasite-config.js';
import type { ComponentConfig, ParasiteThresholds } from './parasite-config.js';
import { createParasiteMetrics } from './parasite-metrics.js';
import type { ParasiteMetrics } from './parasite-metrics.js';

/**
 * Options for {@link DetectorChain}.
 *
 * @example
 * new DetectorChain({ mode: 'full', scanIntervalMs: 1_000, scheduler, logger, registry });
 */
export interface DetectorChainOptions {
  /** Global mode. Default `detect`. */
  readonly mode?: GuardMode;
  /** Per-component overrides (`mode`, `sanitization`). */
  readonly components?: Readonly<Record<string, ComponentConfig>>;
  /** Detectors to start with; more can be added with `add`. */
  readonly detectors?: readonly Detector[];
  /** How often every detector is scanned; 0 turns the loop off (scan by hand or on events). Default 1000. */
  readonly scanIntervalMs?: number;
  /** Where detections are published. Default: a new `GuardBus`. */
  readonly bus?: GuardBus;
  /** Gets the "Parasite detected" lines. Default: silent. */
  readonly logger?: Logger;
  /**
   * Receives critical detections of components in `full` mode (e.g. `@guard/sanitizer`'s `DeferredSanitizer`).
   * Required for `full` (globally or for a component): without it the chain throws `INVALID_OPTION`
   * (field `scheduler`) instead of answering 503 "being healed" while nothing heals.
   */
  readonly scheduler?: SanitizationScheduler;
  /** `false` records none of the seed's metrics. Default true. */
  readonly metrics?: boolean;
  /** Where they register. Default: prom-client's global registry. */
  readonly registry?: MetricsOptions['registry'];
  /** Metric name prefix. Default `parasite`. */
  readonly metricsPrefix?: string;
  /**
   * In `full` mode, a critical detection that still holds is offered to the scheduler again after this
   * long (the scheduler declines duplicates), so a failed or declined sanitization is retried. Default 30000.
   */
  readonly rescheduleIntervalMs?: number;
  /** Thresholds handed to trackers built from this chain's config. Default {@link DEFAULT_THRESHOLDS}. */
  readonly thresholds?: ParasiteThresholds;
}

interface Entry {
  readonly detector: Detector;
  readonly active: Map<string, Detection>;
  pending: boolean;
}

const GLOBAL = '*';

/** `full` promises healing: without a scheduler nothing would heal, so refuse instead of 503-ing forever. */
function noScheduler(component?: string): GuardError {
  const where = component === undefined ? '' : ` for component ${component}`;
  return new GuardError(
    'INVALID_OPTION',
    `mode 'full'${where} needs a sanitizer: pass scheduler (e.g. a DeferredSanitizer from @guard/sanitizer) to the DetectorChain, or use mode 'detect'`,
    { details: { field: 'scheduler', ...(component === undefined ? {} : { component }) } },
  );
}

/**
 * Runs detectors on a scan loop and on their events, keeps the current detections per component (so a
 * per-request check is an O(1) read), logs "Parasite detected", records the seed's metrics, publishes
 * `detection` / `detectionCleared` on the `GuardBus` and, in `full` mode, hands critical detections to
 * a scheduler. `dry_run` and `detect` never change behaviour.
 *
 * Modes: `disabled` (not scanned), `dry_run` (scanned, logged and counted, nothing published on the bus),
 * `detect` (also published on the bus), `full` (also early 503s in the middleware and sanitization).
 *
 * @example
 * await using chain = new DetectorChain({ mode: 'detect', bus, logger });
 * chain.add(new WebSocketTracker(wss));
 * chain.setMode('full', 'websocket');
 */
export class DetectorChain implements AsyncDisposable {
  /** The bus detections go to. */
  readonly bus: GuardBus;
  /** Thresholds for trackers (from code or env). */
  readonly thresholds: ParasiteThresholds;
  readonly #logger: Logger;
  readonly #scheduler: SanitizationScheduler | undefined;
  readonly #metrics: ParasiteMetrics | undefined;
  readonly #entries: Entry[] = [];
  readonly #configs = new Map<string, ComponentConfig>();
  readonly #effective = new Map<string, GuardMode>();
  readonly #critical = new Map<string, Map<string, Detection>>();
  readonly #timer: NodeJS.Timeout | undefined;
  readonly #rescheduleIntervalMs: number;
  readonly #offeredAt = new WeakMap<Detection, number>();
  #mode: GuardMode;
  #closed = false;

  constructor(options: DetectorChainOptions = {}) {
    const mode = options.mode ?? 'detect';
    if (!isGuardMode(mode)) throw new GuardError('INVALID_OPTION', `mode must be one of disabled, dry_run, detect, full, got ${String(mode)}`, { details: { field: 'mode' } });
    this.#mode = mode;
    const scanIntervalMs = options.scanIntervalMs ?? 1_000;
    assertNumberOption('scanIntervalMs', scanIntervalMs, { min: 0 });
    this.#rescheduleIntervalMs = options.rescheduleIntervalMs ?? 30_000;
    assertNumberOption('rescheduleIntervalMs', this.#rescheduleIntervalMs, { min: 0 });
    for (const [component, config] of Object.entries(options.components ?? {})) {
      if (config.mode !== undefined && !isGuardMode(config.mode)) {
        throw new GuardError('INVALID_OPTION', `components.${component}.mode must be a mode, got ${String(config.mode)}`, { details: { field: `components.${component}.mode` } });
      }
      this.#configs.set(component, { ...config });
    }
    this.bus = options.bus ?? new GuardBus({ logger: options.logger });
    this.thresholds = options.thresholds ?? DEFAULT_THRESHOLDS;
    this.#logger = options.logger ?? silentLogger;
    this.#scheduler = options.scheduler;
    if (this.#scheduler === undefined) {
      if (mode === 'full') throw noScheduler();
      for (const [component, config] of this.#configs) if (config.mode === 'full' && config.sanitization !== false) throw noScheduler(component);
    }
    this.#metrics = options.metrics === false ? undefined : createParasiteMetrics(options);
    for (const detector of options.detectors ?? []) this.add(detector);
    if (scanIntervalMs > 0) this.#timer = unrefInterval(() => this.scan(), scanIntervalMs);
  }

  /**
   * A chain configured from the seed's env names ({@link detectorChainOptionsFromEnv}); options given in code win:
   * `{ ...detectorChainOptionsFromEnv(env), ...overrides }` (an option set to `undefined` leaves the env's value).
   * Without a logger in `overrides`, it logs JSON lines (or text with `PARASITE_LOG_STRUCTURED=false`) to stdout at `PARASITE_LOG_LEVEL`.
   *
   * @example
   * const chain = DetectorChain.fromEnv(process.env, { bus, scheduler });
   */
  static fromEnv(env: Env = process.env, overrides: DetectorChainOptions = {}): DetectorChain {
    const given = Object.fromEntries(Object.entries(overrides).filter(([, value]) => value !== undefined)) as DetectorChainOptions;
    return new DetectorChain({ ...detectorChainOptionsFromEnv(env), ...given });
  }

  /** Adds a detector (scanned from the next scan on) and returns it. */
  add<D extends Detector>(detector: D): D {
    assertOpen(this.#closed, 'DetectorChain');
    const entry: Entry = { detector, active: new Map(), pending: false };
    this.#entries.push(entry);
    detector.attach?.({ trigger: () => this.#trigger(entry), metrics: this.#metrics, logger: this.#logger });
    return detector;
  }

  /** Removes a detector and clears its detections; the detector itself is not closed. */
  remove(detector: Detector): boolean {
    const index = this.#entries.findIndex((e) => e.detector === detector);
    if (index < 0) return false;
    const [entry] = this.#entries.splice(index, 1);
    this.#clearAll(entry!, Date.now());
    return true;
  }

  /** The global mode. */
  get mode(): GuardMode {
    return this.#mode;
  }

  /** The mode in force for `component` (its own, else the global one; `sanitization: false` caps it at `detect`). O(1). */
  modeOf(component: string): GuardMode {
    const cached = this.#effective.get(component);
    if (cached) return cached;
    const config = this.#configs.get(component);
    let mode: GuardMode = this.#mode === 'disabled' ? 'disabled' : (config?.mode ?? this.#mode);
    if (mode === 'full' && config?.sanitization === false) mode = 'detect';
    this.#effective.set(component, mode);
    return mode;
  }

  /**
   * Changes the global mode (no `component`) or one component's mode at run time; emits `modeChange`.
   * `null` as mode removes a component's own mode so it follows the global one again.
   *
   * @example
   * chain.setMode('full');               // global
   * chain.setMode('dry_run', 'db');       // one component
   */
  setMode(mode: GuardMode | null, component?: string): void {
    assertOpen(this.#closed, 'DetectorChain');
    if (mode !== null && !isGuardMode(mode)) throw new GuardError('INVALID_OPTION', `mode must be one of disabled, dry_run, detect, full, got ${String(mode)}`, { details: { field: 'mode' } });
    if (mode === 'full' && this.#scheduler === undefined) throw noScheduler(component);
    const components = new Set<string>([...this.#entries.map((e) => String(e.detector.component)), ...this.#configs.keys()]);
    if (component !== undefined) components.add(component);
    const before = new Map([...components].map((c) => [c, this.modeOf(c)]));
    let from: GuardMode;
    if (component === undefined) {
      if (mode === null) throw new GuardError('INVALID_OPTION', 'the global mode cannot be null', { details: { field: 'mode' } });
      from = this.#mode;
      this.#mode = mode;
    } else {
      from = before.get(component)!;
      const config = this.#configs.get(component) ?? {};
      this.#configs.set(component, mode === null ? { sanitization: config.sanitization } : { ...config, mode });
    }
    this.#effective.clear();
    const now = Date.now();
    for (const entry of this.#entries) {
      if (this.modeOf(String(entry.detector.component)) === 'disabled') this.#clearAll(entry, now);
    }
    const to = component === undefined ? this.#mode : this.modeOf(component);
    if (from !== to) this.bus.emit('modeChange', { component: component ?? GLOBAL, from, to });
  }

  /**
   * Scans every detector whose component is not disabled; returns the detections that are new.
   *
   * @example
   * const fresh = chain.scan();
   */
  scan(now: number = Date.now()): Detection[] {
    if (this.#closed) return [];
    const fresh: Detection[] = [];
    for (const entry of this.#entries) this.#scanEntry(entry, now, fresh);
    return fresh;
  }

  /** Every detection whose condition holds now. */
  active(component?: string): Detection[] {
    const all: Detection[] = [];
    for (const entry of this.#entries) {
      if (component !== undefined && entry.detector.component !== component) continue;
      all.push(...entry.active.values());
    }
    return all;
  }

  /** One active critical detection of `component`, or undefined. O(1): the middleware calls this per request. */
  criticalFor(component: string): Detection | undefined {
    const map = this.#critical.get(component);
    if (map === undefined || map.size === 0) return undefined;
    return map.values().next().value;
  }

  /**
   * Hands a detection to the scheduler when its component is in `full` mode; false otherwise
   * (no scheduler, not full, or the scheduler declined because it is already queued).
   */
  requestSanitization(detection: Detection): boolean {
    if (this.#scheduler === undefined || this.modeOf(String(detection.component)) !== 'full') return false;
    try {
      return this.#scheduler.schedule(detection);
    } catch (error) {
      this.#logger.error({ err: error, detectionId: detection.id }, 'sanitization scheduler threw');
      return false;
    }
  }

  /** Stops the scan loop; detectors stay open (their owners close them). Safe to call twice. */
  readonly close = closeOnce(() => {
    this.#closed = true;
    if (this.#timer) clearInterval(this.#timer);
  });

  [Symbol.asyncDispose](): Promise<void> {
    return this.close();
  }

  #trigger(entry: Entry): void {
    if (entry.pending || this.#closed) return;
    entry.pending = true;
    setImmediate(() => {
      entry.pending = false;
      if (!this.#closed && this.#entries.includes(entry)) this.#scanEntry(entry, Date.now(), []);
    });
  }

  #scanEntry(entry: Entry, now: number, fresh: Detection[]): void {
    const component = String(entry.detector.component);
    const mode = this.modeOf(component);
    if (mode === 'disabled') {
      this.#clearAll(entry, now);
      return;
    }
    const started = performance.now();
    let findings: readonly Finding[];
    try {
      findings = entry.detector.scan(now);
    } catch (error) {
      this.#logger.error({ err: error, component }, 'detector scan failed');
      return;
    }
    this.#metrics?.detectionDuration.observe({ component }, (performance.now() - started) / 1_000);
    const seen = new Set<string>();
    for (const finding of findings) {
      const key = `${finding.pattern}\u0000${finding.resourceId}`;
      if (seen.has(key)) continue;
      seen.add(key);
      const existing = entry.active.get(key);
      if (existing !== undefined) {
        if (existing.severity === finding.severity) {
          if (mode === 'full' && existing.severity === 'critical' && now - (this.#offeredAt.get(existing) ?? 0) >= this.#rescheduleIntervalMs) {
            this.#offer(existing, now);
          }
          continue;
        }
        this.#clear(entry, key, existing, now, mode);
      }
      const detection: Detection = {
        id: createId('det'),
        component,
        pattern: finding.pattern,
        severity: finding.severity,
        resourceId: finding.resourceId,
        message: finding.message,
        details: finding.details,
        detectedAt: now,
        ...(finding.source && finding.source.length > 0 ? { source: finding.source } : {}),
      };
      entry.active.set(key, detection);
      if (detection.severity === 'critical') {
        let map = this.#critical.get(component);
        if (map === undefined) this.#critical.set(component, (map = new Map()));
        map.set(key, detection);
      }
      fresh.push(detection);
      this.#report(detection, mode);
    }
    for (const [key, detection] of entry.active) {
      if (!seen.has(key)) this.#clear(entry, key, detection, now, mode);
    }
  }

  #report(detection: Detection, mode: GuardMode): void {
    this.#metrics?.detected.inc({ component: detection.component, pattern: detection.pattern, severity: detection.severity });
    const line = {
      component: detection.component,
      pattern: detection.pattern,
      severity: detection.severity,
      resource: detection.resourceId,
      detectionId: detection.id,
      source: detection.source ?? [],
      mode,
      details: detection.details,
    };
    if (detection.severity === 'critical') this.#logger.error(line, 'Parasite detected');
    else this.#logger.warn(line, 'Parasite detected');
    if (mode === 'dry_run') return;
    this.bus.emit('detection', detection);
    if (mode === 'full' && detection.severity === 'critical') this.#offer(detection, detection.detectedAt);
  }

  #offer(detection: Detection, now: number): void {
    this.#offeredAt.set(detection, now);
    this.requestSanitization(detection);
  }

  #clear(entry: Entry, key: string, detection: Detection, now: number, mode: GuardMode): void {
    entry.active.delete(key);
    this.#critical.get(String(detection.component))?.delete(key);
    if (mode === 'dry_run') return;
    this.bus.emit('detectionCleared', {
      id: detection.id,
      component: String(detection.component),
      pattern: detection.pattern,
      resourceId: detection.resourceId,
      severity: detection.severity,
      clearedAt: now,
    });
  }

  #clearAll(entry: Entry, now: number): void {
    for (const [key, detection] of entry.active) this.#clear(entry, key, detection, now, 'detect');
  }
}
