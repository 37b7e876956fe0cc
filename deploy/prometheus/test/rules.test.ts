import { cpSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { MISSING_PROMETHEUS, RULES_FILE, RULE_TESTS_DIR, RUNBOOK, RUNBOOK_URL, findBinary, run } from './support.js';

const rules = readFileSync(RULES_FILE, 'utf8');
const testFiles = readdirSync(RULE_TESTS_DIR).filter((f) => f.endsWith('.yml')).sort();
const ruleTests = testFiles.map((f) => readFileSync(join(RULE_TESTS_DIR, f), 'utf8')).join('\n');

/** Each alerting rule's name and its YAML text (up to the next rule). */
const alerts = rules
  .split(/^ {6}- alert: /m)
  .slice(1)
  .map((text) => ({ name: /^\w+/.exec(text)![0], text }));
const ruleCount = (rules.match(/^ {6}- (alert|record): /gm) ?? []).length;

/** The `alert_rule_test` items of every promtool test file: which alert, and whether an alert is expected. */
const evaluations = ruleTests
  .split(/^ {6}- eval_time: /m)
  .slice(1)
  .map((text) => ({ alertname: /^ {8}alertname: (\w+)/m.exec(text)?.[1], fires: /^ {8}exp_alerts:/m.test(text) }));

describe('guard.rules.yml: structure', () => {
  it('has alerts for every failure Guard knows', () => {
    expect(alerts.map((a) => a.name)).toEqual(
      expect.arrayContaining([
        'GuardParasiteDetected',
        'GuardSanitizationFailing',
        'GuardCircuitOpenTooLong',
        'GuardMemoryThresholdBreachPredicted',
        'GuardMemoryCritical',
        'GuardMemoryRestartBudgetSpent',
        'GuardImmuneStoreFailing',
        'GuardComponentCrashLoop',
        'GuardAclViolationSpam',
        'GuardAclViolationsUnstopped',
        'GuardResourcePressure',
      ]),
    );
    expect(alerts.find((a) => a.name === 'GuardMemoryThresholdBreachPredicted')!.text + rules).toMatch(/predict_linear\(guard_memory_rss_bytes\[/);
  });

  const runbook = readFileSync(RUNBOOK, 'utf8');
  it.each(alerts.map((a) => [a.name, a.text] as const))('%s has a severity, a summary, a description and a runbook section', (name, text) => {
    expect(text).toMatch(/^ {10}severity: (critical|warning|info)$/m);
    expect(text).toMatch(/^ {10}summary: \S/m);
    expect(text).toMatch(/^ {10}description: \S/m);
    const runbookUrl = /^ {10}runbook_url: (\S+)$/m.exec(text)?.[1];
    expect(runbookUrl).toBe(`${RUNBOOK_URL}#${name.toLowerCase()}`);
    // GitHub's anchor of a `### Name` heading is the lower-cased name.
    expect(runbook).toMatch(new RegExp(`^### ${name}$`, 'm'));
  });

  it.each(alerts.map((a) => [a.name] as const))('%s has promtool tests where it fires and where it stays quiet', (name) => {
    const own = evaluations.filter((e) => e.alertname === name);
    expect(own.filter((e) => e.fires).length, `an alert_rule_test with exp_alerts for ${name}`).toBeGreaterThan(0);
    expect(own.filter((e) => !e.fires).length, `an alert_rule_test without alerts for ${name}`).toBeGreaterThan(0);
  });
});

const promtool = findBinary('promtool');
if (!promtool) console.warn(MISSING_PROMETHEUS);

describe.skipIf(!promtool)('guard.rules.yml: promtool', () => {
  const scratch: string[] = [];
  afterAll(() => scratch.forEach((dir) => rmSync(dir, { recursive: true, force: true })));

  /** `promtool test rules` on a copy of one rule test file against `rulesText`. */
  async function unitTests(rulesText: string, testFile: string) {
    const dir = mkdtempSync(join(tmpdir(), 'guard-rules-'));
    scratch.push(dir);
    writeFileSync(join(dir, 'guard.rules.yml'), rulesText);
    cpSync(RULE_TESTS_DIR, join(dir, 'tests'), { recursive: true });
    return run(promtool!, ['test', 'rules', join(dir, 'tests', testFile)]);
  }

  it('`promtool check rules` passes without warnings', async () => {
    const { code, output } = await run(promtool!, ['check', 'rules', RULES_FILE]);
    console.log(output.trim());
    expect(code, output).toBe(0);
    expect(output).toContain(`SUCCESS: ${ruleCount} rules found`);
    expect(output).not.toMatch(/warn/i);
  });

  it('`promtool test rules` passes for every test file', async () => {
    const { code, output } = await run(promtool!, ['test', 'rules', ...testFiles.map((f) => join(RULE_TESTS_DIR, f))]);
    expect(code, output).toBe(0);
    expect(output.match(/SUCCESS/g)?.length).toBe(testFiles.length);
    console.log(`promtool test rules: ${testFiles.length} files, ${evaluations.length} alert evaluations, all SUCCESS`);
  });

  // The unit tests must catch a broken rule: each of these edits makes `promtool test rules` fail.
  const mutations: [what: string, find: string | RegExp, replace: string, testFile: string][] = [
    ['a detection counted only from its second sample (no new-series clause)', /\n {10}\(\n {14}parasite_detected_total\n[\s\S]*?up offset 1m == 1\n {10}\)\n {10}or/, '', 'parasites.test.yml'],
    ['breaker openings between scrapes missed', 'expr: guard:circuit_opened:increase1m > 0 or max_over_time(guard_circuit_state[1m]) == 2', 'expr: max_over_time(guard_circuit_state[1m]) == 2', 'circuit.test.yml'],
    ['memory critical paged at once', 'expr: guard_memory_status == 2\n        for: 2m', 'expr: guard_memory_status == 2\n        for: 0s', 'memory.test.yml'],
    ['skipped sanitizations counted as failures', 'outcome=~"failed|partial|timeout"', 'outcome!="success"', 'parasites.test.yml'],
    ['the memory threshold not derived from time to threshold', 'guard_memory_time_to_threshold_seconds * on', '0 * guard_memory_time_to_threshold_seconds * on', 'memory.test.yml'],
    ['ACL spam threshold raised', 'guard:bus_violations:increase1m >= 5', 'guard:bus_violations:increase1m >= 10', 'playbooks.test.yml'],
    ['a new series counted by increase() first (its first sample lost)', /(\n {10}\(\n {14}guard_playbooks_bus_violations_total\n[\s\S]*?up offset 1m == 1\n {10}\))\n {10}or\n( {10}\(increase\(guard_playbooks_bus_violations_total\[1m\]\) > 0\))/, '\n$2\n          or$1', 'playbooks.test.yml'],
    ['the first scrape of a target counted as new events (no up clause)', /\n {12}and on \(instance, job\)\n {14}up offset 1h == 1/, '', 'memory.test.yml'],
  ];
  it.each(mutations)('the unit tests fail when %s', async (_what, find, replace, testFile) => {
    const broken = rules.replace(find, replace);
    expect(broken, 'the mutation applies').not.toBe(rules);
    const { code, output } = await unitTests(broken, testFile);
    expect(code, output).not.toBe(0);
    expect(output).toContain('FAILED');
  });
});
