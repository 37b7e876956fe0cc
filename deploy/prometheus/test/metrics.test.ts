import { readFileSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { MISSING_PROMETHEUS, RULES_FILE, findBinary, run, startDemo, type Demo } from './support.js';

/**
 * `promtool check metrics` findings allowed on the demo's `/metrics`: prom-client's own default gauges that end in
 * `_total` (its naming, not Guard's; renaming them would break every dashboard built on prom-client's defaults).
 */
const TOLERATED = [
  'nodejs_active_handles_total non-counter metrics should not have "_total" suffix',
  'nodejs_active_requests_total non-counter metrics should not have "_total" suffix',
  'nodejs_active_resources_total non-counter metrics should not have "_total" suffix',
];

const promtool = findBinary('promtool');
if (!promtool) console.warn(MISSING_PROMETHEUS);

/** The Postgres the repo's tests share (GUARD_TEST_PG_URL); the Postgres demo gets a database of its own in it. */
const PG_URL = process.env.GUARD_TEST_PG_URL ?? 'postgres://postgres@127.0.0.1:5432/test';
const PG_DATABASE = `guard_prom_metrics_${process.pid}`;

/** Runs one statement with psql (the Postgres client CI installs with the server). */
async function psql(sql: string): Promise<void> {
  const { code, output } = await run('psql', [PG_URL, '-v', 'ON_ERROR_STOP=1', '-qAtc', sql]);
  if (code !== 0) throw new Error(`psql ${sql}: ${output}`);
}

let sqliteDemo: Demo | undefined;
let postgresDemo: Demo | undefined;
/** `/metrics` of the demo on SQLite (the default) and on Postgres (DATABASE_URL: the store exports one more metric). */
const exposition = { sqlite: '', postgres: '' };

beforeAll(async () => {
  await psql(`drop database if exists ${PG_DATABASE} with (force)`);
  await psql(`create database ${PG_DATABASE}`);
  const url = new URL(PG_URL);
  url.pathname = `/${PG_DATABASE}`;
  [sqliteDemo, postgresDemo] = await Promise.all([startDemo(), startDemo({ DATABASE_URL: url.toString() })]);
  for (const [kind, demo] of [['sqlite', sqliteDemo], ['postgres', postgresDemo]] as const) {
    const res = await fetch(`${demo.url}/metrics`);
    expect(res.status).toBe(200);
    exposition[kind] = await res.text();
  }
});
afterAll(async () => {
  expect(await Promise.all([sqliteDemo?.stop(), postgresDemo?.stop()])).toEqual([0, 0]);
  await psql(`drop database if exists ${PG_DATABASE} with (force)`);
});

describe("the demo's /metrics", () => {
  it.skipIf(!promtool).each(['sqlite', 'postgres'] as const)(
    'passes `promtool check metrics` on %s with only prom-client’s default _total gauges flagged',
    async (kind) => {
      const { code, output } = await run(promtool!, ['check', 'metrics'], exposition[kind]);
      const findings = output.split('\n').map((line) => line.trim()).filter(Boolean);
      console.log(`promtool check metrics (${kind}): ${findings.length} finding(s), all tolerated:\n  ${findings.join('\n  ')}`);
      expect(findings.filter((f) => !TOLERATED.includes(f))).toEqual([]);
      // promtool exits 3 for lint findings; anything else (a parse error) is a failure.
      expect(code, output).toBe(findings.length > 0 ? 3 : 0);
    },
  );

  it('exports every metric the rules use (on Postgres, a superset of SQLite)', () => {
    const onSqlite = new Set([...exposition.sqlite.matchAll(/^# TYPE (\S+) /gm)].map((m) => m[1]!));
    const onPostgres = new Set([...exposition.postgres.matchAll(/^# TYPE (\S+) /gm)].map((m) => m[1]!));
    expect([...onSqlite].filter((name) => !onPostgres.has(name))).toEqual([]);
    const rules = readFileSync(RULES_FILE, 'utf8');
    const exprs = [...rules.matchAll(/^ {8}expr: (?:\|\n((?: {10}.*\n)+)|(.*)\n)/gm)].map((m) => m[1] ?? m[2]!);
    expect(exprs.length).toBeGreaterThan(30);
    // Metric names (recording rules are `level:metric:operation`, Prometheus's `up` is not the app's).
    const used = new Set(exprs.flatMap((e) => [...e.matchAll(/(?<![\w:])((?:guard|parasite|process|nodejs)_[a-z0-9_]+)\b/g)].map((m) => m[1]!)));
    expect(used.size).toBeGreaterThan(15);
    expect([...used].filter((name) => !onPostgres.has(name)).sort()).toEqual([]);
  });
});
