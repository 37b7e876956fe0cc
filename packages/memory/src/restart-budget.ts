import { mkdirSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { dirname } from 'node:path';
import type { Logger } from '@guard/core';

/** Why the guardrail restarted (or wanted to restart) the process. */
export type RestartReason = 'rss_threshold' | 'cache_threshold' | 'predicted_breach' | 'manual';

/** The last restart, as persisted in the restart state file (plain JSON). */
export interface RestartRecord {
  /** Epoch milliseconds. */
  readonly lastRestartAt: number;
  readonly reason: RestartReason;
  readonly pid: number;
}

/** Whether a restart may happen now. */
export interface RestartAllowance {
  readonly allowed: boolean;
  /** 0 when allowed, else how long until the cooldown ends. */
  readonly retryAfterMs: number;
  readonly last?: RestartRecord;
}

/**
 * At most one restart per `cooldownMs`, remembered across process restarts in `file` (memory only without one).
 * The file is re-read on every decision, so a fresh process sees the restart its predecessor made.
 * Writes are atomic (temp file + rename).
 */
export class RestartBudget {
  readonly #file: string | undefined;
  readonly #cooldownMs: number;
  readonly #logger: Logger;
  #inMemory: RestartRecord | undefined;

  constructor(options: { file?: string; cooldownMs: number; logger: Logger }) {
    this.#file = options.file;
    this.#cooldownMs = options.cooldownMs;
    this.#logger = options.logger;
  }

  /** The last restart, from the file when there is one. */
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
        return { lastRestartAt: parsed.lastRestartAt, reason: parsed.reason ?? 'manual', pid: parsed.pid ?? 0 };
      }
    } catch {}
    this.#logger.warn({ file: this.#file }, 'restart state file is not valid; ignoring it');
    return this.#inMemory;
  }

  check(now: number): RestartAllowance {
    const last = this.last();
    if (last === undefined) return { allowed: true, retryAfterMs: 0 };
    const elapsed = now - last.lastRestartAt;
    if (elapsed >= this.#cooldownMs || elapsed < 0) return { allowed: true, retryAfterMs: 0, last };
    return { allowed: false, retryAfterMs: this.#cooldownMs - elapsed, last };
  }

  /** Records a restart; throws when the file cannot be written (a restart we cannot remember must not happen). */
  record(now: number, reason: RestartReason): RestartRecord {
    const record: RestartRecord = { lastRestartAt: now, reason, pid: process.pid };
    if (this.#file !== undefined) {
      mkdirSync(dirname(this.#file), { recursive: true });
      const tmp = `${this.#file}.${process.pid}.tmp`;
      writeFileSync(tmp, `${JSON.stringify(record)}\n`);
      renameSync(tmp, this.#file);
    }
    this.#inMemory = record;
    return record;
  }
}
