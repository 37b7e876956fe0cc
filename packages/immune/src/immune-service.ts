import type {} from './errors.js';
import type { Env, GuardBus, Logger, MetricsOptions, Subscription } from '@guard/core';
import type { ImmuneEventNotice } from './bus-events.js';
import { assertNumberOption, Emitter, errorMessage, GuardError, isGuardError, silentLogger } from '@guard/core';
import type { ImmuneEvent, ImmuneEventInput, ImmuneEventType, ImmuneSeverity } from './event.js';
import { createEventId, IMMUNE_EVENT_TYPES, IMMUNE_SEVERITIES, parseEventInput } from './event.js';
import type { EventStore } from './event-store.js';
import { immuneOptionsFromEnv } from './env.js';
import { immuneCounter } from './metrics.js';
import { MemoryEventStore } from './memory-store.js';

/**
 * The seed's stream payload (snake_case), shared by both stream events.
 *
 * @example
 * service.on('immune.event_published', ({ payload }) => log(payload.event_id, payload.severity));
 */
export interface ImmuneStreamPayload {
  readonly event_id: string;
  readonly severity: ImmuneSeverity;
  readonly type: ImmuneEventType;
  readonly message: string;
  readonly agent_id?: string;
  readonly module?: string;
  readonly meta: Readonly<Record<string, unknown>>;
  /** ISO 8601; set on `immune.event_published`. */
  readonly published_at?: string;
  /** ISO 8601; set on `immune.critical_event`. */
  readonly critical_at?: string;
}

/**
 * Names of the service's stream events.
 *
 * @example
 * const name: ImmuneStreamEventName = 'immune.critical_event';
 */
export type ImmuneStreamEventName = 'immune.event_published' | 'immune.critical_event';

/**
 * The seed's envelope around every stream event.
 *
 * @example
 * service.on('immune.critical_event', (e: ImmuneStreamEnvelope) => page(e.payload.message));
 */
export interface ImmuneStreamEnvelope {
  readonly type: ImmuneStreamEventName;
  readonly source: 'immune_service';
  readonly target: string;
  readonly payload: ImmuneStreamPayload;
}

/**
 * The stream: `immune.event_published` for every stored event, `immune.critical_event` for CRITICAL ones.
 *
 * @example
 * service.on('immune.critical_event', (envelope) => page(envelope.payload.message));
 */
export interface ImmuneStreamEvents {
  'immune.event_published': [ImmuneStreamEnvelope];
  'immune.critical_event': [ImmuneStreamEnvelope];
}

/**
 * Options for {@link ImmuneService}.
 *
 * @example
 * new ImmuneService({ store, bus, defaultWindowMs: 15 * 60_000, maxLimit: 500 });
 */
export interface ImmuneServiceOptions extends MetricsOptions {
  /** Where events are kept. Default: a {@link MemoryEventStore} of 10,000 events. */
  readonly store?: EventStore;
  /** Close the store when the service closes. Default true. */
  readonly closeStore?: boolean;
  /** Also announce every stored event as `immuneEvent` on this bus. */
  readonly bus?: GuardBus;
  /** The envelope's `target`. Default `'all'`. */
  readonly target?: string;
  /** Window of `getRecentEvents`/`healthSummary` when none is given. Default 1 hour. */
  readonly defaultWindowMs?: number;
  /** Largest accepted window. Default 30 days. */
  readonly maxWindowMs?: number;
  /** `limit` of `getRecentEvents` when none is given. Default 100 (or `maxLimit` if smaller). */
  readonly defaultLimit?: number;
  /** Larger limits are capped to this. Default 1,000. */
  readonly maxLimit?: number;
  readonly logger?: Logger;
  /** Clock (epoch ms); injectable for tests. */
  readonly now?: () => number;
}

/**
 * Options of {@link ImmuneService.getRecentEvents}.
 *
 * @example
 * await service.getRecentEvents({ windowMs: 3_600_000, type: 'POLICY_VIOLATION', limit: 50 });
 */
export interface RecentEventsOptions {
  /** Events of the last `windowMs`; ignored when `since` is given. */
  readonly windowMs?: number;
  /** Events created at or after this epoch ms. */
  readonly since?: number;
  readonly severity?: ImmuneSeverity;
  readonly type?: ImmuneEventType;
  /** Capped to `maxLimit`. */
  readonly limit?: number;
  readonly signal?: AbortSignal;
}

/**
 * Overall status of a window: `critical` with any CRITICAL event, `warning` with any WARNING, else `healthy`.
 *
 * @example
 * if ((await service.healthSummary()).status === 'critical') alert();
 */
export type ImmuneHealthStatus = 'healthy' | 'warning' | 'critical';

/**
 * The answer of {@link ImmuneService.healthSummary}.
 *
 * @example
 * const { status, total, bySeverity, latestCritical } = await service.healthSummary({ windowMs: 900_000 });
 */
export interface ImmuneHealthSummary {
  readonly status: ImmuneHealthStatus;
  readonly windowMs: number;
  /** Start of the window, epoch ms. */
  readonly since: number;
  readonly total: number;
  readonly bySeverity: Readonly<Record<ImmuneSeverity, number>>;
  readonly byType: Readonly<Record<ImmuneEventType, number>>;
  readonly latestCritical: ImmuneEvent | undefined;
  /** When the summary was computed, epoch ms. */
  readonly generatedAt: number;
}

function inputError(field: string, message: string): GuardError {
  return new GuardError('INVALID_INPUT', message, { details: { field } });
}

type StreamListener<K extends keyof ImmuneStreamEvents> = (...args: ImmuneStreamEvents[K]) => unknown;

/**
 * The immune event log: validates, stores (durably, with group commit in the database stores) and streams events.
 * `publishEvent` resolves with the id once the event is durable. Stream listeners run after that, on a later turn
 * of the event loop, isolated from each other (a core `Emitter`): a listener that throws, rejects or is slow never
 * fails or delays a publish; it is logged and counted.
 *
 * @example
 * await using service = new ImmuneService({ store: await createSqliteStore({ path: 'immune.db' }) });
 * service.onCriticalEvent((e) => console.log('CRITICAL', e.payload.message));
 * const id = await service.publishEvent({ severity: 'CRITICAL', type: 'ERROR_SPIKE', message: '5xx > 20%' });
 * const health = await service.healthSummary({ windowMs: 15 * 60_000 });
 */
export class ImmuneService {
  readonly store: EventStore;
  readonly defaultWindowMs: number;
  readonly maxWindowMs: number;
  readonly defaultLimit: number;
  readonly maxLimit: number;
  readonly #closeStore: boolean;
  readonly #bus: GuardBus | undefined;
  readonly #target: string;
  readonly #logger: Logger;
  readonly #now: () => number;
  readonly #stream: Emitter<ImmuneStreamEvents>;
  readonly #events: ReturnType<typeof immuneCounter<'severity' | 'type'>>;
  readonly #rejected: ReturnType<typeof immuneCounter<'reason'>>;
  readonly #listenerErrors: ReturnType<typeof immuneCounter<'event'>>;
  #outbox: ImmuneEvent[] = [];
  #dispatchScheduled = false;
  #inFlight = 0;
  #idle: Array<() => void> = [];
  #closed = false;
  #closing: Promise<void> | undefined;

  /**
   * A service configured by the environment ({@link immuneOptionsFromEnv}) and `overrides`; the code wins.
   *
   * @example
   * const service = ImmuneService.fromEnv(process.env, { store: await createSqliteStore({ path: 'immune.db' }) });
   */
  static fromEnv(env: Env = process.env, overrides: ImmuneServiceOptions = {}): ImmuneService {
    return new ImmuneService({ ...immuneOptionsFromEnv(env), ...overrides });
  }

  constructor(options: ImmuneServiceOptions = {}) {
    const defaultWindowMs = options.defaultWindowMs ?? 3_600_000;
    const maxWindowMs = options.maxWindowMs ?? 30 * 86_400_000;
    const maxLimit = options.maxLimit ?? 1_000;
    const defaultLimit = options.defaultLimit ?? Math.min(100, typeof maxLimit === 'number' && maxLimit >= 1 ? maxLimit : 100);
    assertNumberOption('maxWindowMs', maxWindowMs, { min: 1 });
    assertNumberOption('defaultWindowMs', defaultWindowMs, { min: 1, max: maxWindowMs });
    assertNumberOption('maxLimit', maxLimit, { min: 1, max: 100_000, integer: true });
    assertNumberOption('defaultLimit', defaultLimit, { min: 1, max: maxLimit, integer: true });
    if (options.store !== undefined && (typeof options.store.insert !== 'function' || typeof options.store.counts !== 'function')) {
      throw new GuardError('INVALID_OPTION', 'store must implement EventStore', { details: { field: 'store' } });
    }
    if (options.target !== undefined && (typeof options.target !== 'string' || options.target === '')) {
      throw new GuardError('INVALID_OPTION', 'target must be a non-empty string', { details: { field: 'target' } });
    }
    this.store = options.store ?? new MemoryEventStore();
    this.#closeStore = options.closeStore ?? true;
    this.#bus = options.bus;
    this.#target = options.target ?? 'all';
    this.#logger = options.logger ?? silentLogger;
    this.#now = options.now ?? Date.now;
    this.defaultWindowMs = defaultWindowMs;
    this.maxWindowMs = maxWindowMs;
    this.defaultLimit = defaultLimit;
    this.maxLimit = maxLimit;
    this.#events = immuneCounter(options, { name: 'events_total', help: 'Immune events stored', labelNames: ['severity', 'type'] });
    this.#rejected = immuneCounter(options, {
      name: 'publish_rejected_total',
      help: 'Events not stored, by reason (invalid, queue_full, store_unavailable, store_error, closed)',
      labelNames: ['reason'],
    });
    this.#listenerErrors = immuneCounter(options, { name: 'listener_errors_total', help: 'Stream listeners that threw', labelNames: ['event'] });
    this.#stream = new Emitter<ImmuneStreamEvents>({
      onError: (error, event) => {
        this.#listenerErrors?.inc({ event });
        this.#logger.error({ err: error, event }, 'immune stream listener threw');
      },
    });
  }

  /** Calls `listener` with the envelope of every stored event. */
  onEventPublished(listener: StreamListener<'immune.event_published'>): Subscription {
    return this.#stream.on('immune.event_published', listener);
  }

  /** Calls `listener` with the envelope of every stored CRITICAL event. */
  onCriticalEvent(listener: StreamListener<'immune.critical_event'>): Subscription {
    return this.#stream.on('immune.critical_event', listener);
  }

  /** Adds a stream listener (`context` is its `this`); the Subscription ends this registration only. */
  on<K extends keyof ImmuneStreamEvents>(event: K, listener: StreamListener<K>, context?: unknown): Subscription {
    return this.#stream.on(event, listener, context);
  }

  /** Like {@link on}; the listener is removed before its first call (`events.once(service, name)` works too). */
  once<K extends keyof ImmuneStreamEvents>(event: K, listener: StreamListener<K>, context?: unknown): Subscription {
    return this.#stream.once(event, listener, context);
  }

  /** Alias of {@link on}. */
  addListener<K extends keyof ImmuneStreamEvents>(event: K, listener: StreamListener<K>, context?: unknown): Subscription {
    return this.#stream.on(event, listener, context);
  }

  /** Removes one registration of `listener`; without one, every listener of `event`. */
  off<K extends keyof ImmuneStreamEvents>(event: K, listener?: StreamListener<K>, context?: unknown): this {
    if (listener) this.#stream.off(event, listener, context);
    else this.#stream.removeAllListeners(event);
    return this;
  }

  /** Alias of {@link off}. */
  removeListener<K extends keyof ImmuneStreamEvents>(event: K, listener?: StreamListener<K>, context?: unknown): this {
    return this.off(event, listener, context);
  }

  /** Removes every listener of `event`, or of every event. */
  removeAllListeners(event?: keyof ImmuneStreamEvents): this {
    this.#stream.removeAllListeners(event);
    return this;
  }

  /** How many listeners `event` has (the service skips building envelopes nobody listens to). */
  listenerCount(event: keyof ImmuneStreamEvents): number {
    return this.#stream.listenerCount(event);
  }

  /** The stream events that have listeners. */
  eventNames(): (keyof ImmuneStreamEvents)[] {
    return this.#stream.eventNames();
  }

  /** Delivers a stream event to its listeners now (the fleet stream relays other replicas' events with it). */
  emit<K extends keyof ImmuneStreamEvents>(event: K, ...args: ImmuneStreamEvents[K]): boolean {
    return this.#stream.emit(event, ...args);
  }

  /**
   * Validates and stores an event; resolves with its id once it is durable in the store.
   * Rejects with `INVALID_INPUT` (naming `details.field`), `QUEUE_FULL`, `STORE_UNAVAILABLE`, `STORE_ERROR`, `ABORTED` or `CLOSED`;
   * a rejected event was not acknowledged (it may still have been stored if the connection died after the commit).
   */
  async publishEvent(input: ImmuneEventInput, options: { signal?: AbortSignal } = {}): Promise<string> {
    if (this.#closed) {
      this.#rejected?.inc({ reason: 'closed' });
      throw new GuardError('CLOSED', 'ImmuneService is closed');
    }
    if (options.signal?.aborted) throw new GuardError('ABORTED', 'publishEvent was aborted', { cause: options.signal.reason });
    let parsed: ImmuneEventInput;
    try {
      parsed = parseEventInput(input);
    } catch (error) {
      this.#rejected?.inc({ reason: 'invalid' });
      throw error;
    }
    const createdAt = this.#now();
    const event: { -readonly [K in keyof ImmuneEvent]: ImmuneEvent[K] } = {
      id: createEventId(createdAt),
      severity: parsed.severity,
      type: parsed.type,
      message: parsed.message,
      meta: parsed.meta ?? {},
      createdAt,
    };
    if (parsed.agentId !== undefined) event.agentId = parsed.agentId;
    if (parsed.module !== undefined) event.module = parsed.module;
    this.#inFlight++;
    try {
      await this.store.insert(event);
    } catch (error) {
      const reason = isGuardError(error, 'QUEUE_FULL') ? 'queue_full' : isGuardError(error, 'CLOSED') ? 'closed' : isGuardError(error, 'STORE_UNAVAILABLE') ? 'store_unavailable' : 'store_error';
      this.#rejected?.inc({ reason });
      throw isGuardError(error) ? error : new GuardError('STORE_ERROR', `storing the event failed: ${errorMessage(error)}`, { cause: error });
    } finally {
      if (--this.#inFlight === 0 && this.#idle.length > 0) {
        const idle = this.#idle;
        this.#idle = [];
        for (const wake of idle) wake();
      }
    }
    this.#announce(event);
    return event.id;
  }

  #announce(event: ImmuneEvent): void {
    this.#outbox.push(event);
    if (this.#dispatchScheduled) return;
    this.#dispatchScheduled = true;
    // Listeners run on a later turn, after the publishers' continuations: never in their way.
    setImmediate(() => this.#dispatch());
  }

  #dispatch(): void {
    this.#dispatchScheduled = false;
    const events = this.#outbox;
    this.#outbox = [];
    // Counted here, once per label set per turn: prom-client hashes labels on every inc().
    const counts = new Map<string, number>();
    for (const event of events) {
      const key = `${event.severity}|${event.type}`;
      counts.set(key, (counts.get(key) ?? 0) + 1);
    }
    for (const [key, n] of counts) {
      const [severity, type] = key.split('|') as [string, string];
      this.#events?.inc({ severity, type }, n);
    }
    for (const event of events) {
      const wantsAll = this.listenerCount('immune.event_published') > 0;
      const wantsCritical = event.severity === 'CRITICAL' && this.listenerCount('immune.critical_event') > 0;
      if (wantsAll) this.emit('immune.event_published', toStreamEnvelope(event, 'immune.event_published', this.#target));
      if (wantsCritical) this.emit('immune.critical_event', toStreamEnvelope(event, 'immune.critical_event', this.#target));
      // A stored event is already the bus's notice (same fields, read-only); the bus isolates its own listeners.
      this.#bus?.emit('immuneEvent', event satisfies ImmuneEventNotice);
    }
  }

  #window(windowMs: number | undefined): number {
    const value = windowMs ?? this.defaultWindowMs;
    if (typeof value !== 'number' || !Number.isFinite(value) || value <= 0 || value > this.maxWindowMs) {
      throw inputError('windowMs', `windowMs must be a number > 0 and <= ${this.maxWindowMs}, got ${String(value)}`);
    }
    return value;
  }

  /**
   * The newest events of a window (default `defaultWindowMs`), optionally filtered; `limit` is capped to `maxLimit`.
   * Rejects with `INVALID_INPUT` naming the bad option.
   *
   * @example
   * const critical = await service.getRecentEvents({ windowMs: 3_600_000, severity: 'CRITICAL', limit: 20 });
   */
  async getRecentEvents(options: RecentEventsOptions = {}): Promise<ImmuneEvent[]> {
    if (this.#closed) throw new GuardError('CLOSED', 'ImmuneService is closed');
    options.signal?.throwIfAborted();
    let since: number;
    if (options.since !== undefined) {
      if (typeof options.since !== 'number' || !Number.isFinite(options.since)) throw inputError('since', 'since must be epoch milliseconds');
      since = options.since;
    } else {
      since = this.#now() - this.#window(options.windowMs);
    }
    if (options.severity !== undefined && !IMMUNE_SEVERITIES.includes(options.severity)) {
      throw inputError('severity', `severity must be one of ${IMMUNE_SEVERITIES.join(', ')}`);
    }
    if (options.type !== undefined && !IMMUNE_EVENT_TYPES.includes(options.type)) {
      throw inputError('type', `type must be one of ${IMMUNE_EVENT_TYPES.join(', ')}`);
    }
    const limit = options.limit ?? this.defaultLimit;
    if (typeof limit !== 'number' || !Number.isInteger(limit) || limit < 1) throw inputError('limit', 'limit must be an integer >= 1');
    return this.store.query({
      since,
      ...(options.severity === undefined ? {} : { severity: options.severity }),
      ...(options.type === undefined ? {} : { type: options.type }),
      limit: Math.min(limit, this.maxLimit),
    });
  }

  /**
   * Counts by severity and type over a window, the latest critical event and an overall status.
   *
   * @example
   * const { status, bySeverity } = await service.healthSummary({ windowMs: 15 * 60_000 });
   */
  async healthSummary(options: { windowMs?: number; signal?: AbortSignal } = {}): Promise<ImmuneHealthSummary> {
    if (this.#closed) throw new GuardError('CLOSED', 'ImmuneService is closed');
    options.signal?.throwIfAborted();
    const windowMs = this.#window(options.windowMs);
    const now = this.#now();
    const since = now - windowMs;
    const counts = await this.store.counts(since);
    const status: ImmuneHealthStatus = counts.bySeverity.CRITICAL > 0 ? 'critical' : counts.bySeverity.WARNING > 0 ? 'warning' : 'healthy';
    return {
      status,
      windowMs,
      since,
      total: counts.total,
      bySeverity: counts.bySeverity,
      byType: counts.byType,
      latestCritical: counts.latestCritical,
      generatedAt: now,
    };
  }

  /** The envelope's `target`. */
  get target(): string {
    return this.#target;
  }

  /** Whether `close()` was called. */
  get closed(): boolean {
    return this.#closed;
  }

  /** Stops accepting events, waits for in-flight publishes, delivers pending stream events, closes the store (unless `closeStore: false`). */
  close(): Promise<void> {
    this.#closed = true;
    this.#closing ??= (async () => {
      if (this.#inFlight > 0) await new Promise<void>((resolve) => this.#idle.push(resolve));
      if (this.#outbox.length > 0) this.#dispatch();
      if (this.#closeStore) await this.store.close();
    })();
    return this.#closing;
  }

  [Symbol.asyncDispose](): Promise<void> {
    return this.close();
  }
}

/**
 * Wraps a stored event in the seed's stream envelope (what the service emits and the SSE stream sends).
 *
 * @example
 * const envelope = toStreamEnvelope(event, 'immune.event_published', service.target);
 */
export function toStreamEnvelope(event: ImmuneEvent, name: ImmuneStreamEventName, target: string): ImmuneStreamEnvelope {
  const at = new Date(event.createdAt).toISOString();
  const payload: { -readonly [K in keyof ImmuneStreamPayload]: ImmuneStreamPayload[K] } = {
    event_id: event.id,
    severity: event.severity,
    type: event.type,
    message: event.message,
    meta: event.meta,
  };
  if (event.agentId !== undefined) payload.agent_id = event.agentId;
  if (event.module !== undefined) payload.module = event.module;
  if (name === 'immune.critical_event') payload.critical_at = at;
  else payload.published_at = at;
  return { type: name, source: 'immune_service', target, payload };
}
