import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { pgTestDatabase, type PgTestDatabase } from '@guard/core/testing';
import type { ImmuneStreamEnvelope } from '@guard/immune';
import { createGuard, type GuardOptions } from './index.js';
import { listen, testGuardOptions, until } from '../test/support.js';

let database: PgTestDatabase;
const dir = mkdtempSync(join(tmpdir(), 'guard-node-fleet-'));

beforeAll(async () => {
  database = await pgTestDatabase('guard_node_fleet');
});
afterAll(async () => {
  await database?.drop();
  rmSync(dir, { recursive: true, force: true });
});

const replica = (name: string, extra: GuardOptions = {}): GuardOptions =>
  testGuardOptions({
    env: { GUARD_ADMIN_TOKEN: 'secret' },
    immune: { store: 'postgres', url: database.url },
    playbooks: { acl: { api: ['orders.*'] } },
    fleet: { url: database.url, instanceName: name, heartbeatMs: 100, staleAfterMs: 600 },
    ...extra,
  });

describe('createGuard({ fleet })', () => {
  it('two guards on one database: fleet list, stream, blacklist and mode switch reach each other', async () => {
    await using a = await createGuard(replica('a'));
    await using b = await createGuard(replica('b'));
    await using http = await listen((req, res) => a.handler(req, res));
    const list = (await (await fetch(`${http.base}/api/fleet`)).json()) as { degraded: boolean; count: number; instances: { id: string }[] };
    expect(list).toMatchObject({ degraded: false, count: 2 });
    expect(list.instances.map((i) => i.id.split('-')[0]).sort()).toEqual(['a', 'b']);

    const seen: ImmuneStreamEnvelope[] = [];
    b.immune!.on('immune.event_published', (e) => seen.push(e));
    await until(() => b.fleet?.stream?.connected === true, 'b listening');
    const id = await a.immune!.publishEvent({ severity: 'WARNING', type: 'ERROR_SPIKE', message: 'from a' });
    await until(() => seen.some((e) => e.payload.event_id === id), 'a’s event on b');

    const res = await fetch(`${http.base}/api/fleet/blacklist`, { method: 'POST', headers: { authorization: 'Bearer secret', 'content-type': 'application/json' }, body: JSON.stringify({ actor: 'api' }) });
    expect(res.status).toBe(202);
    expect(a.healing!.messageBus.publish('api', 'orders.new', {})).toBe('blacklisted');
    await until(() => b.healing!.messageBus.isBlacklisted('api'), 'the blacklist on b');

    expect((await fetch(`${http.base}/api/fleet/mode`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ mode: 'disabled' }) })).status).toBe(401);
    const switched = await fetch(`${http.base}/api/fleet/mode`, { method: 'POST', headers: { authorization: 'Bearer secret', 'content-type': 'application/json' }, body: JSON.stringify({ mode: 'disabled', target: 'fleet' }) });
    expect(switched.status).toBe(200);
    await until(() => a.chain.mode === 'disabled' && b.chain.mode === 'disabled', 'the emergency disable on both');
    // A replica started now starts in the fleet's mode.
    await using c = await createGuard(replica('c'));
    expect(c.chain.mode).toBe('disabled');
    await fetch(`${http.base}/api/fleet/mode`, { method: 'DELETE', headers: { authorization: 'Bearer secret', 'content-type': 'application/json' }, body: '{}' });
    await until(() => a.chain.mode === 'detect' && b.chain.mode === 'detect' && c.chain.mode === 'detect', 'their own mode again');
  });

  it('three processes starting together on a fresh database create every schema Guard uses (advisory locks)', { timeout: 60_000 }, async () => {
    await using fresh = await pgTestDatabase('guard_node_fleet_migrate');
    await migrateTogether(fresh.url);
    const check = new pg.Pool({ connectionString: fresh.url, max: 1 });
    try {
      const { rows } = await check.query<{ tablename: string }>(`select tablename from pg_tables where schemaname = 'public' order by 1`);
      // immune's event store and membership, playbooks' decisions and step log, memory's restart lease.
      const tables = ['immune_events', 'immune_events_rollup', 'immune_events_migrations', 'guard_fleet_instances', 'guard_fleet_decisions', 'guard_playbooks_fleet_steps', 'guard_fleet_restarts'];
      expect(rows.map((r) => r.tablename)).toEqual(expect.arrayContaining(tables));
    } finally {
      await check.end();
    }
  });
});

/** Three child processes, connected first, then migrating every fleet schema on the database at `freshUrl` at the same moment. */
async function migrateTogether(freshUrl: string): Promise<void> {
  const req = createRequire(fileURLToPath(new URL('../package.json', import.meta.url)));
  const entry = (name: string) => pathToFileURL(req.resolve(name)).href;
  const script = join(dir, 'migrate.mjs');
  writeFileSync(
    script,
    `
const { default: pg } = await import(${JSON.stringify(entry('pg'))});
const { createPostgresStore } = await import(${JSON.stringify(entry('@guard/immune/postgres'))});
const { FleetMembership } = await import(${JSON.stringify(entry('@guard/immune'))});
const { FleetDecisions } = await import(${JSON.stringify(entry('@guard/playbooks'))});
const { createPostgresFleetLock } = await import(${JSON.stringify(entry('@guard/playbooks/postgres'))});
const { PostgresRestartLease } = await import(${JSON.stringify(entry('@guard/memory'))});
const url = process.argv[2];
const pool = new pg.Pool({ connectionString: url, max: 4 });
await pool.query('select 1');
process.stdout.write('ready\\n');
process.stdin.once('data', async () => {
try {
  const store = await createPostgresStore({ connectionString: url });
  const membership = new FleetMembership({ pool, heartbeatMs: 60_000 });
  await membership.start();
  if (!membership.reachable) throw new Error('membership table');
  const decisions = new FleetDecisions({ pool, instanceId: 'x' + process.pid });
  await decisions.active();
  const lock = createPostgresFleetLock({ connectionString: url });
  await lock.tryRun('migrate-' + process.pid, async () => true);
  const lease = new PostgresRestartLease({ pool, holder: 'h' + process.pid });
  await lease.holders();
  await Promise.all([store.close(), membership.close(), decisions.close(), lock.close(), lease.close()]);
  await pool.end();
  process.stdout.write('ok\\n');
} catch (error) {
  process.stdout.write('failed ' + (error?.cause?.message ?? error?.message) + '\\n');
  process.exitCode = 1;
}
});
`,
  );
  const children = [0, 1, 2].map(() => spawn(process.execPath, [script, freshUrl], { stdio: ['pipe', 'pipe', 'inherit'] }));
  const runs = children.map((child) => {
    let text = '';
    child.stdout!.on('data', (chunk: Buffer) => (text += chunk.toString()));
    return {
      ready: new Promise<void>((resolve) => child.stdout!.on('data', () => text.includes('ready') && resolve())),
      done: new Promise<{ code: number | null; text: () => string }>((resolve) => child.on('exit', (code) => resolve({ code, text: () => text }))),
    };
  });
  await Promise.all(runs.map((r) => r.ready));
  for (const child of children) child.stdin!.end('go\n');
  for (const result of await Promise.all(runs.map((r) => r.done))) {
    expect(result.text()).toContain('ok');
    expect(result.code).toBe(0);
  }
}
