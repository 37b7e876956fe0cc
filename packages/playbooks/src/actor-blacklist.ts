import { assertNumberOption } from '@guard/core';

/** One blacklisted actor. */
export interface BlacklistEntry {
  readonly actor: string;
  /** Epoch milliseconds when the entry lifts; `Infinity` when it does not. */
  readonly expiresAt: number;
}

/**
 * Actors whose publishes the bus refuses until their entry expires. An expired entry is dropped when it is next
 * consulted, so the publish path needs no timer.
 *
 * @example
 * const blacklist = new ActorBlacklist(Date.now);
 * blacklist.add('rogue', 60_000);
 * blacklist.has('rogue'); // true for a minute
 */
export class ActorBlacklist {
  /** actor -> epoch ms when the entry lifts. */
  readonly #entries = new Map<string, number>();
  readonly #now: () => number;

  constructor(now: () => number) {
    this.#now = now;
  }

  /** Entries held, expired ones not yet dropped included. */
  get size(): number {
    return this.#entries.size;
  }

  /** Refuses `actor` for `durationMs` (`Infinity`: until {@link delete}). */
  add(actor: string, durationMs: number): void {
    assertNumberOption('durationMs', durationMs, { min: 1 });
    this.#entries.set(actor, this.#now() + durationMs);
  }

  /** Lifts an entry. @returns true when there was one. */
  delete(actor: string): boolean {
    return this.#entries.delete(actor);
  }

  /** True when `actor` is blacklisted now. */
  has(actor: string): boolean {
    if (this.#entries.size === 0) return false;
    const expiresAt = this.#entries.get(actor);
    if (expiresAt === undefined) return false;
    if (expiresAt > this.#now()) return true;
    this.#entries.delete(actor);
    return false;
  }

  /** The entries live at `now`. */
  live(now: number): BlacklistEntry[] {
    const entries: BlacklistEntry[] = [];
    for (const [actor, expiresAt] of this.#entries) if (expiresAt > now) entries.push({ actor, expiresAt });
    return entries;
  }

  /** Drops the entries expired at `now`. @returns how many. */
  dropExpired(now: number): number {
    let dropped = 0;
    for (const [actor, expiresAt] of this.#entries) if (expiresAt <= now) dropped += Number(this.#entries.delete(actor));
    return dropped;
  }
}
