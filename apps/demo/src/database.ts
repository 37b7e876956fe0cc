import { mkdirSync } from 'node:fs';
import { dirname } from 'node:path';
import { Kysely, PostgresDialect, SqliteDialect, sql, type Dialect } from 'kysely';

/** The demo's own tables. */
export interface DemoTables {
  analyses: {
    id: string;
    text: string;
    status: string;
    score: number | null;
    created_at: number;
    finished_at: number | null;
  };
}

/** Which database the demo uses, and how to reach it. */
export type DatabaseConfig = { kind: 'sqlite'; file: string } | { kind: 'postgres'; url: string };

/** SQLite file under `dataDir` by default; Postgres when `DATABASE_URL` is set. */
export function databaseConfigFromEnv(env: NodeJS.ProcessEnv, dataDir: string): DatabaseConfig {
  const url = env.DATABASE_URL?.trim();
  return url ? { kind: 'postgres', url } : { kind: 'sqlite', file: `${dataDir}/demo.db` };
}

/** Builds the kysely dialect (the native driver is loaded only for the chosen kind). */
export async function createDialect(config: DatabaseConfig): Promise<Dialect> {
  if (config.kind === 'postgres') {
    const { default: pg } = await import('pg');
    return new PostgresDialect({ pool: new pg.Pool({ connectionString: config.url, max: 10 }) });
  }
  const { default: Database } = await import('better-sqlite3');
  mkdirSync(dirname(config.file), { recursive: true });
  const db = new Database(config.file);
  db.pragma('journal_mode = WAL');
  db.pragma('busy_timeout = 5000');
  return new SqliteDialect({ database: db });
}

/** Creates the demo's tables if they are missing. */
export async function migrate(db: Kysely<DemoTables>): Promise<void> {
  await db.schema
    .createTable('analyses')
    .ifNotExists()
    .addColumn('id', 'varchar(64)', (c) => c.primaryKey())
    .addColumn('text', 'text', (c) => c.notNull())
    .addColumn('status', 'varchar(16)', (c) => c.notNull())
    .addColumn('score', 'integer')
    .addColumn('created_at', 'bigint', (c) => c.notNull())
    .addColumn('finished_at', 'bigint')
    .execute();
  await sql`create index if not exists analyses_created_at on analyses (created_at)`.execute(db);
}
