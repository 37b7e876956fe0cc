// `pnpm chaos <scenario|all> [--url URL] [--token TOKEN] [--json]`: injects faults into a running demo and prints,
// per scenario, injected -> detected -> sanitized/remediated -> recovered in ms. Exits 1 on any miss.
import { parseArgs } from 'node:util';
import { setTimeout as sleep } from 'node:timers/promises';
import { SCENARIOS, type ScenarioName } from './chaos-scenarios.js';

interface Timeline {
  scenario: ScenarioName;
  injectedAt: number;
  detectedMs?: number;
  remediatedMs?: number;
  recoveredMs?: number;
  detail?: string;
  ok: boolean;
  error?: string;
}

interface ChaosStatus {
  injectedAt: number;
  detectedAt?: number;
  remediatedAt?: number;
  recoveredAt?: number;
  detail?: string;
  targets: { detectMs: number; recoverMs: number };
}

async function call(url: string, token: string | undefined, init: RequestInit = {}): Promise<unknown> {
  const res = await fetch(url, { ...init, headers: { 'content-type': 'application/json', ...(token ? { authorization: `Bearer ${token}` } : {}) } });
  const body = await res.json().catch(() => ({}));
  if (!res.ok) throw new Error(`${init.method ?? 'GET'} ${url}: ${res.status} ${JSON.stringify(body)}`);
  return body;
}

async function runScenario(base: string, token: string | undefined, scenario: ScenarioName): Promise<Timeline> {
  const started = (await call(`${base}/chaos/${scenario}`, token, { method: 'POST', body: '{}' })) as ChaosStatus;
  const deadline = started.injectedAt + started.targets.recoverMs + 5_000;
  let status = started;
  while (Date.now() < deadline && status.recoveredAt === undefined) {
    await sleep(50);
    status = (await call(`${base}/chaos/${scenario}`, token)) as ChaosStatus;
  }
  const ms = (at?: number) => (at === undefined ? undefined : at - status.injectedAt);
  const timeline: Timeline = {
    scenario,
    injectedAt: status.injectedAt,
    detectedMs: ms(status.detectedAt),
    remediatedMs: ms(status.remediatedAt),
    recoveredMs: ms(status.recoveredAt),
    detail: status.detail,
    ok: false,
  };
  const misses: string[] = [];
  if (timeline.detectedMs === undefined) misses.push('not detected');
  else if (timeline.detectedMs > status.targets.detectMs) misses.push(`detected after ${timeline.detectedMs} ms > ${status.targets.detectMs} ms`);
  if (timeline.recoveredMs === undefined) misses.push('not recovered');
  else if (timeline.recoveredMs > status.targets.recoverMs) misses.push(`recovered after ${timeline.recoveredMs} ms > ${status.targets.recoverMs} ms`);
  timeline.ok = misses.length === 0;
  if (!timeline.ok) timeline.error = misses.join('; ');
  return timeline;
}

const fmt = (value?: number) => (value === undefined ? '—'.padStart(8) : `${value} ms`.padStart(8));

async function main(): Promise<number> {
  const { values, positionals } = parseArgs({
    allowPositionals: true,
    options: { url: { type: 'string' }, token: { type: 'string' }, json: { type: 'boolean', default: false } },
  });
  const base = (values.url ?? process.env.GUARD_DEMO_URL ?? `http://127.0.0.1:${process.env.PORT ?? 8080}`).replace(/\/$/, '');
  const token = values.token ?? process.env.GUARD_ADMIN_TOKEN;
  const wanted = positionals[0];
  if (!wanted || (wanted !== 'all' && !(SCENARIOS as readonly string[]).includes(wanted))) {
    console.error(`usage: pnpm chaos <${['all', ...SCENARIOS].join('|')}> [--url ${base}] [--token T] [--json]`);
    return 2;
  }
  const scenarios = wanted === 'all' ? SCENARIOS : [wanted as ScenarioName];
  const results: Timeline[] = [];
  if (!values.json) console.log(`${'scenario'.padEnd(18)}${'detected'.padStart(10)}${'healed'.padStart(10)}${'recovered'.padStart(10)}  result`);
  for (const scenario of scenarios) {
    let timeline: Timeline;
    try {
      timeline = await runScenario(base, token, scenario);
    } catch (error) {
      timeline = { scenario, injectedAt: Date.now(), ok: false, error: (error as Error).message };
    }
    results.push(timeline);
    if (!values.json) {
      const verdict = timeline.ok ? 'PASS' : `FAIL (${timeline.error})`;
      console.log(`${scenario.padEnd(18)}  ${fmt(timeline.detectedMs)}  ${fmt(timeline.remediatedMs)}  ${fmt(timeline.recoveredMs)}  ${verdict}${timeline.detail ? ` · ${timeline.detail}` : ''}`);
    }
  }
  if (values.json) console.log(JSON.stringify(results, null, 2));
  const failed = results.filter((r) => !r.ok).length;
  console.log(`chaos: ${results.length - failed} passed, ${failed} failed`);
  return failed === 0 ? 0 : 1;
}

main().then(
  (code) => process.exit(code),
  (error) => {
    console.error(error);
    process.exit(1);
  },
);
