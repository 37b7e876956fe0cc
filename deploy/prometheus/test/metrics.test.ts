import { readFileSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { MISSING_PROMETHEUS, RULES_FILE, findBinary, run, startDemo, type Demo } from './support.js';

/**
 * `promtool check metrics` findings allowed on the demo's `/metrics`: prom-client's own default gauges that end in
 * `_total` (its naming, not Guard's; renaming them would break every dashboard built on prom-client's defaults).
 */
const TOLERATED = [
  'nodejs_active_handles_total non-counter metrics should not have "_total" suffix',
  'nodejs_active_requests_total non-counter metrics should not have "_total" suffix',
  'nodejs_active_resources_total non-counter metrics should not have "_total" suffix',
];

const promtool = findBinary('promtool');
if (!promtool) console.warn(MISSING_PROMETHEUS);

let demo: Demo | undefined;
let exposition = '';

beforeAll(async () => {
  demo = await startDemo();
  const res = await fetch(`${demo.url}/metrics`);
  expect(res.status).toBe(200);
  exposition = await res.text();
});
afterAll(async () => {
  expect(await demo?.stop()).toBe(0);
});

describe("the demo's /metrics", () => {
  it.skipIf(!promtool)('passes `promtool check metrics` with only prom-client’s default _total gauges flagged', async () => {
    const { code, output } = await run(promtool!, ['check', 'metrics'], exposition);
    const findings = output.split('\n').map((line) => line.trim()).filter(Boolean);
    console.log(`promtool check metrics: ${findings.length} finding(s), all tolerated:\n  ${findings.join('\n  ')}`);
    expect(findings.filter((f) => !TOLERATED.includes(f))).toEqual([]);
    // promtool exits 3 for lint findings; anything else (a parse error) is a failure.
    expect(code, output).toBe(findings.length > 0 ? 3 : 0);
  });

  it('exports every metric the rules use', () => {
    const exported = new Set([...exposition.matchAll(/^# TYPE (\S+) (\w+)$/gm)].map((m) => m[1]!));
    const rules = readFileSync(RULES_FILE, 'utf8');
    const exprs = [...rules.matchAll(/^ {8}expr: (?:\|\n((?: {10}.*\n)+)|(.*)\n)/gm)].map((m) => m[1] ?? m[2]!);
    expect(exprs.length).toBeGreaterThan(30);
    // Metric names (recording rules are `level:metric:operation`, Prometheus's `up` is not the app's).
    const used = new Set(exprs.flatMap((e) => [...e.matchAll(/(?<![\w:])((?:guard|parasite|process|nodejs)_[a-z0-9_]+)\b/g)].map((m) => m[1]!)));
    expect(used.size).toBeGreaterThan(15);
    expect([...used].filter((name) => !exported.has(name)).sort()).toEqual([]);
  });
});
