import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { GuardBus } from '@guard/core';
import { startDemo, type Demo } from './server.js';

/** The next finished run of `playbook` (the engine's own notice), bounded by the test timeout. */
function nextRun(bus: GuardBus, playbook: string): Promise<{ status: string; dryRun: boolean }> {
  return new Promise((resolve) => {
    const off = bus.subscribe('playbookRun', (run) => {
      // Skipped notices (a second alarm for the same actor while its run is going) are not the run itself.
      if (run.playbook !== playbook || run.status === 'started' || run.status === 'skipped') return;
      off();
      resolve(run);
    });
  });
}

let demo: Demo;
let dataDir: string;

beforeAll(async () => {
  dataDir = mkdtempSync(join(tmpdir(), 'guard-demo-healing-'));
  demo = await startDemo({ port: 0, host: '127.0.0.1', dataDir, env: { ...process.env, PARASITE_GUARD_MODE: 'detect' } });
}, 30_000);
afterAll(async () => {
  await demo?.close();
  rmSync(dataDir, { recursive: true, force: true });
});

describe('the demo healing (on @guard/node)', () => {
  it("the CPU playbook's health probe reaches the demo's own /livez (the port is known only after listen)", { timeout: 20_000 }, async () => {
    const probe = demo.healing.engine.probes.get('http.status');
    expect(await probe({}, { signal: AbortSignal.timeout(5_000) })).toBe(200);
  });

  it('outside full mode a playbook trigger is a dry run: the ACL offender is not blacklisted; in full mode it is', { timeout: 20_000 }, async () => {
    const { bus, chain } = demo.guard;
    const spam = (actor: string) => {
      for (let i = 0; i < 12; i++) demo.healing.messageBus.publish(actor, 'control.shutdown', { i });
    };
    const planned = nextRun(bus, 'message_bus_acl_violation_fix');
    spam('rogue-1');
    expect(await planned).toMatchObject({ dryRun: true });
    expect(demo.healing.messageBus.isBlacklisted('rogue-1')).toBe(false);

    chain.setMode('full', 'playbooks');
    try {
      const healed = nextRun(bus, 'message_bus_acl_violation_fix');
      spam('rogue-2');
      expect(await healed).toMatchObject({ dryRun: false, status: 'succeeded' });
      expect(demo.healing.messageBus.isBlacklisted('rogue-2')).toBe(true);
    } finally {
      chain.setMode('detect', 'playbooks');
    }
  });

  it('outside full mode the watchdog restart hook refuses to restart the results worker', { timeout: 20_000 }, async () => {
    const { chain } = demo.guard;
    const before = demo.healing.worker.restarts;
    await expect(demo.healing.watchdog.restart('results-worker', 'test')).rejects.toThrow(/mode is detect/);
    expect(demo.healing.worker.restarts).toBe(before);
    chain.setMode('full', 'heartbeat');
    try {
      await demo.healing.watchdog.restart('results-worker', 'test');
      expect(demo.healing.worker.restarts).toBe(before + 1);
    } finally {
      chain.setMode('detect', 'heartbeat');
    }
  });
});

describe('startDemo with a bad playbook folder', () => {
  it('rejects and stops the worker processes it started', { timeout: 30_000 }, async () => {
    const before = await childPids();
    const badDir = mkdtempSync(join(tmpdir(), 'guard-demo-bad-'));
    try {
      await expect(startDemo({ port: 0, host: '127.0.0.1', dataDir: badDir, env: { ...process.env, GUARD_PLAYBOOKS_DIR: '/nonexistent/playbooks' } })).rejects.toThrow();
    } finally {
      rmSync(badDir, { recursive: true, force: true });
    }
    expect(await childPids()).toEqual(before);
  });
});

async function childPids(): Promise<string[]> {
  const { readFile, readdir } = await import('node:fs/promises');
  const out: string[] = [];
  for (const tid of await readdir(`/proc/${process.pid}/task`)) out.push(...(await readFile(`/proc/${process.pid}/task/${tid}/children`, 'utf8')).trim().split(/\s+/).filter(Boolean));
  return out.sort();
}
