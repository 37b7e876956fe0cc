import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, expect, it } from 'vitest';
import { waitUntil } from '@guard/core';
import { ADMIN_TOKEN, spawnDemo } from './test-support.js';

// The dashboard's detection history is read back from the immune log, so it survives a restart of the service.
const dataDir = mkdtempSync(join(tmpdir(), 'guard-demo-history-'));
afterAll(() => rmSync(dataDir, { recursive: true, force: true }));

interface State {
  detections: { id: string; pattern: string; state: string; origin: string }[];
}
const state = async (url: string) => (await (await fetch(`${url}/dashboard/state`)).json()) as State;
const poll = (predicate: () => Promise<boolean>, what: string) => waitUntil(predicate, { timeoutMs: 40_000, intervalMs: 200, what });

it('shows the detections of the previous run, from the immune log, as cleared history', { timeout: 60_000 }, async () => {
  const first = await spawnDemo({ PARASITE_GUARD_MODE: 'full', GUARD_DATA_DIR: dataDir });
  let detectionId: string | undefined;
  try {
    const res = await fetch(`${first.url}/chaos/ws-no-ack`, { method: 'POST', body: '{}', headers: { authorization: `Bearer ${ADMIN_TOKEN}` } });
    expect(res.status).toBe(202);
    await poll(async () => (detectionId = (await state(first.url)).detections.find((d) => d.pattern === 'no_ack')?.id) !== undefined, 'the no_ack detection');
    // Recorded in the immune log (the bridge publishes each detection) before the restart.
    const events = async () => ((await (await fetch(`${first.url}/api/immune/events?limit=500`)).json()) as { events: { meta: { detection_id?: string } }[] }).events;
    await poll(async () => (await events()).some((e) => e.meta.detection_id === detectionId), 'the detection in the immune log');
  } finally {
    expect(await first.stop()).toBe(0);
  }
  const second = await spawnDemo({ GUARD_DATA_DIR: dataDir });
  try {
    let found: State['detections'][number] | undefined;
    await poll(async () => (found = (await state(second.url)).detections.find((d) => d.id === detectionId)) !== undefined, 'the detection as history');
    expect(found).toMatchObject({ pattern: 'no_ack', state: 'cleared', origin: 'store' });
  } finally {
    expect(await second.stop()).toBe(0);
  }
});
