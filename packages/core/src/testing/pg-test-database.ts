import { randomBytes } from 'node:crypto';
import { readdirSync } from 'node:fs';
import { createRequire } from 'node:module';
import { join } from 'node:path';

/** The server tests use unless `GUARD_TEST_PG_URL` names another. */
export const DEFAULT_TEST_PG_URL = 'postgres://postgres@127.0.0.1:5432/test';

/** A database of the test's own; `drop()` removes it (idempotent), also through `await using`. */
export interface PgTestDatabase extends AsyncDisposable {
  /** Connection URL of the new database. */
  readonly url: string;
  /** Its name, `<prefix>_<random>`. */
  readonly name: string;
  drop(): Promise<void>;
}

/** The slice of `pg` this module uses (typed here: `pg` is an optional peer and may be absent). */
interface PgClient {
  connect(): Promise<unknown>;
  query(sql: string): Promise<unknown>;
  end(): Promise<void>;
  on(event: 'error', listener: (error: Error) => void): unknown;
}
interface PgModule {
  Client: new (config: { connectionString: string; connectionTimeoutMillis?: number }) => PgClient;
}

/**
 * The Postgres server tests use: `GUARD_TEST_PG_URL`, else the local one at its default address.
 *
 * @example
 * const serverUrl = pgTestServerUrl();
 */
export function pgTestServerUrl(env: Readonly<Record<string, string | undefined>> = process.env): string {
  return env.GUARD_TEST_PG_URL || DEFAULT_TEST_PG_URL;
}

/**
 * Creates a fresh database `<prefix>_<random>` on the test server ({@link pgTestServerUrl}) and returns its URL, so
 * test files never share tables. When no server answers, throws an Error saying what to start. Needs `pg` (an
 * optional peer dependency, loaded only here).
 *
 * @example
 * await using db = await pgTestDatabase('immune_fleet');
 * const pool = new pg.Pool({ connectionString: db.url });
 */
export async function pgTestDatabase(prefix: string): Promise<PgTestDatabase> {
  if (!/^[a-z_][a-z0-9_]{0,40}$/.test(prefix)) {
    throw new Error(`pgTestDatabase: prefix must be a lower-case identifier of at most 41 characters, got ${JSON.stringify(prefix)}`);
  }
  const serverUrl = pgTestServerUrl();
  const pg = loadPg();
  const name = `${prefix}_${randomBytes(6).toString('hex')}`;
  await onServer(pg, serverUrl, `CREATE DATABASE "${name}"`);
  const url = new URL(serverUrl);
  url.pathname = `/${name}`;
  let dropping: Promise<void> | undefined;
  const drop = (): Promise<void> => (dropping ??= onServer(pg, serverUrl, `DROP DATABASE IF EXISTS "${name}" WITH (FORCE)`));
  return { url: url.toString(), name, drop, [Symbol.asyncDispose]: drop };
}

async function onServer(pg: PgModule, serverUrl: string, sql: string): Promise<void> {
  const client = new pg.Client({ connectionString: serverUrl, connectionTimeoutMillis: 5_000 });
  client.on('error', () => undefined); // a backend that dies after the query must not crash the test run
  try {
    await client.connect();
  } catch (error) {
    await client.end().catch(() => undefined);
    throw new Error(unreachable(serverUrl, error), { cause: error });
  }
  try {
    await client.query(sql);
  } finally {
    await client.end();
  }
}

function unreachable(serverUrl: string, error: unknown): string {
  const reason = (error as { code?: string; message?: string } | null)?.code ?? (error as Error | null)?.message ?? String(error);
  const safeUrl = serverUrl.replace(/\/\/([^:@/]*):[^@/]*@/, '//$1:***@');
  const start = localClusterStart() ?? 'start the local Postgres server (pg_ctlcluster <version> main start)';
  return `Postgres is not reachable at ${safeUrl} (${reason}): ${start}, or set GUARD_TEST_PG_URL to a server where the user may CREATE DATABASE`;
}

/** `pg_ctlcluster 15 main start` when a Debian-style cluster is installed. */
function localClusterStart(): string | undefined {
  try {
    const versions = readdirSync('/etc/postgresql').filter((v) => /^\d+$/.test(v)).sort((a, b) => Number(b) - Number(a));
    return versions[0] === undefined ? undefined : `start it with \`pg_ctlcluster ${versions[0]} main start\``;
  } catch {
    return undefined;
  }
}

/**
 * `pg`, resolved from this package, else from the working directory (a workspace where only the package under test
 * installed it).
 */
function loadPg(): PgModule {
  let firstError: unknown;
  for (const anchor of [import.meta.url, join(process.cwd(), 'package.json')]) {
    try {
      return createRequire(anchor)('pg') as PgModule;
    } catch (error) {
      firstError ??= error;
    }
  }
  throw new Error('pgTestDatabase needs the optional peer dependency "pg": npm i -D pg', { cause: firstError });
}
