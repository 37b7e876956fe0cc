// Benchmark of @guard/immune: publish throughput against the raw better-sqlite3 floor (interleaved rounds), per store,
// and healthSummary latency over 1,000,000 rows.
// Run: pnpm --filter @guard/immune build && pnpm --filter @guard/immune bench
// (Postgres rows need GUARD_TEST_PG_URL or a local server; BENCH_ROWS and BENCH_SECONDS shrink the run.)
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { Bench } from 'tinybench';
import { loadLine, median } from '../../../scripts/bench-harness.mjs';
import { createEventId, ImmuneService, MemoryEventStore } from '../dist/index.js';
import { createSqliteStore } from '../dist/sqlite.js';
import { createPostgresStore } from '../dist/postgres.js';

const dir = mkdtempSync(join(tmpdir(), 'guard-immune-bench-'));
const PUBLISHERS = 2_000; // concurrent publishers (think: requests in flight)
const SECONDS = Number(process.env.BENCH_SECONDS ?? 3);
const pgUrl = process.env.GUARD_TEST_PG_URL ?? 'postgres://postgres@127.0.0.1:5432/test';
const pgTable = `immune_bench_${process.pid}`;

/** Publishes from PUBLISHERS concurrent loops for SECONDS; every counted event was acknowledged (durable). */
async function throughput(service, seconds = SECONDS) {
  let n = 0;
  const end = performance.now() + seconds * 1_000;
  const worker = async () => {
    while (performance.now() < end) {
      await service.publishEvent({ severity: n % 50 === 0 ? 'CRITICAL' : 'INFO', type: 'ERROR_SPIKE', message: 'request failed', module: 'api', meta: { n } });
      n++;
    }
  };
  const started = performance.now();
  await Promise.all(Array.from({ length: PUBLISHERS }, worker));
  return n / ((performance.now() - started) / 1_000);
}

/**
 * Ours against the floor, interleaved: each round runs the raw better-sqlite3 writer, then ImmuneService.publishEvent,
 * ROUND_MS each, on two files of the same schema (the store's own table: WITHOUT ROWID on (created_at, id) plus the
 * partial CRITICAL index, which its queries need), WAL + synchronous=FULL. The floor is a prepared one-row INSERT,
 * 1,000 rows per transaction, ids and meta JSON made in the loop; ours also validates, keeps the rollup and resolves
 * one promise per event.
 */
async function ingestAgainstFloor(rounds = Number(process.env.BENCH_ROUNDS ?? 7), roundMs = 1_000) {
  const service = new ImmuneService({ store: await createSqliteStore({ path: join(dir, 'ours.db') }) });
  const schemaOnly = await createSqliteStore({ path: join(dir, 'floor.db') });
  const table = schemaOnly.tableName;
  await schemaOnly.close();
  const db = new Database(join(dir, 'floor.db'));
  db.pragma('journal_mode = WAL');
  db.pragma('synchronous = FULL');
  const insert = db.prepare(`INSERT INTO "${table}" (id, agent_id, module, severity, type, message, meta, created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)`);
  const batch = db.transaction((n, now) => {
    for (let i = 0; i < n; i++) insert.run(createEventId(now), null, 'api', i % 50 === 0 ? 'CRITICAL' : 'INFO', 'ERROR_SPIKE', 'request failed', JSON.stringify({ n: i }), now);
  });
  const floor = async () => {
    let n = 0;
    const started = performance.now();
    while (performance.now() < started + roundMs) {
      batch(1_000, Date.now());
      n += 1_000;
      await new Promise((resolve) => setImmediate(resolve));
    }
    return n / ((performance.now() - started) / 1_000);
  };
  const ours = () => throughput(service, roundMs / 1_000);
  await floor(); // warm-up
  await ours();
  const floors = [];
  const oursRates = [];
  const ratios = [];
  for (let round = 0; round < rounds; round++) {
    const f = await floor();
    const o = await ours();
    floors.push(f);
    oursRates.push(o);
    ratios.push(o / f);
  }
  await service.close();
  db.close();
  return { floor: median(floors), ours: median(oursRates), ratio: { median: median(ratios), min: Math.min(...ratios), max: Math.max(...ratios) } };
}

try {
  const rows = [];
  console.log(`@guard/immune bench, ${await loadLine()}`);
  const ingest = await ingestAgainstFloor();
  console.log(`\ningest, ${process.env.BENCH_ROUNDS ?? 7} interleaved rounds of 1 s (median events/s):`);
  console.log(`  raw better-sqlite3 floor (same schema, FULL)       ${Math.round(ingest.floor).toLocaleString('en-US')} events/s`);
  console.log(`  ImmuneService.publishEvent, SQLite group commit    ${Math.round(ingest.ours).toLocaleString('en-US')} events/s`);
  console.log(`  ratio ours / floor                                 ${ingest.ratio.median.toFixed(2)} (${ingest.ratio.min.toFixed(2)}-${ingest.ratio.max.toFixed(2)})  target >= 0.6: ${ingest.ratio.median >= 0.6 ? 'ok' : 'MISSED'}`);

  // 1. Publish throughput.
  {
    const service = new ImmuneService({ store: new MemoryEventStore({ capacity: 100_000 }) });
    rows.push({ case: 'publish: memory ring', value: await throughput(service), unit: 'events/s' });
    await service.close();
  }
  // SQLite: per-event transactions vs group commit, at both durability levels (default: synchronous=FULL).
  const sqliteCase = async (label, options) => {
    const service = new ImmuneService({ store: await createSqliteStore({ path: join(dir, `${rows.length}.db`), ...options }) });
    const value = await throughput(service);
    rows.push({ case: label, value, unit: 'events/s' });
    await service.close();
    return value;
  };
  const perEvent = await sqliteCase('publish: SQLite FULL, one transaction per event (baseline)', { maxBatchSize: 1 });
  const grouped = await sqliteCase('publish: SQLite FULL, group commit (default)', {});
  const perEventNormal = await sqliteCase('publish: SQLite NORMAL, one transaction per event', { synchronous: 'normal', maxBatchSize: 1 });
  const groupedNormal = await sqliteCase('publish: SQLite NORMAL, group commit', { synchronous: 'normal' });
  try {
    const service = new ImmuneService({ store: await createPostgresStore({ connectionString: pgUrl, tableName: pgTable }) });
    rows.push({ case: 'publish: Postgres, group commit', value: await throughput(service), unit: 'events/s' });
    await service.close();
  } catch (error) {
    rows.push({ case: `publish: Postgres (skipped: ${error.message.slice(0, 60)})`, value: NaN, unit: '' });
  }

  // 2. healthSummary over 1,000,000 stored rows (SQLite), filled straight through the store.
  const ROWS = Number(process.env.BENCH_ROWS ?? 1_000_000);
  const store = await createSqliteStore({ path: join(dir, 'million.db'), maxBatchSize: 5_000, maxPending: 1_000_000 });
  const now = Date.now();
  const severities = ['INFO', 'INFO', 'INFO', 'WARNING', 'CRITICAL'];
  const types = ['POLICY_VIOLATION', 'ERROR_SPIKE', 'SELF_HEALING_ACTION'];
  const fillStarted = performance.now();
  for (let i = 0; i < ROWS; i += 20_000) {
    const batch = [];
    for (let j = i; j < Math.min(ROWS, i + 20_000); j++) {
      // Spread over the last 24 h, oldest first.
      const createdAt = now - 86_400_000 + Math.floor((j * 86_400_000) / ROWS);
      batch.push(store.insert({ id: createEventId(createdAt), severity: severities[j % 5], type: types[j % 3], message: `event ${j}`, meta: { j }, createdAt }));
    }
    await Promise.all(batch);
  }
  const fillSeconds = (performance.now() - fillStarted) / 1_000;
  const service = new ImmuneService({ store });
  const bench = new Bench({ time: 2_000, warmupTime: 200 });
  bench
    .add(`healthSummary, 25 h window over all ${ROWS.toLocaleString('en-US')} rows`, async () => {
      const s = await service.healthSummary({ windowMs: 90_000_000 });
      if (s.total !== ROWS) throw new Error(`expected ${ROWS}, got ${s.total}`);
    })
    .add('healthSummary 1 h window', async () => {
      await service.healthSummary({ windowMs: 3_600_000 });
    })
    .add('getRecentEvents CRITICAL, limit 100', async () => {
      await service.getRecentEvents({ windowMs: 86_400_000, severity: 'CRITICAL', limit: 100 });
    });
  await bench.run();
  for (const task of bench.tasks) {
    if (!task.result.latency) throw new Error(`${task.name}: ${task.result.state} ${task.result.error?.stack ?? ''}`);
    const latency = task.result.latency;
    rows.push({ case: task.name, value: latency.p50 ?? latency.mean, unit: 'ms p50', p99: latency.p99 });
  }
  await service.close();

  // 3. Report.
  const fmt = (v) => (Number.isNaN(v) ? '-' : v >= 100 ? Math.round(v).toLocaleString('en-US') : v.toFixed(2));
  console.log(`\n@guard/immune bench (node ${process.version}, ${PUBLISHERS} concurrent publishers, ${SECONDS}s per case; filled ${ROWS.toLocaleString('en-US')} rows in ${fillSeconds.toFixed(1)}s)\n`);
  console.log('| case | result | unit | vs baseline |');
  console.log('|---|---:|---|---:|');
  for (const row of rows) {
    const ratio = row.unit === 'events/s' ? `${(row.value / perEvent).toFixed(1)}x` : row.p99 === undefined ? '' : `p99 ${fmt(row.p99)} ms`;
    console.log(`| ${row.case} | ${fmt(row.value)} | ${row.unit} | ${ratio} |`);
  }
  const summary = rows.find((r) => r.case.startsWith('healthSummary, 25 h'));
  console.log(
    `\ntargets: SQLite group commit >= 50,000/s: ${grouped >= 50_000 ? 'met' : 'MISSED'} (${fmt(grouped)}); ` +
      `>= 10x per-event: ${grouped / perEvent >= 10 ? 'met' : 'MISSED'} (${(grouped / perEvent).toFixed(1)}x; ` +
      `with synchronous=NORMAL ${(groupedNormal / perEventNormal).toFixed(1)}x); ` +
      `healthSummary over ${ROWS.toLocaleString('en-US')} rows < 50 ms: ${summary.value < 50 ? 'met' : 'MISSED'} (${fmt(summary.value)} ms p50)`,
  );
} finally {
  await cleanup();
}

async function cleanup() {
  const pg = (await import('pg')).default;
  const pool = new pg.Pool({ connectionString: pgUrl, max: 1 });
  try {
    for (const t of [pgTable, `${pgTable}_rollup`, `${pgTable}_migrations`, `${pgTable}_migrations_lock`]) await pool.query(`DROP TABLE IF EXISTS "${t}"`);
  } catch {
    // no Postgres here: nothing to drop
  } finally {
    await pool.end();
  }
  rmSync(dir, { recursive: true, force: true });
}
