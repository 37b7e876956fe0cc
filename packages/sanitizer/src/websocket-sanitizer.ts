import { assertNumberOption, GuardError, isGuardError, waitUntil } from '@guard/core';
import type { Detection, WebSocketTarget } from '@guard/core';
import { defineSanitizer } from './sanitizer.js';
import type { Sanitizer } from './sanitizer.js';

/**
 * WebSocket close code 1008: the peer violated a policy (no acks, slow consumer).
 *
 * @example
 * createWebSocketSanitizer(wsTracker, { code: CLOSE_POLICY_VIOLATION }); // always 1008
 */
export const CLOSE_POLICY_VIOLATION = 1008;
/**
 * WebSocket close code 1011: the server hit an unexpected condition (e.g. a dead peer).
 *
 * @example
 * createWebSocketSanitizer(wsTracker, { code: CLOSE_INTERNAL_ERROR }); // always 1011
 */
export const CLOSE_INTERNAL_ERROR = 1011;

const POLICY_KINDS = new Set(['no_ack', 'slow_consumer', 'buffered_amount']);

/**
 * `@guard/core`'s `WebSocketTarget` with the per-socket close named `disconnect(id, code, reason)`, as
 * `@guard/detectors`' `WebSocketTracker` has it (its `close()` closes the tracker itself).
 *
 * @example
 * const target: WebSocketDisconnectTarget = wsTracker;
 */
export interface WebSocketDisconnectTarget extends Omit<WebSocketTarget, 'close'> {
  /** Sends a close frame (1008 policy, 1011 error); false when the connection is unknown. */
  disconnect(resourceId: string, code: number, reason: string): boolean;
}

/**
 * What the websocket sanitizer acts through: a {@link WebSocketDisconnectTarget}, or a target that names the
 * per-socket close `close(id, code, reason)` as the core contract did.
 *
 * @example
 * const target: WebSocketSanitizeTarget = wsTracker;
 */
export type WebSocketSanitizeTarget = WebSocketDisconnectTarget | WebSocketTarget;

/** True once `closed()` holds, false when the grace ran out; rejects with the signal's reason when it aborts. */
async function closedWithin(closed: () => boolean, graceMs: number, pollMs: number, signal: AbortSignal): Promise<boolean> {
  try {
    await waitUntil(closed, { timeoutMs: graceMs, intervalMs: pollMs, signal, what: 'the peer to finish the close handshake' });
    return true;
  } catch (error) {
    if (isGuardError(error, 'TIMEOUT') && !signal.aborted) return false;
    throw error;
  }
}

/** Sends the close frame through whichever name the target has. */
function disconnect(target: WebSocketSanitizeTarget, id: string, code: number, reason: string): boolean {
  return 'disconnect' in target ? target.disconnect(id, code, reason) : target.close(id, code, reason);
}

/**
 * Options for {@link createWebSocketSanitizer}.
 *
 * @example
 * const options: WebSocketSanitizerOptions = { graceMs: 2_000, code: (d) => (d.severity === 'critical' ? 1011 : 1008) };
 */
export interface WebSocketSanitizerOptions {
  /** How long the peer gets to finish the closing handshake before the socket is terminated. Default 1000. */
  readonly graceMs?: number;
  /**
   * The close code: a number, or a function of the detection. Default: 1008 when the detection's
   * `details.kind` (or `details.reason`, else its pattern) is `no_ack`, `slow_consumer` or `buffered_amount`, otherwise 1011.
   */
  readonly code?: number | ((detection: Detection) => number);
  /** How often `isAlive` is checked during the grace. Default 25. */
  readonly pollMs?: number;
}

/**
 * The close code the default policy picks for a detection (1008 policy, 1011 otherwise).
 *
 * @example
 * defaultCloseCode({ ...detection, pattern: 'no_ack', details: { kind: 'slow_consumer' } }); // 1008
 */
export function defaultCloseCode(detection: Detection): number {
  const kind = detection.details.kind ?? detection.details.reason ?? detection.pattern;
  return typeof kind === 'string' && POLICY_KINDS.has(kind) ? CLOSE_POLICY_VIOLATION : CLOSE_INTERNAL_ERROR;
}

function assertCloseCode(code: number): void {
  // 1000-1014 defined by RFC 6455 (1004-1006 and 1015 must not be sent), 3000-4999 for applications.
  const valid = (code >= 1000 && code <= 1014 && ![1004, 1005, 1006].includes(code)) || (code >= 3000 && code <= 4999);
  if (!Number.isInteger(code) || !valid) {
    throw new GuardError('INVALID_OPTION', `code must be a sendable WebSocket close code, got ${String(code)}`, {
      details: { field: 'code', value: code },
    });
  }
}

/**
 * C1: closes a parasitic WebSocket connection. Sends a close frame (1008 or 1011), waits up to `graceMs`
 * for the peer to finish the handshake, terminates the socket if it is still alive, then drops it from the
 * tracker and reports how many pending (unacked) messages were dropped in `details.droppedMessages`.
 *
 * @example
 * const sanitizer = createWebSocketSanitizer(wsTracker, { graceMs: 2_000 });
 * const report = await sanitizer.sanitize(detection, { signal: AbortSignal.timeout(10_000) });
 * // { outcome: 'success', actions: ['close(1008)', 'terminate', 'forget'], details: { droppedMessages: 3, ... } }
 */
export function createWebSocketSanitizer(target: WebSocketSanitizeTarget, options: WebSocketSanitizerOptions = {}): Sanitizer {
  const graceMs = options.graceMs ?? 1_000;
  const pollMs = options.pollMs ?? 25;
  assertNumberOption('graceMs', graceMs, { min: 0 });
  assertNumberOption('pollMs', pollMs, { min: 1 });
  const code = options.code ?? defaultCloseCode;
  if (typeof code === 'number') assertCloseCode(code);
  else if (typeof code !== 'function') assertCloseCode(code as unknown as number);

  return defineSanitizer('websocket', target, async (detection, signal) => {
    const id = detection.resourceId;
    const closeCode = typeof code === 'number' ? code : code(detection);
    assertCloseCode(closeCode);
    const actions: string[] = [];
    const reason = `parasite guard: ${detection.pattern}`.slice(0, 123);
    // Unknown or already closed: nothing to close, but the tracker must not keep it (or its pending messages).
    if (!target.isAlive(id) || !disconnect(target, id, closeCode, reason)) {
      const droppedMessages = target.forget(id);
      return {
        outcome: 'skipped',
        actions: ['forget'],
        details: { alreadyClosed: true, droppedMessages, terminated: false },
      };
    }
    actions.push(`close(${closeCode})`);
    let terminated = false;
    let droppedMessages: number;
    try {
      if (!(await closedWithin(() => !target.isAlive(id), graceMs, pollMs, signal))) {
        terminated = target.terminate(id);
        actions.push('terminate');
      }
    } finally {
      // Even when the job is aborted mid-grace, the connection must not stay half-closed and tracked.
      if (signal.aborted && target.isAlive(id)) {
        terminated = target.terminate(id);
        actions.push('terminate');
      }
      actions.push('forget');
      droppedMessages = target.forget(id);
    }
    return { outcome: 'success', actions, details: { code: closeCode, terminated, droppedMessages } };
  });
}
