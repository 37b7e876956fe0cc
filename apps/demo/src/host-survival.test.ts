import { once } from 'node:events';
import { Agent } from 'node:http';
import { performance } from 'node:perf_hooks';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { sleep, waitUntil } from '@guard/core';
import { pgTestDatabase, pgTestServerUrl, type PgTestDatabase } from '@guard/core/testing';
import { WebSocket } from 'ws';
import { RAW_REQUESTS, RAW_UNFINISHED, generateHostileCases, sendAll, sendCase, sendRaw, type HostileCase, type Outcome } from './survival/hostile-http.js';
import { PartitionProxy } from './survival/partition-proxy.js';
import { encodeFrame, openRawWebSocket } from './survival/raw-websocket.js';
import { ADMIN_TOKEN, spawnDemo, type DemoProcess } from './test-support.js';

// The host-survival suite: a real demo process (full mode, admin token, Postgres through a loopback proxy) attacked
// the way issue 11 lists; it must stay up, answer every request within 10 s with no 5xx but deliberate 503s, keep
// every live client's listener, lose no acknowledged immune event, and recover from a partition with no restart.

const PG_URL = pgTestServerUrl();
const WRITE_TOKEN = 'survival-write-token';
// A hang is no answer within 10 s. The slowest legitimate answer is a write queued behind a batch whose query hangs
// in the partition: that query's timeout (2 s in the demo) + its own connect (1.5 s) + query (2 s) = 5.5 s, more
// when the suites beside this one starve the 2 cores; a real hang never answers. The slowest answer is reported.
const HANG_MS = 10_000;
const SOCKETS = 2_000;

/** Everything the suite counts; printed at the end and copied to the demo README. */
const figures = { cases: 0, fiveXx: 0, shed503: 0, probe503: 0, hangs: 0, slowestMs: 0, unexpectedResets: 0, acked: 0, lost: 0, wsFrames: 0, sockets: 0, recoveryMs: 0, exits: 0 };
const problems: string[] = [];

let admin: pg.Client;
let database: PgTestDatabase;
let proxy: PartitionProxy;
let demo: DemoProcess;
let port: number;

/** Counts one outcome against the bounds: 5xx other than 503 + Retry-After, hangs, and resets the case did not allow. */
function judge(label: string, outcome: Outcome, mayReset = false): void {
  figures.cases++;
  figures.slowestMs = Math.max(figures.slowestMs, Math.round(outcome.ms));
  if (outcome.error === 'HANG' || outcome.ms > HANG_MS) {
    figures.hangs++;
    problems.push(`${label}: ${outcome.error ?? outcome.status} after ${Math.round(outcome.ms)} ms`);
  } else if (outcome.error !== undefined && !mayReset) {
    figures.unexpectedResets++;
    problems.push(`${label}: ${outcome.error}`);
  }
  if (outcome.status !== undefined && outcome.status >= 500) {
    if (outcome.status === 503 && outcome.retryAfter) figures.shed503++;
    // /readyz and /self-check answer 503 by contract when the memory guardrail's status is critical ("take me out").
    else if (outcome.status === 503 && /^(HEAD|GET) \/(readyz|self-check)(\?|\s|$)/.test(label)) figures.probe503++;
    else {
      figures.fiveXx++;
      problems.push(`${label}: ${outcome.status}`);
    }
  }
}

const describeCase = (c: HostileCase) => `${c.method} ${c.path.slice(0, 80)} ${c.headers['content-type'] ?? ''} ${c.body ? `${c.body.length}B ${c.body.subarray(0, 40).toString('latin1')}` : ''}`;

/** Resolves once the dashboard's state satisfies `holds` (polled, up to 15 s). */
async function dashboardShows(holds: (state: { detections: { component: string }[] }) => boolean): Promise<void> {
  await expect.poll(async () => holds(await (await fetch(`${demo.url}/dashboard/state`)).json()), { timeout: 15_000, interval: 250 }).toBe(true);
}

async function alive(): Promise<void> {
  expect(demo.child.exitCode, demo.output().slice(-2_000)).toBeNull();
  const outcome = await sendCase(port, new Agent(), { method: 'GET', path: '/livez', headers: {} }, HANG_MS);
  expect(outcome.status).toBe(200);
}

beforeAll(async () => {
  database = await pgTestDatabase('guard_survival');
  admin = new pg.Client({ connectionString: PG_URL });
  await admin.connect();
  const target = new URL(PG_URL);
  proxy = await PartitionProxy.start(Number(target.port || 5432), target.hostname);
  const url = new URL(database.url);
  url.host = `127.0.0.1:${proxy.port}`;
  demo = await spawnDemo({ DATABASE_URL: url.toString(), PARASITE_GUARD_MODE: 'full', GUARD_ADMIN_TOKEN: ADMIN_TOKEN, GUARD_IMMUNE_WRITE_TOKEN: WRITE_TOKEN, LOG_LEVEL: 'error' });
  demo.child.once('exit', () => figures.exits++);
  port = Number(new URL(demo.url).port);
}, 60_000);

afterAll(async () => {
  console.log(
    `host survival: cases ${figures.cases}, 5xx ${figures.fiveXx} (deliberate: 503 + Retry-After ${figures.shed503}, critical health probes ${figures.probe503}), hangs > ${HANG_MS / 1_000} s ${figures.hangs} (slowest ${figures.slowestMs} ms), ` +
      `unexpected resets ${figures.unexpectedResets}, acknowledged immune events ${figures.acked}, lost ${figures.lost}, ` +
      `hostile frames ${figures.wsFrames}, sockets ${figures.sockets}, recovery after the partition ${figures.recoveryMs} ms, exits ${figures.exits}` +
      (problems.length > 0 ? `\n  ${problems.slice(0, 30).join('\n  ')}` : ''),
  );
  proxy?.restore();
  await demo?.stop();
  await proxy?.close();
  await admin?.end();
  await database?.drop();
}, 60_000);

describe('host survival (real demo process, full mode, Postgres through a proxy)', { sequential: true }, () => {
  it('closes only the socket that sends a hostile frame, with the right code, and answers odd JSON with an error', async () => {
    const bystander = new WebSocket(`ws://127.0.0.1:${port}/ws`);
    bystander.on('error', () => {});
    const replies: Record<string, unknown>[] = [];
    bystander.on('message', (data) => {
      const message = JSON.parse(String(data)) as Record<string, unknown>;
      if (typeof message.id === 'string') bystander.send(JSON.stringify({ type: 'ack', id: message.id }));
      replies.push(message);
    });
    await once(bystander, 'open');
    const close = (code: number) => {
      const payload = Buffer.alloc(2);
      payload.writeUInt16BE(code);
      return payload;
    };
    const frames: [string, Buffer, number][] = [
      ['frame over maxPayload', encodeFrame({ opcode: 0x1, payload: Buffer.alloc(64 * 1024 + 1, 0x61) }), 1009],
      ['forged 64-bit length', encodeFrame({ opcode: 0x2, declaredLength: 2n ** 62n }), 1009],
      ['invalid UTF-8 text', encodeFrame({ opcode: 0x1, payload: Buffer.from([0x7b, 0xc3, 0x28, 0x7d]) }), 1007],
      ['unmasked frame', encodeFrame({ opcode: 0x1, payload: Buffer.from('{}'), masked: false }), 1002],
      ['unknown opcode 0x3', encodeFrame({ opcode: 0x3, payload: Buffer.from('x') }), 1002],
      ['unknown opcode 0xB', encodeFrame({ opcode: 0xb }), 1002],
      ['close code 999', encodeFrame({ opcode: 0x8, payload: close(999) }), 1002],
      ['close code 1005 on the wire', encodeFrame({ opcode: 0x8, payload: close(1005) }), 1002],
      ['close reason not UTF-8', encodeFrame({ opcode: 0x8, payload: Buffer.concat([close(1000), Buffer.from([0xff])]) }), 1007],
      ['RSV1 without an extension', encodeFrame({ opcode: 0x1, payload: Buffer.from('{}'), rsv: 4 }), 1002],
      ['fragmented ping', encodeFrame({ opcode: 0x9, fin: false }), 1002],
      ['ping over 125 bytes', encodeFrame({ opcode: 0x9, payload: Buffer.alloc(126) }), 1002],
      ['continuation with nothing to continue', encodeFrame({ opcode: 0x0, payload: Buffer.from('x') }), 1002],
    ];
    for (const [label, bytes, expected] of frames) {
      const raw = await openRawWebSocket(port);
      raw.send(bytes);
      expect(await raw.closeCode, label).toBe(expected);
      figures.wsFrames++;
    }
    // The server splits no hairs over odd JSON: each gets an error message and the socket stays.
    const odd = ['null', '42', 'true', '"analyze"', '[]', '[{"type":"analyze"}]', '{}', '{"type":"analyze"}', '{"type":"analyze","text":42}', '{"type":"analyze","text":"\\ud800"}', '{"type":{"$gt":1}}', '{', ''];
    const probe = new WebSocket(`ws://127.0.0.1:${port}/ws`, { maxPayload: 1 << 20 });
    probe.on('error', () => {});
    const answers: Record<string, unknown>[] = [];
    probe.on('message', (data) => {
      const message = JSON.parse(String(data)) as Record<string, unknown>;
      if (typeof message.id === 'string') probe.send(JSON.stringify({ type: 'ack', id: message.id }));
      if (message.type === 'error') answers.push(message);
    });
    await once(probe, 'open');
    for (const text of odd) probe.send(text);
    probe.send(Buffer.from([1, 2, 3]), { binary: true });
    await expect.poll(() => answers.length, { timeout: HANG_MS }).toBe(odd.length + 1);
    figures.wsFrames += odd.length + 1;
    expect(probe.readyState).toBe(WebSocket.OPEN);
    expect(bystander.readyState).toBe(WebSocket.OPEN);
    probe.close();
    // One socket firing 3,000 analyze messages at once: it spends its burst, is closed with 1008, and the loop stays responsive.
    const flood = new WebSocket(`ws://127.0.0.1:${port}/ws`);
    flood.on('error', () => {});
    const floodClosed = new Promise<number>((resolve) => flood.once('close', (code) => resolve(code)));
    await once(flood, 'open');
    for (let i = 0; i < 3_000 && flood.readyState === WebSocket.OPEN; i++) flood.send(JSON.stringify({ type: 'analyze', text: `flood ${i}` }));
    expect(await floodClosed).toBe(1008);
    await alive(); // answers within HANG_MS, or the probe counts as a hang
    expect(bystander.readyState).toBe(WebSocket.OPEN);
    bystander.close();
  });

  it('caps dashboard streams at 100: the rest get 503 with Retry-After, and the held ones keep streaming', async () => {
    const abort = new AbortController();
    try {
      const streams = await Promise.all(Array.from({ length: 110 }, () => fetch(`${demo.url}/dashboard/stream`, { signal: abort.signal })));
      const refused = streams.filter((res) => res.status === 503);
      expect(streams.filter((res) => res.status === 200)).toHaveLength(100);
      expect(refused).toHaveLength(10);
      expect(refused.every((res) => res.headers.get('retry-after') === '5')).toBe(true);
      figures.cases += streams.length;
      figures.shed503 += refused.length;
      const reader = streams.find((res) => res.status === 200)!.body!.getReader();
      expect(new TextDecoder().decode((await reader.read()).value)).toContain('event: state');
    } finally {
      abort.abort();
    }
    await alive();
  });

  it('answers thousands of generated hostile requests across every endpoint with 4xx (or a deliberate 503), none hanging', { timeout: 120_000 }, async () => {
    const cases = generateHostileCases(3_000, 11);
    // Targeted ones with the admin token: invalid bodies and unknown scenarios only (a valid one would inject chaos).
    const bearer = { authorization: `Bearer ${ADMIN_TOKEN}`, 'content-type': 'application/json' };
    for (const body of ['{', 'null', '[]', '{"mode":"loud"}', '{"mode":"full","component":[]}', '{"mode":"\\ud800"}', `{"mode":"${'f'.repeat(5_000)}"}`]) {
      cases.push({ method: 'POST', path: '/guard/mode', headers: bearer, body: Buffer.from(body) });
    }
    for (const path of ['/chaos/not-a-scenario', '/chaos/%00', `/chaos/${'c'.repeat(2_000)}`, '/chaos/', '/chaos/ws-no-ack/extra']) {
      cases.push({ method: 'POST', path, headers: bearer, body: Buffer.from('{}') }, { method: 'GET', path, headers: bearer });
    }
    const started = performance.now();
    const outcomes = await sendAll(port, cases, 24, 10_000);
    outcomes.forEach((outcome, i) => judge(describeCase(cases[i]!), outcome, cases[i]!.mayReset));
    const health = (await (await fetch(`${demo.url}/self-check`)).json()) as { status?: string; reasons?: string[] };
    console.log(`hostile http: ${cases.length} requests in ${Math.round(performance.now() - started)} ms; self-check ${health.status} ${JSON.stringify(health.reasons ?? [])}`);
    expect(figures.fiveXx, problems.join('\n')).toBe(0);
    expect(figures.hangs, problems.join('\n')).toBe(0);
    expect(figures.unexpectedResets, problems.join('\n')).toBe(0);
    // Malformed HTTP no client library writes: a 4xx or a closed connection, never a 5xx, never a hang.
    const [raw, unfinished] = await Promise.all([
      Promise.all(RAW_REQUESTS.map((text) => sendRaw(port, text, HANG_MS))),
      Promise.all(RAW_UNFINISHED.map((text) => sendRaw(port, text, 1_000))),
    ]);
    expect(unfinished.map((o) => o.error)).toEqual(RAW_UNFINISHED.map(() => 'NO_ANSWER')); // the server waits for the rest, as it should
    raw.forEach((outcome, i) => judge(`raw ${JSON.stringify(RAW_REQUESTS[i]!.slice(0, 60))}`, outcome, true));
    expect(raw.filter((o) => o.status !== undefined).every((o) => o.status! >= 400 && o.status! < 500), JSON.stringify(raw)).toBe(true);
    expect(figures.fiveXx + figures.hangs, problems.join('\n')).toBe(0);
    // No hostile request could write to the immune log: writes need GUARD_IMMUNE_WRITE_TOKEN.
    expect(outcomes.filter((o, i) => o.status === 201 && cases[i]!.path.startsWith('/api/immune'))).toHaveLength(0);
    const unsigned = await fetch(`${demo.url}/api/immune/event`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: '{"severity":"CRITICAL","type":"ERROR_SPIKE","message":"forged"}' });
    expect(unsigned.status).toBe(401);
    await alive();
  });

  it('survives pg_terminate_backend mid-load and a 10 s partition, loses no acknowledged event, and recovers with no restart', { timeout: 120_000 }, async () => {
    const agent = new Agent({ keepAlive: true, maxSockets: 8 });
    const shedBefore = figures.shed503;
    const acked: string[] = [];
    let stop = false;
    let sequence = 0;
    const json = { 'content-type': 'application/json' };
    const worker = async () => {
      while (!stop) {
        const n = ++sequence;
        const event = Buffer.from(JSON.stringify({ severity: 'INFO', type: 'SELF_HEALING_ACTION', module: 'survival', message: `load ${n}` }));
        const publish = await sendCase(port, agent, { method: 'POST', path: '/api/immune/event', headers: { ...json, authorization: `Bearer ${WRITE_TOKEN}` }, body: event }, 10_000);
        judge(`POST /api/immune/event #${n}`, publish);
        if (publish.status === 201) acked.push(`load ${n}`);
        judge('POST /api/analyses', await sendCase(port, agent, { method: 'POST', path: '/api/analyses', headers: json, body: Buffer.from(`{"text":"load ${n}"}`) }, 10_000));
        judge('GET /api/analyses', await sendCase(port, agent, { method: 'GET', path: '/api/analyses?limit=5', headers: {} }, 10_000));
        judge('GET /api/immune/health', await sendCase(port, agent, { method: 'GET', path: '/api/immune/health', headers: {} }, 10_000));
      }
    };
    const workers = Array.from({ length: 4 }, worker);
    // The pauses are the fault timeline (load, kill, load, kill, partition for 10 s), not waits for a condition.
    const pause = (ms: number) => sleep(ms);
    const terminate = async () =>
      (await admin.query(`select pg_terminate_backend(pid) from pg_stat_activity where datname = $1 and pid <> pg_backend_pid()`, [database.name])).rowCount ?? 0;

    await pause(2_000);
    const killedFirst = await terminate();
    await pause(2_000);
    const killedSecond = await terminate();
    await pause(1_000);
    proxy.partition();
    await pause(10_000);
    proxy.restore();
    const restoredAt = performance.now();
    // Recovery: the next writes succeed again, with no restart (the same process).
    let recovered = false;
    await waitUntil(
      async () => {
        const created = await sendCase(port, agent, { method: 'POST', path: '/api/analyses', headers: json, body: Buffer.from('{"text":"after the partition"}') }, 10_000);
        judge('POST /api/analyses (recovery)', created);
        return (recovered = created.status === 201);
      },
      { timeoutMs: 20_000, intervalMs: 200, what: 'writes to succeed after the partition' },
    ).catch(() => {}); // `recovered` stays false and is asserted below, after the figures are printed
    figures.recoveryMs = Math.round(performance.now() - restoredAt);
    await pause(1_000);
    stop = true;
    await Promise.all(workers);
    agent.destroy();
    console.log(`postgres faults: terminated ${killedFirst} + ${killedSecond} backends, partition 10 s, recovered ${figures.recoveryMs} ms after restore`);
    expect(killedFirst + killedSecond).toBeGreaterThan(0);
    // The partition was felt (requests answered 503 + Retry-After while it lasted), and then it was over.
    expect(figures.shed503 - shedBefore).toBeGreaterThan(0);
    // ... and each of those 503s was logged with its cause.
    expect(demo.output().split('\n').some((line) => line.includes('database unavailable') && line.includes('"err"'))).toBe(true);
    expect(recovered).toBe(true);

    // Every acknowledged event is in the database (read straight from Postgres, not through the demo).
    figures.acked = acked.length;
    const direct = new pg.Client({ connectionString: database.url });
    await direct.connect();
    const stored = await direct.query<{ message: string }>('select message from immune_events where module = $1', ['survival']).finally(() => direct.end());
    const present = new Set(stored.rows.map((r) => r.message));
    figures.lost = acked.filter((m) => !present.has(m)).length;
    expect(acked.length).toBeGreaterThan(10);
    expect(figures.lost).toBe(0);
    expect(figures.fiveXx, problems.join('\n')).toBe(0);
    expect(figures.hangs, problems.join('\n')).toBe(0);
    expect(figures.unexpectedResets, problems.join('\n')).toBe(0);
    await alive();
  });

  it(`keeps ${SOCKETS} live sockets and every one's listener: each still gets the broadcast`, { timeout: 120_000 }, async () => {
    const sockets: WebSocket[] = [];
    // Every socket records the finished analyses it is told about (the broadcast may arrive before our 201 does).
    const seen: Set<string>[] = [];
    const openOne = (index: number) =>
      new Promise<void>((resolve, reject) => {
        const ws = new WebSocket(`ws://127.0.0.1:${port}/ws`);
        seen[index] = new Set();
        ws.on('error', reject);
        ws.on('message', (data) => {
          const message = JSON.parse(String(data)) as { id?: string; type: string; event?: { id?: string } };
          if (message.id) ws.send(JSON.stringify({ type: 'ack', id: message.id }));
          if (message.type === 'welcome') resolve();
          if (message.type === 'analysis_finished' && message.event?.id) seen[index]!.add(message.event.id);
        });
        sockets.push(ws);
      });
    for (let i = 0; i < SOCKETS; i += 200) await Promise.all(Array.from({ length: 200 }, (_, k) => openOne(i + k)));
    figures.sockets = sockets.length;
    // 2,000 listeners on one event are over C2's leak threshold (1,000): let the chain detect and the sanitizer act.
    await dashboardShows((state) => state.detections.some((d) => d.component === 'eventbus'));
    // A window for a negative check, not a wait for an event: whatever the sanitizer would do to these live listeners
    // happens within its delay (500 ms) and the next scan; a warning-level leak of live listeners may bring no
    // sanitization at all, so there is nothing to await. Every socket must still get the broadcast after it.
    await sleep(2_000);
    const created = await fetch(`${demo.url}/api/analyses`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: '{"text":"to everyone"}' });
    expect(created.status).toBe(201);
    const target = ((await created.json()) as { id: string }).id;
    await expect.poll(() => seen.filter((ids) => ids.has(target)).length, { timeout: 20_000, interval: 250 }).toBe(SOCKETS);
    expect(sockets.every((ws) => ws.readyState === WebSocket.OPEN)).toBe(true);
    const metrics = await (await fetch(`${demo.url}/metrics`)).text();
    const listeners = Number(/^parasite_eventbus_subscriptions\{[^}]*analysis\.finished[^}]*\} (\d+)/m.exec(metrics)?.[1]);
    expect(listeners).toBeGreaterThanOrEqual(SOCKETS);
    for (const ws of sockets) ws.terminate();
    await alive();
    expect(figures.exits).toBe(0);
  });
});
