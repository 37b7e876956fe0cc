import { existsSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { chromium, type Browser } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runLoadTest } from '@guard/memory';
import { SCENARIOS } from './chaos-scenarios.js';
import { ADMIN_TOKEN, CHAOS_CLI, run, spawnDemo, type DemoProcess } from './test-support.js';

// End to end against the built demo in full mode, as a user runs it: load test, every chaos scenario, the dashboard.
let demo: DemoProcess;

beforeAll(async () => {
  demo = await spawnDemo({ PARASITE_GUARD_MODE: 'full' });
});
afterAll(async () => {
  expect(await demo?.stop()).toBe(0);
});

describe('demo end to end (full mode)', () => {
  it('passes a 30 s load test at 5 req/s: RSS growth < 50 MB, p95 < 200 ms', { timeout: 90_000 }, async () => {
    const result = await runLoadTest({
      url: `${demo.url}/api/analyses`,
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ text: 'load test' }),
      ratePerSec: 5,
      durationMs: 30_000,
    });
    expect(result.pass, JSON.stringify(result)).toBe(true);
  });

  it('chaos all: every scenario is detected, healed and recovered within its target', { timeout: 300_000 }, async () => {
    const { code, output } = await run([CHAOS_CLI, 'all', '--url', demo.url]);
    expect(output).toContain(`chaos: ${SCENARIOS.length} passed, 0 failed`);
    for (const scenario of SCENARIOS) expect(output).toMatch(new RegExp(`^${scenario}\\s.*PASS`, 'm'));
    expect(code).toBe(0);
    const events = (await (await fetch(`${demo.url}/api/immune/events?limit=200`)).json()) as { events: { type: string }[] };
    expect(events.events.some((e) => e.type === 'SELF_HEALING_ACTION')).toBe(true);
    const metrics = await (await fetch(`${demo.url}/metrics`)).text();
    expect(metrics).toMatch(/parasite_sanitized_total\{component="websocket",outcome="success"\} [1-9]/);
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
