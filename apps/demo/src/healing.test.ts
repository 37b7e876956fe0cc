import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { Registry } from 'prom-client';
import { describe, expect, it } from 'vitest';
import { GuardBus, silentLogger, type GuardMode } from '@guard/core';
import { createHealing } from './healing.js';
import { demoEnv } from './demo-env.js';

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

describe('createHealing', () => {
  it('reads the health URL when the probe runs, not at creation (the port is known only after listen)', { timeout: 20_000 }, async () => {
    let url = '';
    await using healing = await asyncDisposable(
      createHealing({ env: demoEnv({}), bus: new GuardBus(), registry: new Registry(), logger: silentLogger, healthUrl: () => `${url}/livez` }),
    );
    const server = createServer((_req, res) => res.writeHead(200).end('ok'));
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    try {
      url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`; // assigned after createHealing, as server.ts does
      const probe = healing.engine.probes.get('http.status');
      expect(await probe({}, { signal: AbortSignal.timeout(5_000) })).toBe(200);
    } finally {
      server.close();
    }
  });

  it('outside full mode a playbook trigger is a dry run: the ACL offender is not blacklisted; in full mode it is', { timeout: 20_000 }, async () => {
    let mode: GuardMode = 'detect';
    const bus = new GuardBus();
    await using healing = await asyncDisposable(
      createHealing({ env: demoEnv({}), bus, registry: new Registry(), logger: silentLogger, healthUrl: () => 'http://127.0.0.1:9/livez', modeOf: () => mode }),
    );
    const spam = (actor: string) => {
      for (let i = 0; i < 12; i++) healing.messageBus.publish(actor, 'control.shutdown', { i });
    };

    const planned = nextRun(bus, 'message_bus_acl_violation_fix');
    spam('rogue-1');
    expect(await planned).toMatchObject({ dryRun: true });
    expect(healing.messageBus.isBlacklisted('rogue-1')).toBe(false);

    mode = 'full';
    const healed = nextRun(bus, 'message_bus_acl_violation_fix');
    spam('rogue-2');
    expect(await healed).toMatchObject({ dryRun: false, status: 'succeeded' });
    expect(healing.messageBus.isBlacklisted('rogue-2')).toBe(true);
  });

  it('outside full mode the watchdog restart hook refuses to restart the results worker', { timeout: 20_000 }, async () => {
    let mode: GuardMode = 'detect';
    await using healing = await asyncDisposable(
      createHealing({ env: demoEnv({}), bus: new GuardBus(), registry: new Registry(), logger: silentLogger, healthUrl: () => '', modeOf: () => mode }),
    );
    await expect(healing.watchdog.restart('results-worker', 'test')).rejects.toThrow(/mode is detect/);
    expect(healing.worker.restarts).toBe(0);
    mode = 'full';
    await healing.watchdog.restart('results-worker', 'test');
    expect(healing.worker.restarts).toBe(1);
  });
});

describe('createHealing with a bad playbook folder', () => {
  it('rejects and stops the worker processes it started', { timeout: 20_000 }, async () => {
    const before = await childPids();
    await expect(
      createHealing({ env: demoEnv({}), bus: new GuardBus(), registry: new Registry(), logger: silentLogger, healthUrl: () => '', playbooksDir: '/nonexistent/playbooks' }),
    ).rejects.toThrow();
    expect(await childPids()).toEqual(before);
  });
});

async function childPids(): Promise<string[]> {
  const { readFile, readdir } = await import('node:fs/promises');
  const out: string[] = [];
  for (const tid of await readdir(`/proc/${process.pid}/task`)) out.push(...(await readFile(`/proc/${process.pid}/task/${tid}/children`, 'utf8')).trim().split(/\s+/).filter(Boolean));
  return out.sort();
}

async function asyncDisposable<T extends { close(): Promise<void> }>(value: Promise<T>): Promise<T & AsyncDisposable> {
  const v = await value;
  return Object.assign(v, { [Symbol.asyncDispose]: () => v.close() });
}
