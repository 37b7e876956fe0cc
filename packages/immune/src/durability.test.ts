import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, describe, expect, it } from 'vitest';
import { createSqliteStore } from './sqlite.js';
import { tempDir } from './test-helpers.js';

const here = fileURLToPath(new URL('.', import.meta.url));
const child = join(here, 'fixtures', 'durability-child.mjs');
const tmp = tempDir();
afterAll(() => tmp.cleanup());

describe('durability (SQLite, group commit)', () => {
  it('keeps every acknowledged id after SIGKILL mid-stream', async () => {
    if (!existsSync(join(here, '..', 'dist', 'sqlite.js'))) throw new Error('build @guard/immune first: the child process runs dist/');
    const path = join(tmp.dir, 'durable.db');
    const proc = spawn(process.execPath, [child, path], { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    let err = '';
    proc.stderr.on('data', (c: Buffer) => (err += c.toString()));
    const exited = new Promise<NodeJS.Signals | null>((resolve) => proc.on('exit', (_code, signal) => resolve(signal)));
    await new Promise<void>((resolve, reject) => {
      const onData = (c: Buffer) => {
        out += c.toString();
        // Kill once well into the stream: thousands acknowledged, many more in flight.
        if (out.length > 20_000 * 37) {
          proc.stdout.off('data', onData);
          proc.kill('SIGKILL');
          resolve();
        }
      };
      proc.stdout.on('data', onData);
      proc.on('exit', () => reject(new Error(`child exited early: ${err}`)));
    });
    // Read whatever the pipe still holds: those ids were printed before the kill too.
    await new Promise<void>((resolve) => {
      proc.stdout.on('data', (c: Buffer) => (out += c.toString()));
      proc.stdout.on('end', resolve);
    });
    expect(await exited).toBe('SIGKILL');
    const printed = out.split('\n').filter((line) => /^[0-9a-f]{8}-[0-9a-f]{4}-7[0-9a-f]{3}-[0-9a-f]{4}-[0-9a-f]{12}$/.test(line));
    expect(printed.length).toBeGreaterThanOrEqual(19_000);

    await using store = await createSqliteStore({ path });
    const stored = new Set((store.database.prepare(`select id from ${store.tableName}`).pluck().all() as string[]));
    const missing = printed.filter((id) => !stored.has(id));
    expect(missing).toEqual([]);
    // The rollup committed in the same transactions as the rows.
    expect((await store.counts(0)).total).toBe(stored.size);
  }, 60_000);
});
