import type { Logger } from './logger.js';
import type { PgTimeouts } from './pg-pool-safety.js';
import { GuardError } from './guard-error.js';
import { silentLogger } from './logger.js';
import { resolvePgTimeouts } from './pg-pool-safety.js';

/**
 * The slice of a pg `PoolClient` a {@link PgNotificationListener} holds (structural: the main entry never imports pg).
 *
 * @example
 * const client: ListenClientLike = await pool.connect(); // a pg PoolClient fits
 */
export interface ListenClientLike {
  query(text: string, values?: unknown[]): Promise<unknown>;
  on(event: 'notification', listener: (message: { channel: string; payload?: string }) => void): unknown;
  on(event: 'error', listener: (error: Error) => void): unknown;
  removeListener(event: 'notification', listener: (message: { channel: string; payload?: string }) => void): unknown;
  removeListener(event: 'error', listener: (error: Error) => void): unknown;
  release(error?: Error | boolean): void;
}

/**
 * The slice of a pg `Pool` the fleet features use: `connect()` for the LISTEN session.
 *
 * @example
 * const pool: ListenPoolLike = new pg.Pool({ connectionString });
 */
export interface ListenPoolLike {
  connect(): Promise<ListenClientLike>;
}

/**
 * Options for {@link PgNotificationListener}.
 *
 * @example
 * new PgNotificationListener({ pool, channels: ['guard_fleet_events'], onNotification: (channel, payload) => {} });
 */
export interface PgNotificationListenerOptions {
  readonly pool: ListenPoolLike;
  /** Channels to LISTEN on (plain SQL identifiers). */
  readonly channels: readonly string[];
  readonly onNotification: (channel: string, payload: string) => void;
  /** After every (re)connect, once LISTEN is in place: the moment to catch up on what was missed. */
  readonly onConnected?: () => void;
  /** After the session was lost. */
  readonly onDisconnected?: (error: Error) => void;
  /** A `select 1` on the LISTEN session this often, so a silent network is noticed. Default 5 000. */
  readonly pingIntervalMs?: number;
  /** Reconnect delays grow from this ... Default 250. */
  readonly minRetryMs?: number;
  /** ... to this. Default 5 000. */
  readonly maxRetryMs?: number;
  readonly timeouts?: PgTimeouts;
  readonly logger?: Logger;
  readonly name?: string;
}

const CHANNEL = /^[a-z_][a-z0-9_]{0,62}$/;

/**
 * One dedicated Postgres session that LISTENs on channels and survives the database: every wait is bounded
 * (connect, LISTEN and ping), a lost or silent session is dropped and reopened with backoff, and `onConnected`
 * fires after each reconnect so the owner can read what it missed from its table (NOTIFY is not stored).
 *
 * @example
 * const listener = new PgNotificationListener({ pool, channels: ['guard_fleet_events'], onNotification: console.log });
 * listener.start();
 * await listener.close();
 */
export class PgNotificationListener implements AsyncDisposable {
  readonly #options: PgNotificationListenerOptions;
  readonly #timeouts: PgTimeouts;
  readonly #logger: Logger;
  readonly #pingIntervalMs: number;
  readonly #minRetryMs: number;
  readonly #maxRetryMs: number;
  #client: ListenClientLike | undefined;
  #onNotification: ((message: { channel: string; payload?: string }) => void) | undefined;
  #onError: ((error: Error) => void) | undefined;
  #pingTimer: NodeJS.Timeout | undefined;
  #retryTimer: NodeJS.Timeout | undefined;
  #retryMs: number;
  #connecting: Promise<void> | undefined;
  #started = false;
  #pinging = false;
  #closed = false;

  constructor(options: PgNotificationListenerOptions) {
    for (const channel of options.channels) {
      if (!CHANNEL.test(channel)) throw new GuardError('INVALID_OPTION', `channel must be a plain SQL identifier, got ${JSON.stringify(channel)}`, { details: { field: 'channels' } });
    }
    this.#options = options;
    this.#timeouts = options.timeouts ?? resolvePgTimeouts();
    this.#logger = options.logger ?? silentLogger;
    this.#pingIntervalMs = options.pingIntervalMs ?? 5_000;
    this.#minRetryMs = options.minRetryMs ?? 250;
    this.#maxRetryMs = options.maxRetryMs ?? 5_000;
    this.#retryMs = this.#minRetryMs;
  }

  /** Whether the LISTEN session is open now. */
  get connected(): boolean {
    return this.#client !== undefined;
  }

  /** Opens the session (in the background; failures are retried). Idempotent. */
  start(): void {
    if (this.#started || this.#closed) return;
    this.#started = true;
    this.#connect();
  }

  #connect(): void {
    if (this.#closed || this.#connecting || this.#client) return;
    this.#connecting = this.#open()
      .catch((error: unknown) => {
        this.#logger.warn({ err: error, retryMs: this.#retryMs }, `${this.#name} cannot listen; retrying`);
        this.#scheduleRetry();
      })
      .finally(() => {
        this.#connecting = undefined;
      });
  }

  get #name(): string {
    return this.#options.name ?? 'fleet listener';
  }

  async #open(): Promise<void> {
    const client = await this.#bounded(this.#options.pool.connect(), this.#timeouts.connectTimeoutMs, 'connect', (late) => late.release(true));
    const onError = (error: Error) => this.#drop(client, error);
    client.on('error', onError);
    if (this.#closed) {
      client.release(true);
      return;
    }
    try {
      for (const channel of this.#options.channels) await this.#bounded(client.query(`LISTEN "${channel}"`), this.#timeouts.queryTimeoutMs, 'listen');
    } catch (error) {
      client.removeListener('error', onError);
      client.on('error', () => {});
      client.release(error as Error);
      throw error;
    }
    if (this.#closed) {
      client.release(true);
      return;
    }
    const onNotification = (message: { channel: string; payload?: string }) => {
      try {
        this.#options.onNotification(message.channel, message.payload ?? '');
      } catch (error) {
        this.#logger.error({ err: error }, `${this.#name}: notification handler threw`);
      }
    };
    client.on('notification', onNotification);
    this.#client = client;
    this.#onNotification = onNotification;
    this.#onError = onError;
    this.#retryMs = this.#minRetryMs;
    this.#pingTimer = setInterval(() => this.#ping(client), this.#pingIntervalMs);
    this.#pingTimer.unref();
    this.#logger.info({ channels: this.#options.channels }, `${this.#name} listening`);
    try {
      this.#options.onConnected?.();
    } catch (error) {
      this.#logger.error({ err: error }, `${this.#name}: onConnected threw`);
    }
  }

  #ping(client: ListenClientLike): void {
    // One ping at a time: a slow one is still bounded by the query timeout, which drops the session.
    if (this.#pinging) return;
    this.#pinging = true;
    this.#bounded(client.query('select 1'), this.#timeouts.queryTimeoutMs, 'ping')
      .catch((error: unknown) => this.#drop(client, error as Error))
      .finally(() => {
        this.#pinging = false;
      });
  }

  /** Forgets a broken session (pg destroys its socket on release with an error) and schedules a new one. */
  #drop(client: ListenClientLike, error: Error): void {
    if (this.#client !== client) return;
    this.#client = undefined;
    clearInterval(this.#pingTimer);
    if (this.#onNotification) client.removeListener('notification', this.#onNotification);
    if (this.#onError) client.removeListener('error', this.#onError);
    // A late 'error' from the dying socket must never become an unhandled one.
    client.on('error', () => {});
    try {
      client.release(error);
    } catch {
      // released already by pg on a fatal error
    }
    this.#logger.warn({ err: error }, `${this.#name} lost its session; falling back to this instance until it is back`);
    try {
      this.#options.onDisconnected?.(error);
    } catch (hookError) {
      this.#logger.error({ err: hookError }, `${this.#name}: onDisconnected threw`);
    }
    this.#scheduleRetry();
  }

  #scheduleRetry(): void {
    if (this.#closed || this.#retryTimer) return;
    const delay = this.#retryMs;
    this.#retryMs = Math.min(this.#retryMs * 2, this.#maxRetryMs);
    this.#retryTimer = setTimeout(() => {
      this.#retryTimer = undefined;
      this.#connect();
    }, delay);
    this.#retryTimer.unref();
  }

  #bounded<T>(promise: Promise<T>, ms: number, what: string, onLate?: (value: T) => void): Promise<T> {
    return new Promise<T>((resolve, reject) => {
      let timedOut = false;
      const timer = setTimeout(() => {
        timedOut = true;
        reject(new GuardError('TIMEOUT', `${this.#name}: ${what} exceeded ${ms} ms`, { details: { timeoutMs: ms } }));
      }, ms);
      timer.unref();
      promise.then(
        (value) => {
          clearTimeout(timer);
          if (timedOut) onLate?.(value);
          else resolve(value);
        },
        (error: unknown) => {
          clearTimeout(timer);
          reject(error as Error);
        },
      );
    });
  }

  /** Closes the session and stops reconnecting. Idempotent. */
  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    clearTimeout(this.#retryTimer);
    await this.#connecting;
    const client = this.#client;
    this.#client = undefined;
    clearInterval(this.#pingTimer);
    if (client) {
      if (this.#onNotification) client.removeListener('notification', this.#onNotification);
      client.on('error', () => {});
      // UNLISTEN is implied: the session is destroyed rather than returned with its LISTENs to a shared pool.
      client.release(true);
    }
  }

  [Symbol.asyncDispose](): Promise<void> {
    return this.close();
  }
}
