import { isGuardError } from '@guard/core';

/**
 * A request that did not get a terminal message from the server.
 *
 * @example
 * if (reply.type === 'error' && reply.status === 'circuit_open') return cached;
 */
export interface PoolErrorResult {
  readonly type: 'error';
  readonly status: 'circuit_open' | 'timeout' | 'cancelled' | 'error';
  readonly error: string;
  readonly taskId?: string;
  /** The breaker's name, for `circuit_open`. */
  readonly circuit?: string;
}

function errorText(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}

/** Builds a {@link PoolErrorResult} (optional fields only when set). */
export function poolErrorResult(status: PoolErrorResult['status'], error: string, taskId: string | undefined, circuit?: string): PoolErrorResult {
  const result: { -readonly [K in keyof PoolErrorResult]: PoolErrorResult[K] } = { type: 'error', status, error };
  if (taskId !== undefined) result.taskId = taskId;
  if (circuit !== undefined) result.circuit = circuit;
  return result;
}

/**
 * Turns why a request failed into its result: an open breaker is `circuit_open`, a `TIMEOUT` is `timeout`, the
 * request's own abort (caller signal, task cancel, pool close) is `cancelled`, anything else `error`.
 *
 * @example
 * return classifyRequestFailure(error, signal, taskId, breaker.name);
 */
export function classifyRequestFailure(error: unknown, signal: AbortSignal, taskId: string | undefined, circuit: string): PoolErrorResult {
  if (isGuardError(error, 'CIRCUIT_OPEN')) return poolErrorResult('circuit_open', error.message, taskId, circuit);
  if (isGuardError(error, 'TIMEOUT')) return poolErrorResult('timeout', error.message, taskId);
  if (signal.aborted || isGuardError(error, 'TASK_CANCELLED') || isGuardError(error, 'ABORTED')) {
    return poolErrorResult('cancelled', errorText(signal.aborted ? signal.reason : error), taskId);
  }
  return poolErrorResult('error', errorText(error), taskId);
}
