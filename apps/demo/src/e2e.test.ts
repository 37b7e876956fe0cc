import { existsSync, statSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { chromium, type Browser } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { SCENARIOS, SCENARIO_CLAIMS, type ScenarioName } from './chaos-scenarios.js';
import { ADMIN_TOKEN, CHAOS_CLI, run, spawnDemo, type DemoProcess } from './test-support.js';

// End to end against the built demo, as a user runs it: `chaos all` in full mode, and two mutations that must make the
// healing claims fail: the guard switched to `detect` at run time, and notify-only playbooks.
const NOTIFY_ONLY_PLAYBOOKS = fileURLToPath(new URL('./mutations/notify-only/', import.meta.url));

let demo: DemoProcess;
let detectDemo: DemoProcess;
let notifyOnlyDemo: DemoProcess;
/** A real webhook receiver for the full demo's playbook notifications. */
let webhook: Server;
const notifications: { playbook?: string; severity?: string; message?: string }[] = [];

beforeAll(async () => {
  webhook = createServer((req, res) => {
    let body = '';
    req.setEncoding('utf8').on('data', (chunk: string) => (body += chunk));
    req.on('end', () => {
      notifications.push(JSON.parse(body) as (typeof notifications)[number]);
      res.writeHead(204).end();
    });
  });
  await new Promise<void>((resolve) => webhook.listen(0, '127.0.0.1', resolve));
  const webhookUrl = `http://127.0.0.1:${(webhook.address() as AddressInfo).port}/hooks/guard`;
  [demo, detectDemo, notifyOnlyDemo] = await Promise.all([
    spawnDemo({ PARASITE_GUARD_MODE: 'full', GUARD_NOTIFY_WEBHOOK_URL: webhookUrl }),
    spawnDemo({ PARASITE_GUARD_MODE: 'full' }),
    spawnDemo({ PARASITE_GUARD_MODE: 'full', GUARD_PLAYBOOKS_DIR: NOTIFY_ONLY_PLAYBOOKS }),
  ]);
}, 60_000);
afterAll(async () => {
  const codes = await Promise.all([demo?.stop(), detectDemo?.stop(), notifyOnlyDemo?.stop()]);
  await new Promise((resolve) => webhook?.close(resolve));
  expect(codes).toEqual([0, 0, 0]);
});

/** The summary table's verdict per scenario (`PASS healed`, `PASS reported at 440 ms`, `FAIL (...)`). */
function verdicts(output: string): Map<ScenarioName, string> {
  const out = new Map<ScenarioName, string>();
  const line = new RegExp(`^(${SCENARIOS.join('|')})\\s+.*?\\s((?:PASS|FAIL)\\b.*)$`, 'gm');
  for (const match of output.matchAll(line)) out.set(match[1] as ScenarioName, match[2]!);
  return out;
}

const healedClaims = SCENARIOS.filter((s) => SCENARIO_CLAIMS[s] === 'healed');

/** The three chaos runs go in parallel (each against its own demo); each test awaits its own. */
let runs: { full: ReturnType<typeof timed>; detect: ReturnType<typeof timed>; notifyOnly: ReturnType<typeof timed> } | undefined;

async function timed(label: string, args: readonly string[], before?: () => Promise<void>) {
  await before?.();
  const t0 = performance.now();
  const result = await run([CHAOS_CLI, ...args]);
  console.log(`--- chaos ${label} (${((performance.now() - t0) / 1000).toFixed(1)} s, exit ${result.code}) ---\n${result.output}`);
  return { ...result, verdicts: verdicts(result.output) };
}

function startRuns() {
  runs ??= {
    full: timed('full', ['all', '--url', demo.url]),
    detect: timed('detect mutation', ['all', '--url', detectDemo.url], async () => {
      const res = await fetch(`${detectDemo.url}/guard/mode`, {
        method: 'POST',
        headers: { 'content-type': 'application/json', authorization: `Bearer ${ADMIN_TOKEN}` },
        body: JSON.stringify({ mode: 'detect' }),
      });
      expect(res.status).toBe(200);
    }),
    notifyOnly: timed('notify-only mutation', ['acl-spam,cpu-spike', '--url', notifyOnlyDemo.url]),
  };
  return runs;
}

describe('demo end to end', () => {
  it('chaos all in full mode: every scenario passes with the verdict it claims', { timeout: 400_000 }, async () => {
    const { code, output, verdicts: got } = await startRuns().full;
    for (const scenario of SCENARIOS) expect(got.get(scenario), `${scenario}\n${output}`).toMatch(new RegExp(`^PASS ${SCENARIO_CLAIMS[scenario]}\\b`));
    expect(output).toContain(`chaos: ${SCENARIOS.length} passed, 0 failed`);
    expect(code).toBe(0);
    // The CPU playbook's run is the remedy, and it ended succeeded (not rolled back).
    expect(output).toMatch(/playbook resource_pressure_cpu \S+ succeeded: kill_runaway killed pid \d+; scale_down removed pids \d+, \d+ \(gone\)/);
    const events = (await (await fetch(`${demo.url}/api/immune/events?limit=500`)).json()) as { events: { type: string; module?: string }[] };
    expect(events.events.some((e) => e.type === 'SELF_HEALING_ACTION')).toBe(true);
    expect(events.events.some((e) => e.module === 'playbooks.notify')).toBe(true);
    // Both playbooks' notifications reached the configured webhook receiver.
    expect(notifications.map((n) => n.playbook)).toEqual(expect.arrayContaining(['message_bus_acl_violation_fix', 'resource_pressure_cpu']));
    const metrics = await (await fetch(`${demo.url}/metrics`)).text();
    expect(metrics).toMatch(/parasite_sanitized_total\{component="websocket",outcome="success"\} [1-9]/);
  });

  it('mutation: with the guard switched to detect, every scenario that claims healing (and the downstream protection) FAILS for want of a remedy', { timeout: 400_000 }, async () => {
    const { code, output, verdicts: got } = await startRuns().detect;
    for (const scenario of healedClaims) {
      const verdict = got.get(scenario);
      expect(verdict, `${scenario}\n${output}`).toMatch(/^FAIL \(/);
      expect(verdict, `${scenario}: fails because nothing healed it, not for want of detection`).toContain('no healing action by the guard');
      expect(verdict).not.toContain('not detected');
    }
    // The downstream breaker follows the guard's mode for `circuit`: in detect it opens (the detection) but refuses
    // nothing, so the outage's traffic waits on the dead downstream and the protection claim fails.
    const outage = got.get('downstream-outage');
    expect(outage, output).toMatch(/^FAIL \(.*no protection by the guard/);
    expect(outage).not.toContain('not detected');
    expect(code).toBe(1);
  });

  it('mutation: with notify-only playbooks, acl-spam and cpu-spike FAIL although their playbooks ran', { timeout: 400_000 }, async () => {
    const { code, output, verdicts: got } = await startRuns().notifyOnly;
    for (const scenario of ['acl-spam', 'cpu-spike'] as const) {
      expect(got.get(scenario), `${scenario}\n${output}`).toMatch(/^FAIL \(.*no healing action by the guard/);
    }
    expect(code).toBe(1);
    // The mutation was live: both playbooks triggered and ran their one step.
    const events = (await (await fetch(`${notifyOnlyDemo.url}/api/immune/events?limit=500`)).json()) as { events: { message: string }[] };
    const notified = events.events.filter((e) => e.message.includes('notify-only mutation')).map((e) => e.message);
    expect(notified.some((m) => m.startsWith('ACL'))).toBe(true);
    expect(notified.some((m) => m.startsWith('CPU'))).toBe(true);
  });

  it('the dashboard shows a chaos detection live in Chromium', { timeout: 60_000 }, async () => {
    expect(existsSync('/usr/bin/chromium'), 'Debian chromium is installed by .ci/run').toBe(true);
    const browser: Browser = await chromium.launch({
      executablePath: '/usr/bin/chromium',
      args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking', '--disable-component-update', '--disable-sync', '--no-first-run'],
    });
    try {
      const page = await browser.newPage({ viewport: { width: 1280, height: 900 } });
      await page.goto(demo.url);
      await page.waitForSelector('#conn.live');
      const injected = await fetch(`${demo.url}/chaos/context-leak`, { method: 'POST', body: '{}', headers: { authorization: `Bearer ${ADMIN_TOKEN}` } });
      expect(injected.status).toBe(202);
      await page.locator('#detections', { hasText: 'context_stack_leak' }).waitFor({ timeout: 20_000 });
      await page.locator('#sanitizations', { hasText: 'context' }).waitFor({ timeout: 20_000 });
      expect(await page.textContent('#mode')).toBe('full');
      const file = join(demo.dataDir, 'dashboard.png');
      await page.screenshot({ path: file, fullPage: true });
      expect(statSync(file).size).toBeGreaterThan(10_000);
      if (process.env.GUARD_SCREENSHOT) await page.screenshot({ path: process.env.GUARD_SCREENSHOT, fullPage: true });
    } finally {
      await browser.close();
    }
  });
});
