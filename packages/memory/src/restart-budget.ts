import { closeSync, mkdirSync, openSync, readFileSync, renameSync, statSync, unlinkSync, writeFileSync, writeSync } from 'node:fs';
import { dirname } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import type { Logger } from '@guard/core';

/** Why the guardrail restarted (or wanted to restart) the process. */
export type RestartReason = 'rss_threshold' | 'cache_threshold' | 'predicted_breach' | 'manual';

/** The last restart, as persisted in the restart state file (plain JSON). */
export interface RestartRecord {
  /** Epoch milliseconds. */
  readonly lastRestartAt: number;
  readonly reason: RestartReason;
  readonly pid: number;
  /** Restarts recorded in this file so far (absent in files written before 0.2). */
  readonly count?: number;
  /** Set when a time in the future was found and counted as "now": the time that was found. */
  readonly clampedFrom?: number;
}

/** Whether a restart may happen now. */
export interface RestartAllowance {
  readonly allowed: boolean;
  /** 0 when allowed, else how long until the cooldown ends. */
  readonly retryAfterMs: number;
  readonly last?: RestartRecord;
}

/** What {@link RestartBudget.claim} decided: the record it wrote, or why not. */
export type RestartClaim = { readonly allowed: true; readonly record: RestartRecord } | (RestartAllowance & { readonly allowed: false });

/** Options of {@link RestartBudget}. */
export interface RestartBudgetOptions {
  readonly file?: string | undefined;
  readonly cooldownMs: number;
  readonly logger: Logger;
  /** A lock file older than this is left over from a crashed process and is broken. Default 30 000. */
  readonly staleLockMs?: number;
  /** How long `claim` waits for another process's lock before giving up (it then throws). Default 2 000. */
  readonly lockWaitMs?: number;
}

/**
 * At most one restart per `cooldownMs`, remembered across process restarts in `file` (memory only without one).
 *
 * - The file is re-read on every decision, so a fresh process sees the restart its predecessor made.
 * - A last restart in the future (clock stepped back, skew between hosts sharing a volume) counts as "now": the
 *   cooldown runs from the moment it was found, and the file is rewritten with that time so others agree.
 * - `claim` reads, decides and writes under a lock file (`<file>.lock`, created with O_EXCL), so two processes
 *   sharing the file cannot both restart inside one cooldown. A lock older than `staleLockMs` (its holder
 *   crashed) is broken. Writes are atomic (temp file + rename), so readers never see half a record.
 */
export class RestartBudget {
  readonly #file: string | undefined;
  readonly #lockFile: string | undefined;
  readonly #cooldownMs: number;
  readonly #logger: Logger;
  readonly #staleLockMs: number;
  readonly #lockWaitMs: number;
  #inMemory: RestartRecord | undefined;
  /** A future time this process has seen, and the "now" it counts as (kept even if the file cannot be rewritten). */
  #clamp: { from: number; to: number } | undefined;

  constructor(options: RestartBudgetOptions) {
    this.#file = options.file;
    this.#lockFile = options.file === undefined ? undefined : `${options.file}.lock`;
    this.#cooldownMs = options.cooldownMs;
    this.#logger = options.logger;
    this.#staleLockMs = options.staleLockMs ?? 30_000;
    this.#lockWaitMs = options.lockWaitMs ?? 2_000;
  }

  /** The last restart as stored (from the file when there is one), before any clamping. */
  last(): RestartRecord | undefined {
    if (this.#file === undefined) return this.#inMemory;
    let text: string;
    try {
      text = readFileSync(this.#file, 'utf8');
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== 'ENOENT') this.#logger.warn({ err: error, file: this.#file }, 'cannot read restart state file');
      return this.#inMemory;
    }
    try {
      const parsed = JSON.parse(text) as Partial<RestartRecord>;
      if (typeof parsed.lastRestartAt === 'number' && Number.isFinite(parsed.lastRestartAt)) {
        return {
          lastRestartAt: parsed.lastRestartAt,
          reason: parsed.reason ?? 'manual',
          pid: parsed.pid ?? 0,
          ...(typeof parsed.count === 'number' ? { count: parsed.count } : {}),
          ...(typeof parsed.clampedFrom === 'number' ? { clampedFrom: parsed.clampedFrom } : {}),
        };
      }
    } catch {}
    this.#logger.warn({ file: this.#file }, 'restart state file is not valid; ignoring it');
    return this.#inMemory;
  }

  /** Whether a restart may happen at `now` (a read only; `claim` is the decision that counts). */
  check(now: number): RestartAllowance {
    return this.#decide(now, false);
  }

  /**
   * Decides and, when allowed, records a restart at `now`, atomically against other processes sharing the file.
   * Throws when the file cannot be written or the lock cannot be had within `lockWaitMs`: a restart we cannot
   * remember (or cannot be sure is ours) must not happen.
   */
  async claim(now: number, reason: RestartReason): Promise<RestartClaim> {
    if (this.#file === undefined) return this.#claimLocked(now, reason);
    const deadline = performance.now() + this.#lockWaitMs;
    for (let wait = 1; ; wait = Math.min(wait * 2, 50)) {
      if (this.#tryLock()) {
        try {
          return this.#claimLocked(now, reason);
        } finally {
          this.#unlock();
        }
      }
      if (performance.now() >= deadline) {
        throw new Error(`restart state file ${this.#file} is locked by another process (${this.#lockFile})`);
      }
      await sleep(wait);
    }
  }

  #claimLocked(now: number, reason: RestartReason): RestartClaim {
    const allowance = this.#decide(now, true);
    if (!allowance.allowed) return { ...allowance, allowed: false };
    const record: RestartRecord = { lastRestartAt: now, reason, pid: process.pid, count: (this.last()?.count ?? 0) + 1 };
    this.#write(record);
    this.#inMemory = record;
    return { allowed: true, record };
  }

  #decide(now: number, locked: boolean): RestartAllowance {
    const stored = this.last();
    if (stored === undefined) return { allowed: true, retryAfterMs: 0 };
    const last = stored.lastRestartAt > now ? this.#clampFuture(stored, now, locked) : stored;
    const elapsed = now - last.lastRestartAt;
    if (elapsed >= this.#cooldownMs) return { allowed: true, retryAfterMs: 0, last };
    return { allowed: false, retryAfterMs: this.#cooldownMs - Math.max(0, elapsed), last };
  }

  /** A last restart in the future counts as the moment this process first saw it; persisted so others agree. */
  #clampFuture(stored: RestartRecord, now: number, locked: boolean): RestartRecord {
    if (this.#clamp?.from !== stored.lastRestartAt) {
      this.#clamp = { from: stored.lastRestartAt, to: now };
      this.#logger.warn(
        { file: this.#file, lastRestartAt: stored.lastRestartAt, now, aheadMs: stored.lastRestartAt - now },
        'restart state file has a last restart in the future (clock stepped back or skewed hosts); counting it as now',
      );
      const clamped: RestartRecord = { ...stored, lastRestartAt: now, clampedFrom: stored.lastRestartAt };
      if (this.#file === undefined) this.#inMemory = clamped;
      else this.#persistClamp(clamped, locked);
    }
    return { ...stored, lastRestartAt: Math.min(this.#clamp.to, now), clampedFrom: stored.lastRestartAt };
  }

  #persistClamp(clamped: RestartRecord, locked: boolean): void {
    // Best effort: without the lock (another process is deciding) or a writable file, the in-memory clamp still
    // holds for this process; a read (report(), /self-check) must never fail because of it.
    let ownLock = false;
    try {
      if (!locked && !(ownLock = this.#tryLock())) return;
      if (this.last()?.lastRestartAt === clamped.clampedFrom) this.#write(clamped);
    } catch (error) {
      this.#logger.warn({ err: error, file: this.#file }, 'cannot rewrite the restart state file; the clamp holds in this process only');
    } finally {
      if (ownLock) this.#unlock();
    }
  }

  #write(record: RestartRecord): void {
    if (this.#file === undefined) return;
    mkdirSync(dirname(this.#file), { recursive: true });
    const tmp = `${this.#file}.${process.pid}.tmp`;
    writeFileSync(tmp, `${JSON.stringify(record)}\n`);
    renameSync(tmp, this.#file);
  }

  /** Creates the lock file with O_EXCL; breaks a stale one (its holder crashed). False when another process holds it. */
  #tryLock(): boolean {
    const lockFile = this.#lockFile!;
    for (let attempt = 0; attempt < 2; attempt++) {
      try {
        mkdirSync(dirname(lockFile), { recursive: true });
        const fd = openSync(lockFile, 'wx');
        try {
          writeSync(fd, `${JSON.stringify({ pid: process.pid, at: Date.now() })}\n`);
        } finally {
          closeSync(fd);
        }
        return true;
      } catch (error) {
        if ((error as NodeJS.ErrnoException).code !== 'EEXIST') throw error;
      }
      if (attempt > 0 || !this.#breakIfStale(lockFile)) return false;
    }
    return false;
  }

  #breakIfStale(lockFile: string): boolean {
    try {
      const ageMs = Date.now() - statSync(lockFile).mtimeMs;
      if (ageMs < this.#staleLockMs) return false;
      // Rename first: of two processes breaking the same stale lock, only one rename succeeds.
      const moved = `${lockFile}.${process.pid}.stale`;
      renameSync(lockFile, moved);
      unlinkSync(moved);
      this.#logger.warn({ file: lockFile, ageMs }, 'broke a stale restart state lock (its holder did not release it)');
      return true;
    } catch (error) {
      // Gone meanwhile (released or broken by another process): try again.
      return (error as NodeJS.ErrnoException).code === 'ENOENT';
    }
  }

  #unlock(): void {
    try {
      unlinkSync(this.#lockFile!);
    } catch (error) {
      this.#logger.warn({ err: error, file: this.#lockFile }, 'cannot remove the restart state lock');
    }
  }
}
