/** How a breaker decides to open: the strategy that `mode` selects. */
export type CircuitBreakerMode = 'consecutive' | 'rate';

/**
 * The strategy that decides when a closed circuit opens (cockatiel's `IBreaker`). It only counts; the
 * {@link CircuitBreaker} owns the states, probes and timeouts. Its `state` is plain data: `toJSON()` saves it and
 * `initialState` gives it back.
 *
 * @example
 * const breaker: Breaker<number> = new ConsecutiveBreaker(5);
 * if (breaker.failure()) open();
 */
export interface Breaker<State> {
  readonly mode: CircuitBreakerMode;
  /** The counts as JSON-safe data; assigning a saved value restores it. */
  state: State;
  /** A call succeeded. */
  success(): void;
  /** A counted call failed; true when the circuit should open. */
  failure(): boolean;
  /** Forgets every count (the circuit closed, or was reset). */
  reset(): void;
  /** Stops timers of its own (the circuit breaker was closed). */
  dispose(): void;
}
