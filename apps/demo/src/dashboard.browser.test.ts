/// <reference lib="dom" />
import { existsSync, mkdirSync, mkdtempSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { chromium, type Browser, type Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ADMIN_TOKEN, spawnDemo, type DemoProcess } from './test-support.js';

// The dashboard as an on-call engineer uses it: a real demo process, Debian's Chromium, chaos scenarios injected
// through the lab endpoints, and each panel checked for its scenario's effect. Screenshots are always taken; they
// replace the ones in apps/demo/docs (referenced from the demo README) only with GUARD_UPDATE_SCREENSHOTS=1, so a test
// run leaves the tree clean.
const UPDATE_DOCS = process.env.GUARD_UPDATE_SCREENSHOTS === '1';
const DOCS = UPDATE_DOCS ? fileURLToPath(new URL('../docs/', import.meta.url)) : `${mkdtempSync(join(tmpdir(), 'guard-dashboard-'))}/`;
const DATE_TIME = /^\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2}$/;

let demo: DemoProcess;
let browser: Browser;
let page: Page;
const traffic = new AbortController();
const statuses: number[] = [];

async function inject(scenario: string): Promise<void> {
  const res = await fetch(`${demo.url}/chaos/${scenario}`, { method: 'POST', body: '{}', headers: { authorization: `Bearer ${ADMIN_TOKEN}` } });
  expect(res.status, scenario).toBe(202);
  await res.body?.cancel();
}

/** Steady API traffic (about 10 req/s), so the HTTP panel has a rate, a p95 and, during the outage, errors. */
async function sendTraffic(): Promise<void> {
  while (!traffic.signal.aborted) {
    const res = await fetch(`${demo.url}/api/analyses`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ text: 'browser test' }),
      signal: traffic.signal,
    }).catch(() => undefined);
    if (res) {
      statuses.push(res.status);
      await res.body?.cancel();
    }
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
}

const text = (selector: string) => page.locator(selector).innerText();

beforeAll(async () => {
  expect(existsSync('/usr/bin/chromium'), 'Debian chromium is installed by .ci/run').toBe(true);
  mkdirSync(DOCS, { recursive: true });
  demo = await spawnDemo({ PARASITE_GUARD_MODE: 'full' });
  browser = await chromium.launch({
    executablePath: '/usr/bin/chromium',
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking', '--disable-component-update', '--disable-sync', '--no-first-run'],
  });
  page = await browser.newPage({ viewport: { width: 1440, height: 1000 } });
}, 60_000);

afterAll(async () => {
  traffic.abort();
  await browser?.close();
  if (!UPDATE_DOCS) rmSync(DOCS, { recursive: true, force: true });
  expect(await demo?.stop()).toBe(0);
});

describe('the dashboard in Chromium', () => {
  it('shows every chaos scenario on its panel', { timeout: 120_000 }, async () => {
    const favicon: number[] = [];
    page.on('response', (res) => {
      if (res.url().includes('favicon')) favicon.push(res.status());
    });
    await page.goto(demo.url);
    await page.waitForSelector('#conn.live');
    void sendTraffic();
    // Time axes with clock times and units, once a few samples are in.
    await page.waitForFunction(() => Array.from(document.querySelectorAll('#chart-memory text.tick')).some((t) => /^\d{2}:\d{2}:\d{2}$/.test(t.textContent ?? '')), undefined, { timeout: 20_000 });
    expect(await page.locator('#chart-memory text.unit').textContent()).toBe('MB');
    expect(await page.locator('#chart-memory text.tick').allTextContents()).toContainEqual(expect.stringMatching(/^\d{2}:\d{2}:\d{2}$/));

    for (const scenario of ['ws-no-ack', 'memory-leak', 'heartbeat-pause', 'acl-spam', 'downstream-outage', 'cpu-spike']) await inject(scenario);

    // Detections: a live row with a dated time, active then cleared after the healing, source frames on click.
    const row = page.locator('#detections tr', { hasText: 'no_ack' }).first();
    await row.waitFor({ timeout: 20_000 });
    expect(await row.locator('td').first().innerText()).toMatch(DATE_TIME);
    await page.waitForFunction(() => Array.from(document.querySelectorAll('#detections tr')).some((tr) => tr.textContent?.includes('no_ack') && tr.textContent.includes('cleared')), undefined, { timeout: 30_000 });
    // Rows are updated in place: the same element survives two stream updates.
    await page.evaluate(() => ((window as unknown as { kept: Element | null }).kept = document.querySelector('#detections tr[data-key]')));
    await page.waitForTimeout(2_500);
    expect(await page.evaluate(() => (window as unknown as { kept: Element }).kept.isConnected)).toBe(true);
    await row.click();
    const detail = page.locator('#detections tr.detail').first();
    await detail.waitFor();
    expect(await detail.innerText()).toMatch(/no_ack|ack/i);
    // The filter hides other components.
    await page.selectOption('#filter-component', 'websocket');
    expect(await page.locator('#detections tr[data-key]:not(.detail)').allInnerTexts()).not.toContainEqual(expect.not.stringContaining('websocket'));
    await page.selectOption('#filter-component', '');

    // Memory: the leak drives the cache to its threshold and the status off healthy (then the eviction heals it).
    await page.waitForFunction(() => document.querySelector('#memory-status')?.textContent !== 'healthy', undefined, { timeout: 20_000 });
    expect(await text('#leak-fit')).toMatch(/^R² \d\.\d\d over \d+ samples/);
    await page.waitForFunction(() => /^(\d+) of/.test(document.querySelector('#cache')?.textContent ?? '') && Number(/^(\d+)/.exec(document.querySelector('#cache')!.textContent!)![1]) >= 2200, undefined, { timeout: 20_000 }).catch(() => undefined);
    await page.waitForFunction(() => Array.from(document.querySelectorAll('#chart-cache text.tick')).some((t) => Number(t.textContent?.replace('k', '')) >= 2 && t.textContent?.endsWith('k')), undefined, { timeout: 20_000 });

    // Heartbeats: the paused worker is restarted by the watchdog.
    await page.waitForFunction(() => Array.from(document.querySelectorAll('#heartbeats tr[data-key]')).some((tr) => Number(tr.children[2]?.textContent?.split(' ')[0]) >= 1), undefined, { timeout: 30_000 });
    await page.locator('#heartbeat-events tr', { hasText: /missed|restarted/ }).first().waitFor();

    // ACL: the attackers are listed with their violations and blacklisted; the playbook run shows its steps.
    await page.locator('#acl-actors tr', { hasText: 'BLACKLISTED' }).first().waitFor({ timeout: 30_000 });
    const run = page.locator('#playbooks tr[data-key]', { hasText: 'acl' }).first();
    await run.waitFor({ timeout: 30_000 });
    await page.waitForFunction(() => Array.from(document.querySelectorAll('#playbooks tr[data-key]')).some((tr) => /\d+\/\d+ ok/.test(tr.textContent ?? '')), undefined, { timeout: 30_000 });
    await run.click();
    expect(await page.locator('#playbooks .steps li').count()).toBeGreaterThan(0);

    // Breakers and HTTP: the outage opens the downstream breaker; the error-rate chart shows the 5xx answers.
    await page.locator('#breakers li', { hasText: /opened [1-9]/ }).first().waitFor({ timeout: 30_000 });
    await page.waitForFunction(() => document.querySelectorAll('#chart-rate path').length > 0 && document.querySelectorAll('#chart-p95 path').length > 0);
    expect(statuses.some((s) => s >= 500), `5xx answers during the outage: ${statuses.filter((s) => s >= 500).length}`).toBe(true);
    await page.waitForFunction(() => document.querySelectorAll('#chart-errors path').length > 0);

    // Runtime: the CPU spike (runaway children and workers) shows on the service CPU chart (a y axis past 50 %).
    const cpuAxisTop = () => Math.max(...Array.from(document.querySelectorAll('#chart-cpu text.tick'), (t) => Number(t.textContent)).filter((n) => Number.isFinite(n)));
    await page.waitForFunction(`(${cpuAxisTop.toString()})() >= 50`, undefined, { timeout: 40_000 }).catch(async (error: unknown) => {
      const state = (await (await fetch(`${demo.url}/dashboard/state`)).json()) as { series: { serviceCpuPercent: number | null }[] };
      throw new Error(`service CPU peak ${Math.max(...state.series.map((p) => p.serviceCpuPercent ?? 0))} %: ${(error as Error).message}`);
    });

    await page.screenshot({ path: `${DOCS}dashboard.png`, fullPage: true });
    await page.locator('#panel-detections').screenshot({ path: `${DOCS}dashboard-detections.png` });
    await page.setViewportSize({ width: 390, height: 844 });
    await page.waitForTimeout(1_200);
    // Phone width: nothing wider than the screen but the scrollable tables.
    expect(await page.evaluate(() => document.documentElement.scrollWidth)).toBeLessThanOrEqual(390);
    await page.screenshot({ path: `${DOCS}dashboard-phone.png` });
    for (const file of ['dashboard.png', 'dashboard-detections.png', 'dashboard-phone.png']) expect(statSync(`${DOCS}${file}`).size).toBeGreaterThan(10_000);
    expect(favicon.every((status) => status === 200)).toBe(true);
  });
});
