// `pnpm chaos <scenario[,scenario...]|all> [--url URL] [--token TOKEN] [--json]`: injects faults into a running demo
// and prints, per scenario, its timeline (injected -> detected -> remediated (which action) -> recovered) and a
// verdict that follows the scenario's claim (healed, protected or reported). Exits 1 on any FAIL.
import { parseArgs } from 'node:util';
import { setTimeout as sleep } from 'node:timers/promises';
import { SCENARIOS, isScenarioName, type ScenarioName } from './chaos-scenarios.js';
import { judge, type ChaosStatus, type Verdict } from './chaos-verdict.js';

async function call(url: string, token: string | undefined, init: RequestInit = {}): Promise<unknown> {
  const res = await fetch(url, { ...init, headers: { 'content-type': 'application/json', ...(token ? { authorization: `Bearer ${token}` } : {}) } });
  const body = await res.json().catch(() => ({}));
  if (!res.ok) throw new Error(`${init.method ?? 'GET'} ${url}: ${res.status} ${JSON.stringify(body)}`);
  return body;
}

async function runScenario(base: string, token: string | undefined, scenario: ScenarioName): Promise<Verdict> {
  const started = (await call(`${base}/chaos/${scenario}`, token, { method: 'POST', body: '{}' })) as ChaosStatus;
  const deadline = started.injectedAt + started.targets.recoverMs + 5_000;
  let status = started;
  while (Date.now() < deadline && !status.finished) {
    await sleep(100);
    status = (await call(`${base}/chaos/${scenario}`, token)) as ChaosStatus;
  }
  // Gave up waiting: end the fault so it does not keep burning in the demo (the verdict stays what was seen).
  if (!status.finished) await call(`${base}/chaos/${scenario}`, token, { method: 'DELETE' }).catch(() => undefined);
  return judge(status);
}

const fmt = (value?: number) => (value === undefined ? '—'.padStart(9) : `${value} ms`.padStart(9));

function timeline(v: Verdict): string {
  const s = v.status;
  if (!s) return `  ${v.error ?? 'no status'}`;
  const line = (ms: number | undefined, what: string, text: string | undefined) => `  ${(ms === undefined ? '—' : `+${ms} ms`).padStart(10)}  ${what.padEnd(10)} ${text ?? ''}`;
  const lines = [line(0, 'injected', s.injected), line(v.detectedMs, 'detected', s.detectedBy ?? 'not detected')];
  if (s.claim === 'reported') lines.push(line(v.reportedMs, 'reported', s.report ?? 'not reported'));
  else {
    lines.push(line(v.remediatedMs, s.claim === 'healed' ? 'remediated' : 'protected', s.remediation ?? (s.claim === 'healed' ? 'no healing action' : 'no protection')));
    lines.push(line(v.recoveredMs, 'recovered', s.recovery ?? 'not recovered'));
  }
  if (s.detail) lines.push(`  ${''.padStart(10)}  ${'waiting'.padEnd(10)} ${s.detail}`);
  return lines.join('\n');
}

async function main(): Promise<number> {
  const { values, positionals } = parseArgs({
    allowPositionals: true,
    options: { url: { type: 'string' }, token: { type: 'string' }, json: { type: 'boolean', default: false } },
  });
  const base = (values.url ?? process.env.GUARD_DEMO_URL ?? `http://127.0.0.1:${process.env.PORT ?? 8080}`).replace(/\/$/, '');
  const token = values.token ?? process.env.GUARD_ADMIN_TOKEN;
  const wanted = positionals[0] === 'all' ? [...SCENARIOS] : (positionals[0] ?? '').split(',').filter(Boolean);
  if (wanted.length === 0 || !wanted.every(isScenarioName)) {
    console.error(`usage: pnpm chaos <all|scenario[,scenario...]> [--url ${base}] [--token T] [--json]\nscenarios: ${SCENARIOS.join(', ')}`);
    return 2;
  }
  const results: Verdict[] = [];
  for (const scenario of wanted as ScenarioName[]) {
    let verdict: Verdict;
    try {
      verdict = await runScenario(base, token, scenario);
    } catch (error) {
      verdict = { scenario, ok: false, verdict: 'FAIL', misses: [(error as Error).message], error: (error as Error).message };
    }
    results.push(verdict);
    if (!values.json) console.log(`\n${scenario} (claim: ${verdict.claim ?? '?'})\n${timeline(verdict)}\n  => ${verdict.ok ? `PASS ${verdict.verdict}` : `FAIL (${verdict.misses.join('; ')})`}`);
  }
  if (values.json) console.log(JSON.stringify(results.map(({ status: _status, ...v }) => v), null, 2));
  else {
    console.log(`\n${'scenario'.padEnd(18)}${'detected'.padStart(11)}${'healed'.padStart(11)}${'recovered'.padStart(11)}  result`);
    for (const v of results) {
      // A report-only finding never shows a time in the healed column: Guard did not heal it.
      const pass = v.claim === 'reported' ? `PASS reported at ${v.reportedMs} ms` : `PASS ${v.verdict}`;
      console.log(`${v.scenario.padEnd(18)}  ${fmt(v.detectedMs)}  ${fmt(v.remediatedMs)}  ${fmt(v.recoveredMs)}  ${v.ok ? pass : `FAIL (${v.misses.join('; ')})`}`);
    }
  }
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
