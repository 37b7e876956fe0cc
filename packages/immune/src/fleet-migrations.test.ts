import pg from 'pg';
import { spawn } from 'node:child_process';
import { existsSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, describe, expect, it } from 'vitest';
import { filePgDatabase, tempDir } from './test-helpers.js';

const dist = join(fileURLToPath(new URL('.', import.meta.url)), '..', 'dist');
const url = await filePgDatabase('immune_migrations'); // fresh: nothing migrated yet
const temp = tempDir();
afterAll(() => temp.cleanup());

// Each child connects first, says "ready", and migrates when it reads "go": all three hit the fresh database together.
const CHILD = `
import { createRequire } from 'node:module';
const pg = createRequire(${JSON.stringify(join(dist, '..', 'package.json'))})('pg');
import { createPostgresStore } from ${JSON.stringify(join(dist, 'postgres.js'))};
import { FleetMembership } from ${JSON.stringify(join(dist, 'index.js'))};
const url = process.argv[2];
const warm = new pg.Pool({ connectionString: url, max: 2 });
await warm.query('select 1');
process.stdout.write('ready\\n');
process.stdin.once('data', async () => {
  try {
    const store = await createPostgresStore({ connectionString: url, tableName: 'immune_events' });
    const membership = new FleetMembership({ pool: warm, heartbeatMs: 60_000 });
    await membership.start();
    if (!membership.reachable) throw new Error('membership did not register');
    await store.close();
    await membership.close();
    await warm.end();
    process.stdout.write('ok\\n');
  } catch (error) {
    process.stdout.write('failed ' + (error?.cause?.message ?? error?.message) + '\\n');
    process.exitCode = 1;
  }
});
`;

describe('migrations under concurrency', () => {
  it('three processes migrating one fresh database at the same moment all succeed', async () => {
    if (!existsSync(join(dist, 'postgres.js'))) throw new Error('build @guard/immune first');
    const script = join(temp.dir, 'migrate-child.mjs');
    writeFileSync(script, CHILD);
    const children = [0, 1, 2].map(() => spawn(process.execPath, [script, url], { cwd: join(dist, '..'), stdio: ['pipe', 'pipe', 'inherit'] }));
    const outputs = children.map((child) => {
      let text = '';
      child.stdout.on('data', (chunk: Buffer) => (text += chunk.toString()));
      return {
        ready: new Promise<void>((resolve) => child.stdout.on('data', () => text.includes('ready') && resolve())),
        done: new Promise<{ code: number | null; text: string }>((resolve) => child.on('exit', (code) => resolve({ code, text }))),
      };
    });
    await Promise.all(outputs.map((o) => o.ready));
    for (const child of children) child.stdin.end('go\n');
    const results = await Promise.all(outputs.map((o) => o.done));
    for (const result of results) {
      expect(result.text).toContain('ok');
      expect(result.code).toBe(0);
    }
    const check = new pg.Pool({ connectionString: url, max: 1 });
    try {
      const { rows } = await check.query(`select tablename from pg_tables where schemaname = 'public' order by 1`);
      expect(rows.map((r: { tablename: string }) => r.tablename)).toEqual(
        expect.arrayContaining(['immune_events', 'immune_events_rollup', 'immune_events_migrations', 'guard_fleet_instances']),
      );
    } finally {
      await check.end();
    }
  });
});
