// `pnpm chaos <scenario[,scenario...]|all> [--url URL] [--token TOKEN] [--json]`: injects faults into a running demo
// and prints, per scenario, its timeline (injected -> detected -> remediated (which action) -> recovered) and a
// verdict that follows the scenario's claim (healed, protected or reported). Exits 1 on any FAIL.
import { parseArgs } from 'node:util';
import { setTimeout as sleep } from 'node:timers/promises';
import { SCENARIOS, SCENARIO_CLAIMS, isScenarioName, type ScenarioName } from './chaos-scenarios.js';
import { judge, type ChaosStatus, type Verdict } from './chaos-verdict.js';

async function call(url: string, token: string | undefined, init: RequestInit = {}): Promise<unknown> {
  const res = await fetch(url, { ...init, headers: { 'content-type': 'application/json', ...(token ? { authorization: `Bearer ${token}` } : {}) } });
  const body = await res.json().catch(() => ({}));
  if (!res.ok) throw new Error(`${init.method ?? 'GET'} ${url}: ${res.status} ${JSON.stringify(body)}`);
  return body;
}


/** Prints a line when a milestone is first seen, and a "waiting" line every 5 s of silence, with the elapsed time. */
function progressPrinter(write: (line: string) => void, started: number) {
  const seen = new Set<string>();
  let lastLineAt = performance.now();
  const line = (text: string) => {
    write(`  [${((performance.now() - started) / 1000).toFixed(1).padStart(5)}s] ${text}`);
    lastLineAt = performance.now();
  };
  return (status: ChaosStatus) => {
    const milestones: [string, number | undefined, string | undefined][] = [
      ['detected', status.detectedAt, status.detectedBy],
      [status.claim === 'protected' ? 'protected' : 'remediated', status.remediatedAt, status.remediation],
      ['reported', status.reportedAt, status.report],
      ['recovered', status.recoveredAt, status.recovery],
    ];
    for (const [what, at, text] of milestones) {
      if (at === undefined || seen.has(what)) continue;
      seen.add(what);
      line(`${what}: ${text ?? ''}`);
    }
    if (!status.finished && performance.now() - lastLineAt >= 5_000) line(`waiting${status.detail ? `: ${status.detail}` : ' for the guard'}`);
  };
}

async function runScenario(base: string, token: string | undefined, scenario: ScenarioName, write?: (line: string) => void): Promise<Verdict> {
  const startedAt = performance.now();
  write?.(`\n${scenario} (claim: ${SCENARIO_CLAIMS[scenario]})`);
  const started = (await call(`${base}/chaos/${scenario}`, token, { method: 'POST', body: '{}' })) as ChaosStatus;
  const progress = write ? progressPrinter(write, startedAt) : undefined;
  write?.(`  [${((performance.now() - startedAt) / 1000).toFixed(1).padStart(5)}s] injected: ${started.injected}`);
  const deadline = started.injectedAt + started.targets.recoverMs + 5_000;
  let status = started;
  while (Date.now() < deadline && !status.finished) {
    await sleep(100);
    status = (await call(`${base}/chaos/${scenario}`, token)) as ChaosStatus;
    progress?.(status);
  }
  // Gave up waiting: end the fault so it does not keep burning in the demo (the verdict stays what was seen).
  if (!status.finished) await call(`${base}/chaos/${scenario}`, token, { method: 'DELETE' }).catch(() => undefined);
  return judge(status);
}

const fmt = (value?: number) => (value === undefined ? '—'.padStart(9) : `${value} ms`.padStart(9));


const USAGE = `Usage: pnpm chaos <all|scenario[,scenario...]> [options]

Injects faults into a running demo (start it with \`pnpm demo\`) and prints, per scenario, each milestone as it
happens (injected, detected, remediated or protected, recovered) with the elapsed time, then a verdict and a
summary table. Lab endpoints need the demo's admin token.

Scenarios: ${SCENARIOS.join(', ')}

Options:
  --url <url>      the demo (default $GUARD_DEMO_URL, else http://127.0.0.1:$PORT, PORT defaulting to 8080)
  --token <token>  admin token (default $GUARD_ADMIN_TOKEN; the demo must run with the same one)
  --json           print the verdicts as JSON on stdout (progress goes to stderr)
  -h, --help       show this help

Exit code: 0 all passed, 1 a scenario failed or the demo cannot be reached, 2 bad usage.`;

/** One line for a usage mistake: the mistake stays visible, the help is one flag away. */
function usageError(message: string): number {
  console.error(`chaos: ${message}; see pnpm chaos --help`);
  return 2;
}

/** Checks the demo answers and accepts the token before any fault is injected. */
async function preflight(base: string, token: string | undefined): Promise<string | undefined> {
  try {
    await fetch(`${base}/livez`, { signal: AbortSignal.timeout(3_000) });
  } catch {
    return `cannot reach the demo at ${base}; start it with \`pnpm demo\` (or pass --url / set PORT)`;
  }
  const res = await fetch(`${base}/chaos/${SCENARIOS[0]}`, {
    headers: token ? { authorization: `Bearer ${token}` } : {},
    signal: AbortSignal.timeout(3_000),
  }).catch(() => undefined);
  if (res?.status === 401 || res?.status === 403) {
    await res.body?.cancel();
    return token
      ? `the demo at ${base} refused the admin token; use the GUARD_ADMIN_TOKEN the demo was started with`
      : `the demo at ${base} needs an admin token for chaos: set GUARD_ADMIN_TOKEN (for the demo and here) or pass --token`;
  }
  await res?.body?.cancel();
  return undefined;
}

async function main(argv: string[]): Promise<number> {
  let parsed;
  try {
    parsed = parseArgs({
      args: argv,
      allowPositionals: true,
      strict: true,
      options: { url: { type: 'string' }, token: { type: 'string' }, json: { type: 'boolean', default: false }, help: { type: 'boolean', short: 'h', default: false } },
    });
  } catch (error) {
    return usageError((error as Error).message.split('. ')[0]!.replace(/^Unknown option/, 'unknown option'));
  }
  const { values, positionals } = parsed;
  if (values.help) {
    console.log(USAGE);
    return 0;
  }
  const base = (values.url ?? process.env.GUARD_DEMO_URL ?? `http://127.0.0.1:${process.env.PORT || 8080}`).replace(/\/$/, '');
  const token = values.token ?? process.env.GUARD_ADMIN_TOKEN;
  if (positionals.length === 0) return usageError('name the scenarios to run (or all)');
  if (positionals.length > 1) return usageError(`one scenario list, comma-separated (got ${positionals.join(' ')})`);
  const wanted = positionals[0] === 'all' ? [...SCENARIOS] : positionals[0]!.split(',').filter(Boolean);
  const unknown = wanted.filter((name) => !isScenarioName(name));
  if (wanted.length === 0 || unknown.length > 0) return usageError(`unknown scenario ${unknown.join(', ') || '(none)'}; scenarios: ${SCENARIOS.join(', ')}`);
  if (!URL.canParse(base)) return usageError(`--url is not a URL: ${base}`);

  const unreachable = await preflight(base, token);
  if (unreachable) {
    console.error(`chaos: ${unreachable}`);
    return 1;
  }
  // Progress on stdout for people; on stderr with --json, so stdout stays one JSON document.
  const write = values.json ? (line: string) => process.stderr.write(`${line}\n`) : (line: string) => console.log(line);
  const results: Verdict[] = [];
  for (const scenario of wanted as ScenarioName[]) {
    let verdict: Verdict;
    try {
      verdict = await runScenario(base, token, scenario, write);
    } catch (error) {
      verdict = { scenario, ok: false, verdict: 'FAIL', misses: [(error as Error).message], error: (error as Error).message };
    }
    results.push(verdict);
    write(`  => ${verdict.ok ? `PASS ${verdict.verdict}` : `FAIL (${verdict.misses.join('; ')})`}`);
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

main(process.argv.slice(2)).then(
  (code) => process.exit(code),
  (error) => {
    console.error(error);
    process.exit(1);
  },
);
