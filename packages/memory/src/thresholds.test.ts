import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { GuardBus, isGuardError } from '@guard/core';
import type { Logger } from '@guard/core';
import { Registry } from 'prom-client';
import { afterEach, describe, expect, it } from 'vitest';
import { MemoryGuardrail } from './memory-guardrail.js';
import type { MemoryThresholdsChange } from './memory-thresholds.js';
import { createSelfCheckHandler } from './self-check-handler.js';
import { createManualClock, createSyntheticSampler } from './testing.js';
import type { JsonObject } from './test-support.js';

const TOKEN = 'thresholds-admin-token';
const closers: Array<() => Promise<void>> = [];
afterEach(async () => {
  for (const close of closers.splice(0).reverse()) await close();
});

function rig(rssMb = 600, caches = 0) {
  const clock = createManualClock();
  const bus = new GuardBus();
  const audits: MemoryThresholdsChange[] = [];
  bus.subscribe('memoryThresholdsChanged', (change) => audits.push(change));
  const logLines: Array<{ msg: string | undefined; obj: object }> = [];
  const record = (obj: object, msg?: string) => void logLines.push({ obj, msg });
  const logger: Logger = { debug: record, info: record, warn: record, error: record, fatal: record };
  const guardrail = new MemoryGuardrail({
    autoStart: false,
    registry: new Registry(),
    now: clock,
    bus,
    logger,
    sampler: createSyntheticSampler(clock, { rssMb: () => rssMb }),
    cacheProbes: { sessions: () => caches },
  });
  closers.push(() => guardrail.close());
  return { guardrail, audits, logLines, clock };
}

async function serve(guardrail: MemoryGuardrail, adminToken: string | null = TOKEN) {
  const handler = createSelfCheckHandler(guardrail, adminToken === null ? {} : { adminToken });
  const server = createServer((req, res) => handler(req, res));
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  closers.push(
    () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  );
  return `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
}

async function post(url: string, body: unknown, token: string | null = TOKEN) {
  const headers: Record<string, string> = { 'content-type': 'application/json' };
  if (token !== null) headers.authorization = `Bearer ${token}`;
  const res = await fetch(url, { method: 'POST', headers, body: typeof body === 'string' ? body : JSON.stringify(body) });
  return { status: res.status, type: res.headers.get('content-type'), body: (await res.json()) as JsonObject };
}

describe('MemoryGuardrail.setThresholds', () => {
  it('changes the RSS and cache thresholds of a running guardrail: the verdict follows at once', () => {
    const { guardrail } = rig(600, 1_900);
    expect(guardrail.check().status).toBe('warning'); // 600 of 700 MB, 1900 of 2200 entries: both over 80 %
    const now = guardrail.setThresholds({ rssThresholdMb: 1_000, cacheEntriesThreshold: 5_000 });
    expect(now).toEqual({ rssThresholdMb: 1_000, cacheEntriesThreshold: 5_000, warningRatio: 0.8, leakRateMbPerMin: 5 });
    expect(guardrail.assess().status).toBe('healthy');
    expect(guardrail.check().status).toBe('healthy');
    expect(guardrail.report().thresholds).toMatchObject({ rssMb: 1_000, cacheEntries: 5_000 });
    guardrail.setThresholds({ rssThresholdMb: 500 });
    expect(guardrail.check()).toMatchObject({ status: 'critical', restartReason: 'rss_threshold' });
  });

  it('audits every change: a memoryThresholdsChanged event and a warn log line with before, after and source', () => {
    const { guardrail, audits, logLines, clock } = rig();
    guardrail.setThresholds({ rssThresholdMb: 900, warningRatio: 0.8 }, { source: 'ops-console' });
    expect(audits).toEqual([
      {
        name: 'default',
        previous: { rssThresholdMb: 700, cacheEntriesThreshold: 2_200, warningRatio: 0.8, leakRateMbPerMin: 5 },
        current: { rssThresholdMb: 900, cacheEntriesThreshold: 2_200, warningRatio: 0.8, leakRateMbPerMin: 5 },
        changed: ['rssThresholdMb'],
        source: 'ops-console',
        at: clock(),
      },
    ]);
    expect(logLines.find((l) => l.msg === 'memory guardrail thresholds changed')?.obj).toMatchObject({ source: 'ops-console', changed: ['rssThresholdMb'] });
  });

  it.each([
    [{ rssThresholdMb: 0 }, 'rssThresholdMb'],
    [{ rssThresholdMb: Number.POSITIVE_INFINITY }, 'rssThresholdMb'],
    [{ cacheEntriesThreshold: '5000' }, 'cacheEntriesThreshold'],
    [{ warningRatio: 1.5 }, 'warningRatio'],
    [{ leakRateMbPerMin: -1 }, 'leakRateMbPerMin'],
    [{ rssThresholdMb: 800, rssTreshold: 900 }, 'rssTreshold'],
    [{ __proto__: null, constructor: 1 }, 'constructor'],
    [{}, 'thresholds'],
    [null, 'thresholds'],
  ])('rejects %j with INVALID_THRESHOLD naming %s, and changes nothing', (changes, field) => {
    const { guardrail, audits } = rig();
    const before = guardrail.thresholds();
    let error: unknown;
    try {
      guardrail.setThresholds(changes as never);
    } catch (e) {
      error = e;
    }
    expect(isGuardError(error, 'INVALID_THRESHOLD')).toBe(true);
    expect((error as { details: { field: string } }).details.field).toBe(field);
    expect(guardrail.thresholds()).toEqual(before);
    expect(audits).toHaveLength(0);
  });
});

describe('POST /self-check/thresholds', () => {
  it('changes thresholds with the admin token and answers with the previous and current values (audited as http)', async () => {
    const { guardrail, audits } = rig(650);
    const url = `${await serve(guardrail)}/self-check/thresholds`;
    const res = await post(url, { rssThresholdMb: 2_000, cacheEntriesThreshold: 9_000 });
    expect(res.status).toBe(200);
    expect(res.body).toMatchObject({
      previous: { rssThresholdMb: 700, cacheEntriesThreshold: 2_200 },
      thresholds: { rssThresholdMb: 2_000, cacheEntriesThreshold: 9_000 },
      changed: ['rssThresholdMb', 'cacheEntriesThreshold'],
    });
    expect(audits).toHaveLength(1);
    expect(audits[0]).toMatchObject({ source: 'http', remoteAddress: '127.0.0.1', changed: ['rssThresholdMb', 'cacheEntriesThreshold'] });
    const check = await fetch(url.replace('/thresholds', ''));
    expect(check.status).toBe(200); // 650 MB was "warning" (206) under 700 MB
  });

  it('answers 400 problem+json naming the field for a bad value or an unknown field, and changes nothing', async () => {
    const { guardrail, audits } = rig();
    const url = `${await serve(guardrail)}/self-check/thresholds`;
    for (const [body, field] of [
      [{ rssThresholdMb: -5 }, 'rssThresholdMb'],
      [{ cacheEntriesThreshold: 'lots' }, 'cacheEntriesThreshold'],
      [{ rssThresholdMB: 900 }, 'rssThresholdMB'],
      [[], 'thresholds'],
    ] as const) {
      const res = await post(url, body);
      expect(res.status).toBe(400);
      expect(res.type).toMatch(/^application\/problem\+json/);
      expect(res.body).toMatchObject({ field, code: 'INVALID_THRESHOLD' });
    }
    const malformed = await post(url, '{"rssThresholdMb": ');
    expect(malformed.status).toBe(400);
    expect(guardrail.thresholds().rssThresholdMb).toBe(700);
    expect(audits).toHaveLength(0);
  });

  it('answers 401 without a token and 403 with a wrong one or when no admin token is configured', async () => {
    const { guardrail, audits } = rig();
    const url = `${await serve(guardrail)}/self-check/thresholds`;
    expect((await post(url, { rssThresholdMb: 900 }, null)).status).toBe(401);
    expect((await post(url, { rssThresholdMb: 900 }, 'wrong')).status).toBe(403);
    const closedUrl = `${await serve(guardrail, null)}/self-check/thresholds`;
    expect((await post(closedUrl, { rssThresholdMb: 900 })).status).toBe(403);
    expect(guardrail.thresholds().rssThresholdMb).toBe(700);
    expect(audits).toHaveLength(0);
  });
});
