import { assertNumberOption, captureSource, shouldSampleSource, silentLogger, unrefInterval } from '@guard/core';
import type { CapturedSource, Logger, WebSocketTarget } from '@guard/core';
import type { WebSocket, WebSocketServer } from 'ws';
import type { Finding } from './detector.js';
import { nextProcessNumber } from './process-numbers.js';
import { Tracker } from './tracker.js';

/**
 * Options for {@link WebSocketTracker}.
 *
 * @example
 * new WebSocketTracker(wss, { ackTimeoutMs: 3_000, pingIntervalMs: 30_000, maxBufferedBytes: 1_048_576 });
 */
export interface WebSocketTrackerOptions {
  /** A message sent with an id and not acked within this long is `no_ack` (critical). Default 3000. */
  readonly ackTimeoutMs?: number;
  /** Ping every connection this often; a connection that missed a pong is `missed_pong`. 0 turns pings off. Default 30000. */
  readonly pingIntervalMs?: number;
  /** `bufferedAmount` above this is `slow_consumer` (critical). Default 1 MiB. */
  readonly maxBufferedBytes?: number;
  /** Capture the stack of each `send` so a detection points at the code that sent it. Default true. */
  readonly traceSources?: boolean;
  /** Closed connections that still held unacked messages are kept this long for `forget` to count them. Default 60000. */
  readonly closedRetentionMs?: number;
  /** Gets one `warn` line per socket error (a hostile frame, say). Default: the chain's logger, else silent. */
  readonly logger?: Logger;
}

interface Pending {
  readonly sentAt: number;
  readonly source: CapturedSource | undefined;
}

interface Connection {
  readonly id: string;
  readonly ws: WebSocket;
  /** The tracker's own listeners on `ws`, detached on `close()` (the error listener stays: see `#guardErrors`). */
  readonly listeners: readonly (readonly [event: string, listener: (...args: unknown[]) => void])[];
  readonly pending: Map<string, Pending>;
  /** The oldest pending message (Map order = send order), kept so a healthy scan allocates nothing. */
  oldest: Pending | undefined;
  oldestId: string | undefined;
  /** The last no_ack finding, reused while the backlog is unchanged. */
  finding: Finding | undefined;
  awaitingPong: boolean;
  missedPongs: number;
  closedAt: number | undefined;
  /** `send` calls so far (drives source sampling) and the latest sampled call site. */
  sends: number;
  lastSource: CapturedSource | undefined;
  /** The deadline slot it waits in, while it has unacked messages not yet overdue. */
  dueSlot: number | undefined;
}

/**
 * A snapshot of one tracked connection.
 *
 * @example
 * tracker.connections().filter((c) => c.pending > 0);
 */
export interface TrackedConnectionInfo {
  readonly id: string;
  readonly pending: number;
  readonly missedPongs: number;
  readonly bufferedAmount: number;
  readonly open: boolean;
}

/** `WebSocketTarget` with the per-socket close named `disconnect`, so `close()` is the tracker's own (no overload). */
type SocketTarget = Omit<WebSocketTarget, 'close'> & { disconnect(resourceId: string, code: number, reason: string): boolean };

const OPEN = 1;
const CLOSED = 3;
/** Close code for a socket that failed for a reason ws did not already close it for. */
const CLOSE_INTERNAL_ERROR = 1011;
/** ws error codes (`WS_ERR_*`) and errno names are a small fixed set; anything else is `unknown` (labels stay bounded). */
const ERROR_CODE = /^[A-Z][A-Z0-9_]{0,63}$/;
/** Sockets that already carry a tracker's error listener (a socket tracked by two trackers gets one). */
const guarded = new WeakSet<WebSocket>();
const SWEEP_PER_SCAN = 2_048;
/** Width of a deadline slot: a scan re-checks only the waiting connections of slots that have come due. */
const DUE_SLOT_MS = 100;

/**
 * C1: tracks the connections of a `ws` server. `send` adds an `id` to each JSON message and expects
 * `{ "type": "ack", "id": ... }` back; pings find dead peers; `bufferedAmount` finds slow consumers.
 * Patterns (component `websocket`): `no_ack`, `missed_pong`, `slow_consumer`. The resource id is the
 * connection id the tracker assigns (`connectionId(ws)`), unique in the process (`ws_<n>`).
 *
 * Every tracked socket gets an `'error'` listener, so a hostile frame (over `maxPayload`, invalid UTF-8,
 * unmasked, unknown opcode, bad close code) closes that one socket (ws sends 1009, 1007 or 1002) instead of
 * ending the process: the error is logged once, counted in `parasite_websocket_errors_total{code}`, and only
 * that socket is closed.
 *
 * @example
 * const wss = new WebSocketServer({ port: 8080 });
 * await using tracker = chain.add(new WebSocketTracker(wss, { ackTimeoutMs: 3_000 }));
 * wss.on('connection', (ws) => tracker.send(ws, { type: 'hello' }));
 */
export class WebSocketTracker extends Tracker<'websocket', 'no_ack'> implements SocketTarget {
  readonly ackTimeoutMs: number;
  readonly pingIntervalMs: number;
  readonly maxBufferedBytes: number;
  readonly #closedRetentionMs: number;
  readonly #connections = new Map<string, Connection>();
  readonly #byWs = new WeakMap<WebSocket, Connection>();
  /** Connections whose unacked messages changed since the last scan: with those coming due, all a scan re-checks. */
  readonly #changed = new Set<Connection>();
  /** Connections with unacked messages not yet overdue, by the slot (DUE_SLOT_MS wide) of their oldest's deadline. */
  readonly #due = new Map<number, Set<Connection>>();
  /** Overdue connections and their no_ack finding. */
  readonly #overdue = new Map<Connection, Finding>();
  /** Connections with missed pongs. */
  readonly #missing = new Set<Connection>();
  /** Closed connections kept for `closedRetentionMs`, in closing order. */
  readonly #closing = new Set<Connection>();
  /** Connections last seen with more than `maxBufferedBytes` buffered, re-checked by every scan until drained. */
  readonly #slow = new Set<Connection>();
  /** Where the rotating buffer sweep resumes (a live Map iterator survives inserts and deletes). */
  #sweep: Iterator<Connection> | undefined;
  readonly #server: WebSocketServer | undefined;
  readonly #onConnection = (ws: WebSocket) => {
    this.track(ws);
  };
  readonly #pingTimer: NodeJS.Timeout | undefined;
  readonly #logger: Logger | undefined;
  #errors = 0;
  #nextMessage = 0;

  constructor(server?: WebSocketServer, options: WebSocketTrackerOptions = {}) {
    super('websocket', 'no_ack', options);
    this.ackTimeoutMs = options.ackTimeoutMs ?? 3_000;
    this.pingIntervalMs = options.pingIntervalMs ?? 30_000;
    this.maxBufferedBytes = options.maxBufferedBytes ?? 1_048_576;
    this.#closedRetentionMs = options.closedRetentionMs ?? 60_000;
    assertNumberOption('ackTimeoutMs', this.ackTimeoutMs, { min: 1 });
    assertNumberOption('pingIntervalMs', this.pingIntervalMs, { min: 0 });
    assertNumberOption('maxBufferedBytes', this.maxBufferedBytes, { min: 0 });
    assertNumberOption('closedRetentionMs', this.#closedRetentionMs, { min: 0 });
    this.#logger = options.logger;
    this.#server = server;
    if (server) {
      for (const ws of server.clients) this.track(ws);
      server.on('connection', this.#onConnection);
    }
    if (this.pingIntervalMs > 0) this.#pingTimer = unrefInterval(() => this.#pingAll(), this.pingIntervalMs);
  }

  /**
   * Starts tracking a socket (done for you for the server's connections); returns its connection id.
   * Adds an `'error'` listener to the socket, so its errors close it instead of crashing the process.
   */
  track(ws: WebSocket): string {
    this.assertOpen();
    const known = this.#byWs.get(ws);
    if (known) return known.id;
    const listeners: [string, (...args: unknown[]) => void][] = [];
    const connection: Connection = {
      // numbered per process, so two trackers (two servers) never report the same resource id
      id: `ws_${nextProcessNumber('websocket-connection')}`,
      ws,
      listeners,
      pending: new Map(),
      oldest: undefined,
      oldestId: undefined,
      finding: undefined,
      awaitingPong: false,
      missedPongs: 0,
      closedAt: undefined,
      sends: 0,
      lastSource: undefined,
      dueSlot: undefined,
    };
    this.#connections.set(connection.id, connection);
    this.#byWs.set(ws, connection);
    listeners.push(
      [
        'message',
        (data: unknown, isBinary: unknown) => {
          if (isBinary !== true) this.#onMessage(connection, data);
        },
      ],
      [
        'pong',
        () => {
          connection.awaitingPong = false;
          connection.missedPongs = 0;
          this.#missing.delete(connection);
        },
      ],
      [
        'close',
        () => {
          connection.closedAt = Date.now();
          this.#changed.add(connection);
          if (connection.pending.size === 0) this.#drop(connection);
          else if (this.#connections.get(connection.id) === connection) this.#closing.add(connection);
        },
      ],
    );
    for (const [event, listener] of listeners) ws.on(event, listener);
    this.#guardErrors(ws, connection.id);
    return connection.id;
  }

  /** Socket errors seen since construction (each closed its socket). */
  get errors(): number {
    return this.#errors;
  }

  /** The tracker's id for `ws`, or undefined when it is not tracked. */
  connectionId(ws: WebSocket): string | undefined {
    return this.#byWs.get(ws)?.id;
  }

  /**
   * Sends `message` as JSON with a fresh `id` added and waits for `{ type: 'ack', id }`; returns the id.
   * The socket is tracked on first use.
   *
   * @example
   * const id = tracker.send(ws, { type: 'price', value: 42 });
   */
  send(ws: WebSocket, message: Readonly<Record<string, unknown>>, callback?: (error?: Error) => void): string {
    this.assertOpen();
    const connection = this.#byWs.get(ws) ?? this.#connections.get(this.track(ws))!;
    const id = `m${++this.#nextMessage}`;
    // sampled per connection (its first 16 sends, then ~1 in 64), so tracing can stay on
    const source = this.traceSources && shouldSampleSource(connection.sends++) ? captureSource({ skip: WebSocketTracker.prototype.send, depth: 10 }) : undefined;
    if (source !== undefined) connection.lastSource = source;
    ws.send(JSON.stringify({ ...message, id }), callback); // throws while CONNECTING: nothing is recorded then
    const pending: Pending = { sentAt: Date.now(), source };
    connection.pending.set(id, pending);
    this.#changed.add(connection);
    if (connection.oldest === undefined) {
      connection.oldest = pending;
      connection.oldestId = id;
    }
    if (ws.bufferedAmount > this.maxBufferedBytes) {
      this.#slow.add(connection);
      this.trigger();
    }
    return id;
  }

  /** Unacked messages of a connection (0 when unknown). */
  pendingCount(resourceId: string): number {
    return this.#connections.get(resourceId)?.pending.size ?? 0;
  }

  /** Snapshots of every tracked connection. */
  connections(): TrackedConnectionInfo[] {
    return [...this.#connections.values()].map((c) => ({
      id: c.id,
      pending: c.pending.size,
      missedPongs: c.missedPongs,
      bufferedAmount: c.ws.bufferedAmount,
      open: c.ws.readyState === OPEN,
    }));
  }

  /** How many connections are tracked. */
  get size(): number {
    return this.#connections.size;
  }

  /** True when `resourceId` is a connection of this tracker: sanitizers route detections by it. */
  owns(resourceId: string): boolean {
    return this.#connections.has(resourceId);
  }

  /**
   * O(connections whose unacked messages changed or came due + overdue + with missed pongs + closing + over the
   * buffer cap), not O(connections): a healthy connection costs nothing here, an overdue one a copy of its finding. Buffers of connections that only `ws.send` writes to directly are
   * checked by a rotating sweep of at most 2,048 connections per scan, on every ping round and after `send`.
   */
  scan(now: number): Finding[] {
    for (const connection of this.#closing) {
      if (now - connection.closedAt! < this.#closedRetentionMs) break;
      this.#drop(connection);
    }
    for (const connection of this.#changed) this.#checkAck(connection, now);
    this.#changed.clear();
    const nowSlot = Math.floor(now / DUE_SLOT_MS);
    const dueSlots: number[] = [];
    for (const slot of this.#due.keys()) if (slot <= nowSlot) dueSlots.push(slot);
    for (const slot of dueSlots) {
      const connections = this.#due.get(slot);
      if (connections !== undefined) for (const connection of [...connections]) this.#checkAck(connection, now);
    }
    const findings: Finding[] = [...this.#overdue.values()];
    for (const connection of this.#missing) {
      if (connection.closedAt !== undefined) continue;
      findings.push({
        pattern: 'missed_pong',
        severity: connection.missedPongs >= 2 ? 'critical' : 'warning',
        resourceId: connection.id,
        message: `${connection.missedPongs} ping(s) without a pong`,
        details: { missedPongs: connection.missedPongs, pingIntervalMs: this.pingIntervalMs },
      });
    }
    this.#sweepBuffers(SWEEP_PER_SCAN);
    for (const connection of this.#slow) {
      const buffered = connection.ws.bufferedAmount;
      if (buffered <= this.maxBufferedBytes) {
        this.#slow.delete(connection);
        continue;
      }
      if (connection.closedAt !== undefined) continue;
      findings.push({
        pattern: 'slow_consumer',
        severity: 'critical',
        resourceId: connection.id,
        message: `${buffered} bytes buffered (cap ${this.maxBufferedBytes})`,
        details: { bufferedAmount: buffered, maxBufferedBytes: this.maxBufferedBytes, pending: connection.pending.size },
      });
    }
    return findings;
  }

  /** Files one connection as overdue (with its no_ack finding) or under the slot of its oldest message's deadline. */
  #checkAck(connection: Connection, now: number): void {
    this.#unslot(connection);
    const oldest = connection.oldest;
    if (connection.closedAt !== undefined || oldest === undefined) {
      this.#overdue.delete(connection);
      return;
    }
    const due = oldest.sentAt + this.ackTimeoutMs;
    if (now < due) {
      this.#overdue.delete(connection);
      const slot = Math.floor(due / DUE_SLOT_MS);
      let connections = this.#due.get(slot);
      if (connections === undefined) this.#due.set(slot, (connections = new Set()));
      connections.add(connection);
      connection.dueSlot = slot;
      return;
    }
    let finding = connection.finding;
    if (finding === undefined || finding.details.pending !== connection.pending.size || finding.details.oldestSentAt !== oldest.sentAt) {
      const ageMs = now - oldest.sentAt;
      // an unsampled message points at the connection's latest sampled send (sourceSampled: true)
      const source = oldest.source ?? connection.lastSource;
      finding = connection.finding = {
        pattern: 'no_ack',
        severity: 'critical',
        resourceId: connection.id,
        message: `${connection.pending.size} message(s) unacked, oldest for ${ageMs} ms (ackTimeoutMs ${this.ackTimeoutMs})`,
        details: {
          pending: connection.pending.size,
          oldestAgeMs: ageMs,
          oldestSentAt: oldest.sentAt,
          ackTimeoutMs: this.ackTimeoutMs,
          ...(oldest.source === undefined && source !== undefined ? { sourceSampled: true } : {}),
        },
        source: source?.frames(),
      };
    }
    this.#overdue.set(connection, finding);
  }

  #unslot(connection: Connection): void {
    const slot = connection.dueSlot;
    if (slot === undefined) return;
    connection.dueSlot = undefined;
    const connections = this.#due.get(slot);
    if (connections === undefined) return;
    connections.delete(connection);
    if (connections.size === 0) this.#due.delete(slot);
  }

  /** Checks the buffers of up to `budget` connections, resuming where the last sweep stopped. */
  #sweepBuffers(budget: number): void {
    const max = this.maxBufferedBytes;
    for (let i = 0; i < budget; i++) {
      let next = (this.#sweep ??= this.#connections.values()).next();
      if (next.done) {
        this.#sweep = undefined;
        if (i === 0) return;
        next = (this.#sweep = this.#connections.values()).next();
        if (next.done) return;
      }
      const connection = next.value;
      if (connection.closedAt === undefined && connection.ws.bufferedAmount > max) this.#slow.add(connection);
    }
  }

  /**
   * Sends a close frame to one connection (the `WebSocketTarget` method the sanitizer heals through); false when
   * the connection is unknown or already closed. Closing the tracker itself is {@link WebSocketTracker.close}.
   *
   * @example
   * tracker.disconnect(tracker.connectionId(ws)!, 1008, 'no ack');
   */
  disconnect(resourceId: string, code: number, reason: string): boolean {
    const connection = this.#connections.get(resourceId);
    if (connection === undefined || connection.ws.readyState === CLOSED) return false;
    connection.ws.close(code, reason);
    return true;
  }

  terminate(resourceId: string): boolean {
    const connection = this.#connections.get(resourceId);
    if (connection === undefined) return false;
    connection.ws.terminate();
    return true;
  }

  isAlive(resourceId: string): boolean {
    const connection = this.#connections.get(resourceId);
    return connection !== undefined && connection.ws.readyState !== CLOSED;
  }

  forget(resourceId: string): number {
    const connection = this.#connections.get(resourceId);
    if (connection === undefined) return 0;
    const dropped = connection.pending.size;
    this.#drop(connection);
    return dropped;
  }

  /**
   * Stops tracking (pings, the server's `connection` listener and the per-socket `message`, `pong` and `close`
   * listeners); safe to call twice. The sockets stay open, and keep their `'error'` listener: removing it would let
   * the next hostile frame end the process again. One connection is closed with {@link WebSocketTracker.disconnect}.
   */
  protected stopTracking(): void {
    if (this.#pingTimer) clearInterval(this.#pingTimer);
    this.#server?.off('connection', this.#onConnection);
    for (const connection of [...this.#connections.values()]) {
      for (const [event, listener] of connection.listeners) connection.ws.off(event, listener);
      this.#drop(connection);
    }
  }

  /**
   * One `'error'` listener per socket, added once even if the socket is tracked again. ws has already sent the
   * close frame that fits (1009, 1007, 1002) when it emits a protocol error; a socket still open after another
   * error is closed with 1011. Nothing else is touched.
   */
  #guardErrors(ws: WebSocket, id: string): void {
    if (guarded.has(ws)) return;
    guarded.add(ws);
    let seen = false;
    ws.on('error', (error: Error & { code?: unknown }) => {
      if (seen) return;
      seen = true;
      this.#errors++;
      const code = typeof error?.code === 'string' && ERROR_CODE.test(error.code) ? error.code : 'unknown';
      this.metrics?.websocketErrors.inc({ code });
      (this.#logger ?? this.chainLogger ?? silentLogger).warn({ component: 'websocket', resource: id, code, err: error?.message }, 'WebSocket error: closing the socket');
      if (ws.readyState === OPEN) {
        try {
          ws.close(CLOSE_INTERNAL_ERROR, 'error');
        } catch {
          ws.terminate();
        }
      }
    });
  }

  #drop(connection: Connection): void {
    this.#changed.delete(connection);
    this.#overdue.delete(connection);
    this.#unslot(connection);
    this.#missing.delete(connection);
    this.#closing.delete(connection);
    this.#slow.delete(connection);
    connection.pending.clear();
    connection.oldest = connection.oldestId = connection.finding = connection.lastSource = undefined;
    this.#connections.delete(connection.id);
    if (this.#byWs.get(connection.ws) === connection) this.#byWs.delete(connection.ws);
  }

  #onMessage(connection: Connection, data: unknown): void {
    if (connection.pending.size === 0) return;
    const text = typeof data === 'string' ? data : Buffer.isBuffer(data) ? data.toString('utf8') : Buffer.from(data as ArrayBuffer).toString('utf8');
    if (text.length > 512 || !text.includes('"ack"')) return;
    let parsed: unknown;
    try {
      parsed = JSON.parse(text);
    } catch {
      return;
    }
    if (typeof parsed === 'object' && parsed !== null && (parsed as { type?: unknown }).type === 'ack') {
      const id = String((parsed as { id?: unknown }).id);
      if (!connection.pending.delete(id)) return;
      this.#changed.add(connection);
      if (id === connection.oldestId) {
        const next = connection.pending.entries().next();
        connection.oldestId = next.done ? undefined : next.value[0];
        connection.oldest = next.done ? undefined : next.value[1];
      }
      if (connection.pending.size === 0) this.trigger();
    }
  }

  #pingAll(): void {
    for (const connection of this.#connections.values()) {
      if (connection.closedAt !== undefined || connection.ws.readyState !== OPEN) continue;
      if (connection.awaitingPong) {
        connection.missedPongs++;
        this.#missing.add(connection);
        this.trigger();
      }
      if (connection.ws.bufferedAmount > this.maxBufferedBytes) this.#slow.add(connection);
      connection.awaitingPong = true;
      try {
        connection.ws.ping();
      } catch {}
    }
  }
}
