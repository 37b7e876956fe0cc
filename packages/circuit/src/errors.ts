import { GuardError } from '@guard/core';
import type { CircuitState } from '@guard/core';

declare module '@guard/core' {
  interface GuardErrorCodes {
    /** A circuit breaker is open (or half-open with every probe slot taken) and refused the call. */
    CIRCUIT_OPEN: true;
    /** A bulkhead's slots and queue are full, or the call waited in the queue too long. */
    BULKHEAD_REJECTED: true;
    /** A managed task was cancelled. */
    TASK_CANCELLED: true;
    /** @deprecated No longer thrown: a duplicate task id is `INVALID_INPUT` with `details.reason: 'exists'`. */
    TASK_EXISTS: true;
  }
}

/**
 * Thrown by {@link CircuitBreaker.execute} when the circuit refuses a call without running it. It carries no stack
 * (its `stack` is the message line only): a refusal is an expected, hot event (an open circuit may refuse thousands
 * of calls a second) and the breaker's name says where it came from, so capturing the call stack would be the
 * dominant cost of failing fast.
 *
 * @example
 * try { await breaker.execute(() => callDownstream()); }
 * catch (err) { if (isGuardError(err, 'CIRCUIT_OPEN')) return cachedValue; throw err; }
 */
export class CircuitOpenError extends GuardError {
  /** The breaker's name. */
  readonly circuit: string;
  /** The state that refused the call (`open`, or `half_open` when every probe slot is taken). */
  readonly state: CircuitState;
  /** True while the breaker is held open by `isolate()`. */
  readonly isolated: boolean;
  /** Ms until the breaker lets a probe through (0 when unknown: isolated, or half-open with its slots taken). */
  readonly retryAfterMs: number;

  constructor(circuit: string, state: CircuitState, isolated: boolean, retryAfterMs = 0) {
    const limit = Error.stackTraceLimit;
    Error.stackTraceLimit = 0;
    try {
      super(
        'CIRCUIT_OPEN',
        isolated
          ? `circuit "${circuit}" is isolated`
          : state === 'half_open'
            ? `circuit "${circuit}" is half-open and its probe slots are taken`
            : `circuit "${circuit}" is open`,
        { details: { circuit, state, isolated, retryAfterMs } },
      );
    } finally {
      Error.stackTraceLimit = limit;
    }
    this.name = 'CircuitOpenError';
    this.circuit = circuit;
    this.state = state;
    this.isolated = isolated;
    this.retryAfterMs = retryAfterMs;
  }
}

/**
 * Thrown by {@link Bulkhead.execute} when its slots and queue are full or a queued call waited too long.
 *
 * @example
 * try { await bulkhead.execute(() => work()); }
 * catch (err) { if (isGuardError(err, 'BULKHEAD_REJECTED')) res.statusCode = 503; }
 */
export class BulkheadRejectedError extends GuardError {
  /** The bulkhead's name. */
  readonly bulkhead: string;
  /** Why: the queue was full, or the call waited longer than `queueTimeoutMs`. */
  readonly reason: 'queue_full' | 'queue_timeout';

  constructor(bulkhead: string, reason: 'queue_full' | 'queue_timeout') {
    super(
      'BULKHEAD_REJECTED',
      reason === 'queue_full' ? `bulkhead "${bulkhead}" is full` : `bulkhead "${bulkhead}" queue wait timed out`,
      { details: { bulkhead, reason } },
    );
    this.name = 'BulkheadRejectedError';
    this.bulkhead = bulkhead;
    this.reason = reason;
  }
}

/**
 * The rejection of a {@link ManagedTask} that was cancelled.
 *
 * @example
 * registry.cancel('job-1', 'user pressed stop');
 * await task.promise.catch((err) => isGuardError(err, 'TASK_CANCELLED')); // true
 */
export class TaskCancelledError extends GuardError {
  readonly taskId: string;
  readonly reason: string;

  constructor(taskId: string, reason: string) {
    super('TASK_CANCELLED', `task "${taskId}" was cancelled: ${reason}`, { details: { taskId, reason } });
    this.name = 'TaskCancelledError';
    this.taskId = taskId;
    this.reason = reason;
  }
}
