import { sleep, type Logger } from '@guard/core';
import { isDatabaseUnavailable } from './database-errors.js';

/**
 * Runs a startup step against the database again while the database is unavailable or busy (not up yet, a partition,
 * another instance holding the migration lock past the statement timeout), until `deadlineMs`; any other error, or
 * the deadline, rejects. Without it one slow neighbour at startup would end the process.
 */
export async function retryWhileUnavailable<T>(what: string, step: () => Promise<T>, options: { logger: Logger; deadlineMs: number; delayMs?: number }): Promise<T> {
  const delayMs = options.delayMs ?? 500;
  const deadline = Date.now() + options.deadlineMs;
  for (let attempt = 1; ; attempt++) {
    try {
      return await step();
    } catch (error) {
      if (!isDatabaseUnavailable(error) || Date.now() + delayMs > deadline) throw error;
      options.logger.warn({ err: error, what, attempt }, 'database unavailable at startup; retrying');
      await sleep(delayMs, { unref: true });
    }
  }
}
