import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { copyFileSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { createServer, type AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import pg from 'pg';
import { WebSocket } from 'ws';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { PG_URL, until } from './support.js';

/*
 * Acceptance, as a new user would do it: the packages are packed with `pnpm pack`, installed with plain `npm` into a
 * temp dir outside the monorepo next to prom-client 15.0.x (an older 15.x than Guard is developed on), and the
 * README's quick starts run there as written.
 *
 * better-sqlite3 (the default immune store's driver) is installed with --ignore-scripts and given the monorepo's
 * compiled binary (same version, same Node ABI): its install script downloads a prebuilt binary from GitHub, which
 * this sandbox cannot reach, and compiling SQLite would take minutes.
 */
const run = promisify(execFile);
const here = dirname(fileURLToPath(import.meta.url));
const packagesDir = join(here, '..', '..');
const PACKAGES = ['core', 'detectors', 'sanitizer', 'circuit', 'memory', 'immune', 'playbooks', 'node'];
const work = mkdtempSync(join(tmpdir(), 'guard-node-acceptance-'));
const npmCache = join(tmpdir(), 'guard-node-acceptance-npm-cache');
const table = `guard_node_acc_${process.pid}`;
const children = new Set<ChildProcess>();

/** The README's fenced `js` blocks, by the heading above them. */
function quickStarts(): Record<string, string> {
  const readme = readFileSync(join(here, '..', 'README.md'), 'utf8');
  const out: Record<string, string> = {};
  for (const match of readme.matchAll(/## Quick start: ([^\n]+)\n+```js\n([\s\S]*?)```/g)) out[match[1]!.trim()] = match[2]!;
  return out;
}

async function freePort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  await new Promise((resolve) => server.close(resolve));
  return port;
}

interface App {
  readonly base: string;
  readonly child: ChildProcess;
  readonly exited: Promise<number | null>;
  readonly lines: Record<string, unknown>[];
  line(msg: string): Promise<void>;
}

/** Starts `file` in the install dir and waits until its /livez answers. */
async function start(file: string, env: Record<string, string> = {}): Promise<App> {
  const port = await freePort();
  const child = spawn(process.execPath, ['--import', './app-metric.mjs', file], {
    cwd: work,
    env: { PATH: process.env.PATH, PORT: String(port), PG_URL, GUARD_IMMUNE_TABLE: table, GUARD_SHUTDOWN_DELAY: '2s', PARASITE_LOG_LEVEL: 'info', ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  children.add(child);
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  const lines: Record<string, unknown>[] = [];
  let stderr = '';
  child.stderr!.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
  createInterface({ input: child.stdout! }).on('line', (text) => {
    try {
      lines.push(JSON.parse(text) as Record<string, unknown>);
    } catch {
      lines.push({ msg: text });
    }
  });
  const base = `http://127.0.0.1:${port}`;
  const live = async () => {
    if (child.exitCode !== null) throw new Error(`${file} exited with ${child.exitCode}: ${stderr}`);
    return fetch(`${base}/livez`).then((r) => r.ok, () => false);
  };
  await until(live, `${file} to answer /livez`, 30_000, 50);
  return { base, child, exited, lines, line: (msg) => until(() => lines.some((l) => l.msg === msg), `log line "${msg}"`, 10_000, 10) };
}

/** SIGTERM: readiness fails at once (during the shutdown delay), then the process drains and exits 0 by itself. */
async function expectGracefulExit(app: App): Promise<void> {
  app.child.kill('SIGTERM');
  await app.line('guard: shutting down');
  expect((await fetch(`${app.base}/readyz`)).status).toBe(503);
  expect(await app.exited).toBe(0);
  expect(app.lines.some((l) => l.msg === 'guard: handles still open after shutdown, exiting anyway')).toBe(false);
}

async function expectOwnRegistry(app: App): Promise<void> {
  const text = await (await fetch(`${app.base}/metrics`)).text();
  expect(text).toContain('app_orders_total 3');
  expect(text).toContain('guard_memory_rss_bytes');
}

beforeAll(async () => {
  const tarballs = join(work, 'tarballs');
  mkdirSync(tarballs);
  await Promise.all(PACKAGES.map((name) => run('pnpm', ['pack', '--pack-destination', tarballs], { cwd: join(packagesDir, name) })));
  const sqlite = createRequire(join(packagesDir, 'node', 'package.json'))('better-sqlite3/package.json') as { version: string };
  writeFileSync(join(work, 'package.json'), JSON.stringify({ name: 'acceptance-app', private: true, type: 'module' }));
  const deps = ['express@^5', 'fastify@^5', 'fastify-plugin@^5', 'prom-client@15.0.0', 'ws@^8', 'pg@^8', 'kysely@~0.28.0', `better-sqlite3@${sqlite.version}`];
  const packed = readdirSync(tarballs).map((file) => join(tarballs, file));
  await run('npm', ['install', '--no-audit', '--no-fund', '--ignore-scripts', '--prefer-offline', '--cache', npmCache, ...packed, ...deps], { cwd: work, timeout: 150_000 });
  const binary = join(dirname(createRequire(join(packagesDir, 'node', 'package.json')).resolve('better-sqlite3/package.json')), 'build', 'Release', 'better_sqlite3.node');
  mkdirSync(join(work, 'node_modules', 'better-sqlite3', 'build', 'Release'), { recursive: true });
  copyFileSync(binary, join(work, 'node_modules', 'better-sqlite3', 'build', 'Release', 'better_sqlite3.node'));
  for (const [name, code] of Object.entries(quickStarts())) writeFileSync(join(work, `${name.split(/[\s:]/)[0]!.toLowerCase()}.mjs`), code);
  copyFileSync(join(here, 'fixtures', 'app-metric.mjs'), join(work, 'app-metric.mjs'));
  copyFileSync(join(here, 'fixtures', 'two-of-each.mjs'), join(work, 'two-of-each.mjs'));
}, 240_000);

afterAll(async () => {
  for (const child of children) if (child.exitCode === null) child.kill('SIGKILL');
  rmSync(work, { recursive: true, force: true });
  const client = new pg.Client({ connectionString: PG_URL });
  await client.connect();
  for (const suffix of ['', '_rollup', '_migrations', '_migrations_lock']) await client.query(`drop table if exists ${table}${suffix}`);
  await client.end();
});

describe('acceptance: packed tarballs installed by npm outside the monorepo', () => {
  it('has one copy of each peer (prom-client is the app\'s 15.0.x), so Guard and the app share a registry and objects', async () => {
    const copies = async (name: string) => (await run('npm', ['ls', name, '--all', '--parseable', '--long'], { cwd: work })).stdout.trim().split('\n').filter(Boolean);
    const prom = await copies('prom-client');
    expect(prom).toHaveLength(1);
    expect(prom[0]).toMatch(/prom-client@15\.0\.\d+/);
    for (const peer of ['kysely', 'ws', 'pg']) expect(await copies(peer), peer).toHaveLength(1);
  });

  it('the node:http + ws + kysely/pg quick start runs as written', async () => {
    const app = await start('node.mjs', { DATABASE_URL: PG_URL });
    expect(await (await fetch(`${app.base}/api/one`)).json()).toEqual({ one: 1 });
    await expectOwnRegistry(app);
    expect(await (await fetch(`${app.base}/api/immune/health`)).json()).toMatchObject({ status: 'healthy' });
    const ws = new WebSocket(`${app.base.replace('http', 'ws')}/ws`);
    await new Promise((resolve) => ws.once('open', resolve));
    const closed = new Promise<number>((resolve) => ws.once('close', resolve));
    await expectGracefulExit(app);
    expect(await closed).toBe(1001);
  });

  it('the Express 5 quick start runs as written, with express.json() before Guard', async () => {
    const app = await start('express.mjs');
    const json = { 'content-type': 'application/json' };
    expect(await (await fetch(`${app.base}/api/echo`, { method: 'POST', headers: json, body: '{"a":1}' })).json()).toEqual({ a: 1 });
    const event = await fetch(`${app.base}/api/immune/event`, { method: 'POST', headers: json, body: JSON.stringify({ severity: 'INFO', type: 'ERROR_SPIKE', message: 'express' }) });
    expect(event.status).toBe(201);
    await expectOwnRegistry(app);
    await expectGracefulExit(app);
  });

  it('the Fastify 5 quick start runs as written', async () => {
    const app = await start('fastify.mjs');
    expect(await (await fetch(`${app.base}/api/hello`)).json()).toEqual({ hello: 'world' });
    expect(await (await fetch(`${app.base}/readyz?verbose`)).text()).toContain('readyz check passed');
    await expectOwnRegistry(app);
    await expectGracefulExit(app);
  });

  it('two WebSocket servers and two pools in full mode: a leak in each is detected and healed; SIGTERM drains an in-flight request', async () => {
    const app = await start('two-of-each.mjs', {
      PARASITE_GUARD_MODE: 'full',
      PARASITE_GUARD_WEBSOCKET_THRESHOLD: 'ping_interval=1',
      PARASITE_GUARD_DB_THRESHOLD: 'leak_threshold=1',
      PARASITE_GUARD_WEBSOCKET_ASYNC_DELAY: '0',
      PARASITE_GUARD_DB_ASYNC_DELAY: '0',
    });
    const connect = async (path: string, autoPong: boolean) => {
      const ws = new WebSocket(`${app.base.replace('http', 'ws')}${path}`, { autoPong });
      ws.on('error', () => {});
      await new Promise((resolve) => ws.once('open', resolve));
      return ws;
    };
    const healthy = [await connect('/quotes', true), await connect('/chat', true)];
    const dead = [await connect('/quotes', false), await connect('/chat', false)];
    const closeCodes = dead.map((ws) => new Promise<number>((resolve) => ws.once('close', resolve)));
    await fetch(`${app.base}/leak`);
    expect(await (await fetch(`${app.base}/pools`)).json()).toEqual({ orders: 1, audit: 1 });

    expect(await Promise.all(closeCodes)).toEqual([1011, 1011]);
    const healed = (component: string) => async () =>
      (await (await fetch(`${app.base}/metrics`)).text()).includes(`parasite_sanitized_total{component="${component}",outcome="success"} 2`);
    await until(healed('websocket'), 'both dead peers healed');
    await until(healed('db'), 'both orphans healed');
    expect(await (await fetch(`${app.base}/pools`)).json()).toEqual({ orders: 0, audit: 0 });
    expect(healthy.map((ws) => ws.readyState)).toEqual([WebSocket.OPEN, WebSocket.OPEN]);

    const slow = fetch(`${app.base}/slow`);
    await app.line('slow started');
    await expectGracefulExit(app);
    const done = await slow;
    expect(await done.text()).toBe('slow done');
  });
});
