import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, expect, it } from 'vitest';
import { ADMIN_TOKEN, spawnDemo } from './test-support.js';

// The dashboard's detection history is read back from the immune log, so it survives a restart of the service.
const dataDir = mkdtempSync(join(tmpdir(), 'guard-demo-history-'));
afterAll(() => rmSync(dataDir, { recursive: true, force: true }));

interface State {
  detections: { id: string; pattern: string; state: string; origin: string }[];
}
const state = async (url: string) => (await (await fetch(`${url}/dashboard/state`)).json()) as State;

it('shows the detections of the previous run, from the immune log, as cleared history', { timeout: 60_000 }, async () => {
  const first = await spawnDemo({ PARASITE_GUARD_MODE: 'full', GUARD_DATA_DIR: dataDir });
  let detectionId: string | undefined;
  try {
    const res = await fetch(`${first.url}/chaos/ws-no-ack`, { method: 'POST', body: '{}', headers: { authorization: `Bearer ${ADMIN_TOKEN}` } });
    expect(res.status).toBe(202);
    while (detectionId === undefined) {
      detectionId = (await state(first.url)).detections.find((d) => d.pattern === 'no_ack')?.id;
      if (detectionId === undefined) await new Promise((resolve) => setTimeout(resolve, 200));
    }
    // Recorded in the immune log (the bridge publishes each detection) before the restart.
    while (!((await (await fetch(`${first.url}/api/immune/events?limit=500`)).json()) as { events: { meta: { detection_id?: string } }[] }).events.some((e) => e.meta.detection_id === detectionId)) {
      await new Promise((resolve) => setTimeout(resolve, 200));
    }
  } finally {
    expect(await first.stop()).toBe(0);
  }
  const second = await spawnDemo({ GUARD_DATA_DIR: dataDir });
  try {
    let found: State['detections'][number] | undefined;
    while (!found) {
      found = (await state(second.url)).detections.find((d) => d.id === detectionId);
      if (!found) await new Promise((resolve) => setTimeout(resolve, 200));
    }
    expect(found).toMatchObject({ pattern: 'no_ack', state: 'cleared', origin: 'store' });
  } finally {
    expect(await second.stop()).toBe(0);
  }
});
